// The Admin API (status, pause, resume, abort, rounds) and the coordinator's HTTP port
// (/healthz, /readyz, /metrics, status page), over real gRPC, mutual TLS and HTTP on
// 127.0.0.1.
#include <atomic>
#include <memory>

#include <catch2/catch.hpp>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "cohort/v1/admin.grpc.pb.h"
#include "common/tls/credentials.h"
#include "tests/integration/harness.h"
#include "tests/support/http_get.h"

namespace cohort::testing {
namespace {

constexpr char kFederation[] = "testfed";

std::unique_ptr<ScriptedTrainer> Scripted(float delta, uint64_t examples) {
  return std::make_unique<ScriptedTrainer>(delta, examples);
}

config::TlsFiles IssueAdmin(Federation& fed, const std::string& name,
                            const std::string& federation = kFederation) {
  return fed.pki().IssueWithUri("admin:" + name,
                                "spiffe://" + federation + "/admin/" + name);
}

std::unique_ptr<cohort::v1::Admin::Stub> AdminStub(Federation& fed, const config::TlsFiles& files) {
  return cohort::v1::Admin::NewStub(fed.ChannelAs(files));
}

grpc::Status GetStatus(cohort::v1::Admin::Stub& stub, cohort::v1::FederationStatus* status) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return stub.GetStatus(&context, {}, status);
}

// Polls the status until `done` holds (a watchdog of 60 s fails the test, it never passes it).
cohort::v1::FederationStatus WaitForStatus(
    cohort::v1::Admin::Stub& stub,
    const std::function<bool(const cohort::v1::FederationStatus&)>& done) {
  const absl::Time watchdog = absl::Now() + absl::Seconds(60);
  cohort::v1::FederationStatus status;
  while (absl::Now() < watchdog) {
    status.Clear();
    grpc::Status rpc = GetStatus(stub, &status);
    REQUIRE(rpc.ok());
    if (done(status)) return status;
    absl::SleepFor(absl::Milliseconds(50));
  }
  FAIL("the status never reached the expected state; last: " << status.DebugString());
  return status;
}

int Connected(const cohort::v1::FederationStatus& status) {
  int n = 0;
  for (const auto& site : status.sites()) n += site.connected() ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("An admin certificate reads the status and a site certificate is refused",
          "[admin]") {
  Federation fed({"site-a", "site-b"});
  fed.config().admins = {"ops"};
  fed.Start();
  auto admin = AdminStub(fed, IssueAdmin(fed, "ops"));
  cohort::v1::FederationStatus status;
  grpc::Status rpc = GetStatus(*admin, &status);
  INFO(rpc.error_message());
  REQUIRE(rpc.ok());
  CHECK(status.federation() == kFederation);
  CHECK(status.rounds_target() == 2);
  CHECK(status.current_round() == 0);
  CHECK(status.stage() == "waiting");
  REQUIRE(status.sites_size() == 2);
  CHECK(status.sites(0).site_id() == "site-a");
  CHECK(status.sites(0).state() == "offline");
  CHECK_FALSE(status.sites(0).connected());

  SECTION("a site's certificate gets PERMISSION_DENIED") {
    auto as_site = AdminStub(fed, fed.pki().IssueSite("site-a", "site-a-again"));
    cohort::v1::FederationStatus ignored;
    grpc::Status refused = GetStatus(*as_site, &ignored);
    CHECK(refused.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK_THAT(refused.error_message(), Catch::Contains("needs an admin certificate"));
    grpc::ClientContext context;
    cohort::v1::PauseRequest pause;
    cohort::v1::FederationStatus after;
    CHECK(as_site->Pause(&context, pause, &after).error_code() ==
          grpc::StatusCode::PERMISSION_DENIED);
  }
  SECTION("an admin missing from the admins list gets PERMISSION_DENIED") {
    auto intruder = AdminStub(fed, IssueAdmin(fed, "intruder"));
    cohort::v1::FederationStatus ignored;
    grpc::Status refused = GetStatus(*intruder, &ignored);
    CHECK(refused.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK_THAT(refused.error_message(), Catch::Contains("'intruder' is not on"));
  }
  SECTION("an admin identity of another federation is refused") {
    auto other = AdminStub(fed, IssueAdmin(fed, "ops", "otherfed"));
    cohort::v1::FederationStatus ignored;
    CHECK(GetStatus(*other, &ignored).error_code() == grpc::StatusCode::UNAUTHENTICATED);
  }
  SECTION("an admin certificate cannot join the federation as a site") {
    ManualSite impostor(fed.ChannelAs(IssueAdmin(fed, "ops", kFederation)));
    CHECK_FALSE(impostor.Connect());
    cohort::v1::FederationStatus after;
    REQUIRE(GetStatus(*admin, &after).ok());
    CHECK(Connected(after) == 0);
  }
}

TEST_CASE("A pause holds new rounds until resume, and survives a coordinator restart",
          "[admin]") {
  Federation fed({"site-a", "site-b"});
  fed.Start();
  auto admin = AdminStub(fed, IssueAdmin(fed, "ops"));
  {
    grpc::ClientContext context;
    cohort::v1::PauseRequest request;
    request.set_reason("maintenance window");
    cohort::v1::FederationStatus status;
    REQUIRE(admin->Pause(&context, request, &status).ok());
    CHECK(status.paused());
    CHECK(status.pause_reason() == "paused by admin 'ops': maintenance window");
  }
  ClientRunner a(fed.ClientConfigFor("site-a"), Scripted(1.0f, 10));
  ClientRunner b(fed.ClientConfigFor("site-b"), Scripted(1.0f, 10));
  // Both sites connected and the loop parked in "paused": no round number was taken.
  WaitForStatus(*admin, [](const cohort::v1::FederationStatus& s) {
    return Connected(s) == 2 && s.stage() == "paused";
  });
  CHECK(ReadRounds(fed.state_dir(), /*committed_only=*/false).empty());

  // Restart: the pause is in state.db.
  fed.StopCoordinator();
  fed.config().listen = "127.0.0.1:0";
  auto restarted = server::Coordinator::Create(fed.config());
  REQUIRE(restarted.ok());
  REQUIRE((*restarted)->Start().ok());
  config::TlsFiles admin_files = IssueAdmin(fed, "ops");
  auto credentials = tls::MakeChannelCredentials(admin_files);
  REQUIRE(credentials.ok());
  auto admin2 = cohort::v1::Admin::NewStub(grpc::CreateCustomChannel(
      "127.0.0.1:" + std::to_string((*restarted)->port()), *credentials,
      tls::MakeChannelArguments("")));
  cohort::v1::FederationStatus status;
  REQUIRE(GetStatus(*admin2, &status).ok());
  CHECK(status.paused());
  CHECK(status.pause_reason() == "paused by admin 'ops': maintenance window");
  CHECK(ReadRounds(fed.state_dir(), /*committed_only=*/false).empty());

  // The old clients dialled the old port; new ones join the restarted coordinator.
  config::ClientConfig a_config = fed.ClientConfigFor("site-a");
  config::ClientConfig b_config = fed.ClientConfigFor("site-b");
  a_config.coordinator = b_config.coordinator =
      "127.0.0.1:" + std::to_string((*restarted)->port());
  ClientRunner a2(a_config, Scripted(1.0f, 10));
  ClientRunner b2(b_config, Scripted(1.0f, 10));
  WaitForStatus(*admin2, [](const cohort::v1::FederationStatus& s) {
    return Connected(s) == 2 && s.stage() == "paused";
  });
  {
    grpc::ClientContext context;
    cohort::v1::FederationStatus resumed;
    REQUIRE(admin2->Resume(&context, {}, &resumed).ok());
    CHECK_FALSE(resumed.paused());
  }
  REQUIRE((*restarted)->Wait().ok());
  CHECK(a2.Join().ok());
  CHECK(b2.Join().ok());
  CHECK(ReadRounds(fed.state_dir(), /*committed_only=*/true).size() == 2);
  (*restarted)->Shutdown();
}

TEST_CASE("Abort ends the running round with the admin's reason, and the next round "
          "takes a new number",
          "[admin]") {
  Federation fed({"site-a", "site-b"});
  fed.Start();
  auto admin = AdminStub(fed, IssueAdmin(fed, "ops"));
  // site-a's first training task blocks until the test releases it.
  absl::Notification release;
  auto blocking = Scripted(1.0f, 10);
  blocking->before_train = [&release](int task) {
    if (task == 0) release.WaitForNotification();
  };
  ClientRunner a(fed.ClientConfigFor("site-a"), std::move(blocking));
  ClientRunner b(fed.ClientConfigFor("site-b"), Scripted(1.0f, 10));
  cohort::v1::FederationStatus status =
      WaitForStatus(*admin, [](const cohort::v1::FederationStatus& s) {
        for (const auto& site : s.sites()) {
          if (site.site_id() == "site-b" && site.state() == "uploaded") return true;
        }
        return false;
      });
  CHECK(status.current_round() == 1);
  CHECK(status.stage() == "train");
  {
    grpc::ClientContext context;
    cohort::v1::AbortRoundRequest request;
    request.set_round(7);
    cohort::v1::AbortRoundResponse response;
    grpc::Status wrong = admin->AbortRound(&context, request, &response);
    CHECK(wrong.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK_THAT(wrong.error_message(), Catch::Contains("round 7 is not running"));
  }
  {
    grpc::ClientContext context;
    cohort::v1::AbortRoundRequest request;
    request.set_reason("bad data at site-b");
    cohort::v1::AbortRoundResponse response;
    REQUIRE(admin->AbortRound(&context, request, &response).ok());
    CHECK(response.round() == 1);
  }
  release.Notify();
  REQUIRE(fed.coordinator().Wait().ok());
  CHECK(a.Join().ok());
  CHECK(b.Join().ok());
  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), /*committed_only=*/false);
  REQUIRE(rounds.size() == 3);
  CHECK(rounds[0].round == 1);
  CHECK(rounds[0].status == "aborted");
  CHECK(rounds[0].reason == "aborted by admin 'ops': bad data at site-b");
  CHECK(rounds[1].round == 2);
  CHECK(rounds[1].status == "committed");
  CHECK(rounds[2].round == 3);
  CHECK(rounds[2].status == "committed");

  // The history over the Admin API matches the database, and the abort is in the errors.
  grpc::ClientContext context;
  cohort::v1::ListRoundsRequest request;
  request.set_include_aborted(true);
  cohort::v1::ListRoundsResponse response;
  REQUIRE(admin->ListRounds(&context, request, &response).ok());
  REQUIRE(response.rounds_size() == 3);
  CHECK(response.rounds(0).reason() == rounds[0].reason);
  CHECK(response.rounds(2).participants_size() == 2);
  cohort::v1::FederationStatus after;
  REQUIRE(GetStatus(*admin, &after).ok());
  CHECK(after.rounds_committed() == 2);
  CHECK(after.stage() == "done");
  bool abort_logged = false;
  for (const auto& e : after.last_errors()) {
    abort_logged |= e.round() == 1 && e.message().find("aborted by admin 'ops'") != std::string::npos;
  }
  CHECK(abort_logged);
  grpc::ClientContext none_context;
  cohort::v1::AbortRoundResponse none;
  CHECK(admin->AbortRound(&none_context, {}, &none).error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_CASE("The HTTP port serves health, readiness, Prometheus metrics and the status page",
          "[admin][http]") {
  Federation fed({"site-a", "site-b"});
  fed.config().http.listen = "127.0.0.1:0";
  fed.Start();
  const int port = fed.coordinator().http_port();
  REQUIRE(port > 0);
  CHECK(HttpRequest(port, "/healthz").status == 200);
  CHECK(HttpRequest(port, "/readyz").body == "ready\n");
  {
    HttpReply page = HttpRequest(port, "/");
    CHECK(page.status == 200);
    CHECK_THAT(page.body, Catch::Contains("no data yet"));  // empty charts before round 1
  }
  ClientRunner a(fed.ClientConfigFor("site-a"), Scripted(1.0f, 10));
  ClientRunner b(fed.ClientConfigFor("site-b"), Scripted(2.0f, 30));
  REQUIRE(fed.coordinator().Wait().ok());
  REQUIRE(a.Join().ok());
  REQUIRE(b.Join().ok());

  HttpReply metrics = HttpRequest(port, "/metrics");
  REQUIRE(metrics.status == 200);
  CHECK_THAT(metrics.content_type, Catch::StartsWith("text/plain; version=0.0.4"));
  CHECK_THAT(metrics.body,
             Catch::Contains("cohort_coordinator_rounds_total{outcome=\"committed\"} 2"));
  CHECK_THAT(metrics.body,
             Catch::Contains("cohort_coordinator_rounds_total{outcome=\"aborted\"} 0"));
  CHECK_THAT(metrics.body, Catch::Contains(
                               "cohort_coordinator_stage_duration_seconds_count{stage=\"train\"} 2"));
  CHECK_THAT(metrics.body,
             Catch::Contains(
                 "cohort_coordinator_stage_duration_seconds_count{stage=\"evaluate\"} 2"));
  CHECK_THAT(metrics.body, Catch::Contains("cohort_coordinator_committed_rounds 2"));
  // Two uploads of 4+1 float32 values each way at least, plus session messages.
  CHECK_THAT(metrics.body, Catch::Matches("(.|\\n)*cohort_coordinator_received_bytes_total [1-9][0-9]+(.|\\n)*"));
  CHECK_THAT(metrics.body, Catch::Matches("(.|\\n)*cohort_coordinator_sent_bytes_total [1-9][0-9]+(.|\\n)*"));

  HttpReply page = HttpRequest(port, "/");
  REQUIRE(page.status == 200);
  CHECK_THAT(page.content_type, Catch::StartsWith("text/html"));
  CHECK_THAT(page.body, Catch::Contains("Federation testfed"));
  CHECK_THAT(page.body, Catch::Contains("site-a"));
  CHECK_THAT(page.body, Catch::Contains("<polyline class=\"series\" data-series=\"test accuracy\""));
  CHECK_THAT(page.body, Catch::Contains("Done"));

  HttpReply status = HttpRequest(port, "/api/status");
  CHECK(status.content_type == "application/json");
  CHECK_THAT(status.body, Catch::Contains("\"rounds_committed\": \"2\""));
  HttpReply rounds = HttpRequest(port, "/api/rounds");
  CHECK_THAT(rounds.body, Catch::Contains("\"round\": 2"));

  CHECK(HttpRequest(port, "/no-such-page").status == 404);
  CHECK(HttpRequest(port, "/metrics", "POST").status == 405);
  // Malformed and oversized requests get a clear status, and the server keeps serving.
  CHECK(HttpRequest(port, "/a b").status == 400);  // four words on the request line
  CHECK(HttpRequest(port, "/" + std::string(9000, 'x')).status == 431);
  CHECK(HttpRequest(port, "/healthz").status == 200);
}

}  // namespace cohort::testing
