// limits.max_sessions_per_minute: a site that reconnects in a loop is refused once over the
// limit, while the coordinator stays up and an honest site trains, over real gRPC and mutual
// TLS on 127.0.0.1.
#include <memory>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

namespace cohort::testing {

TEST_CASE("A site churning sessions is refused past the per-minute limit while an honest "
          "site completes its rounds",
          "[limits]") {
  Federation fed({"site-a", "site-b", "site-c"});
  fed.config().limits.max_sessions_per_minute = 5;
  fed.config().rounds.count = 2;
  fed.config().rounds.min_clients = 1;
  fed.config().rounds.select_timeout = absl::Milliseconds(500);
  fed.Start();

  // site-c opens and drops sessions as fast as it can: 5 are accepted, the rest refused.
  std::shared_ptr<grpc::Channel> churner = fed.ChannelFor("site-c");
  int accepted = 0;
  int refused = 0;
  for (int i = 0; i < 40; ++i) {
    ManualSite site(churner);
    if (site.Connect()) {
      ++accepted;
    } else {
      ++refused;
    }
    site.Close();
  }
  CHECK(accepted == 5);
  CHECK(refused == 35);

  // The refusal says why, with RESOURCE_EXHAUSTED.
  {
    ManualSite site(churner);
    REQUIRE_FALSE(site.Connect());
    cohort::v1::CoordinatorMessage ignored;
    CHECK_FALSE(site.Next(&ignored));
  }
  {
    grpc::ClientContext context;
    auto stub = cohort::v1::Federation::NewStub(churner);
    auto stream = stub->Session(&context);
    cohort::v1::SiteMessage hello;
    hello.mutable_hello()->set_client_version("test");
    stream->Write(hello);
    stream->WritesDone();
    cohort::v1::CoordinatorMessage message;
    while (stream->Read(&message)) {
    }
    grpc::Status status = stream->Finish();
    CHECK(status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK_THAT(status.error_message(), Catch::Contains("site 'site-c' opened more than 5 "
                                                       "sessions in the last minute"));
  }

  // Other sites are not limited by site-c's churn: site-a trains both rounds.
  ClientRunner a(fed.ClientConfigFor("site-a"), std::make_unique<ScriptedTrainer>(0.1f, 10));
  REQUIRE(fed.coordinator().Wait().ok());
  REQUIRE(a.Join().ok());
  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
  REQUIRE(rounds.size() == 2);
  for (const state::RoundRecord& r : rounds) {
    CHECK(r.participants == std::vector<std::string>{"site-a"});
  }
}

}  // namespace cohort::testing
