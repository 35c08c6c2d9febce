// Mutual TLS and identity: who may talk to the coordinator, and who the coordinator thinks
// they are. Every certificate here is generated at run time with OpenSSL.
#include <catch2/catch.hpp>

#include "common/tls/credentials.h"
#include "tests/integration/harness.h"

namespace cohort::testing {

TEST_CASE("A site with a certificate from the federation CA is let in", "[tls]") {
  Federation fed({"site-a"});
  fed.Start();
  grpc::Status status = ProbeClosedRound(fed.ChannelFor("site-a"));
  CHECK(status.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(status.error_message(), Catch::Contains("round 999 is not open"));
}

TEST_CASE("The coordinator takes the site id from the certificate, not from the session",
          "[tls]") {
  Federation fed({"site-a", "site-b"});
  fed.Start();
  auto stream_stub = cohort::v1::Federation::NewStub(fed.ChannelFor("site-b"));
  grpc::ClientContext context;
  auto stream = stream_stub->Session(&context);
  cohort::v1::SiteMessage hello;
  hello.mutable_hello()->set_client_version("claims-to-be-site-a");
  REQUIRE(stream->Write(hello));
  cohort::v1::CoordinatorMessage welcome;
  REQUIRE(stream->Read(&welcome));
  REQUIRE(welcome.has_welcome());
  CHECK(welcome.welcome().site_id() == "site-b");
  CHECK(welcome.welcome().federation() == "testfed");
  context.TryCancel();
  stream->Finish();
}

TEST_CASE("A connection without a client certificate is refused", "[tls]") {
  Federation fed({"site-a"});
  fed.Start();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = fed.pki().ca().cert_pem;  // verifies the server, presents nothing
  auto channel = grpc::CreateCustomChannel(fed.address(), grpc::SslCredentials(options),
                                           tls::MakeChannelArguments(""));
  grpc::Status status = ProbeClosedRound(channel);
  CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
}

TEST_CASE("A certificate issued by another CA is refused", "[tls]") {
  Federation fed({"site-a"});
  fed.Start();
  TempDir other_dir;
  TestPki other(other_dir.path(), "testfed");
  config::TlsFiles impostor = other.IssueSite("site-a");
  // The impostor trusts the real CA for the server, but presents a foreign certificate.
  impostor.ca = fed.pki().ca_path();
  grpc::Status status = ProbeClosedRound(fed.ChannelAs(impostor));
  CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
}

TEST_CASE("An expired site certificate is refused", "[tls]") {
  Federation fed({"site-a"});
  fed.Start();
  config::TlsFiles expired = fed.pki().IssueSite("site-a", "site-a-expired",
                                                 absl::Now() - absl::Hours(48),
                                                 absl::Now() - absl::Hours(1));
  grpc::Status status = ProbeClosedRound(fed.ChannelAs(expired));
  CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
}

TEST_CASE("A valid certificate for a site not on the allowlist is refused", "[tls]") {
  Federation fed({"site-a"});
  fed.Start();
  config::TlsFiles outsider = fed.pki().IssueSite("site-z");
  grpc::Status status = ProbeClosedRound(fed.ChannelAs(outsider));
  CHECK(status.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(status.error_message(), Catch::Contains("site-z"));

  // The Session stream is refused the same way.
  auto stub = cohort::v1::Federation::NewStub(fed.ChannelAs(outsider));
  grpc::ClientContext context;
  auto stream = stub->Session(&context);
  cohort::v1::SiteMessage hello;
  hello.mutable_hello()->set_client_version("test");
  stream->Write(hello);
  cohort::v1::CoordinatorMessage reply;
  CHECK_FALSE(stream->Read(&reply));
  CHECK(stream->Finish().error_code() == grpc::StatusCode::PERMISSION_DENIED);
}

TEST_CASE("A SPIFFE identity of another federation is refused, not read from the CN",
          "[tls]") {
  Federation fed({"site-a"});
  fed.Start();
  // CN says site-a, but the URI names another federation: refused.
  config::TlsFiles foreign =
      fed.pki().IssueWithUri("site-a", "spiffe://otherfed/site/site-a");
  grpc::Status status = ProbeClosedRound(fed.ChannelAs(foreign));
  CHECK(status.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK_THAT(status.error_message(), Catch::Contains("otherfed"));
}

TEST_CASE("A certificate with only a common name identifies the site by its CN", "[tls]") {
  Federation fed({"site-a"});
  fed.Start();
  grpc::Status status = ProbeClosedRound(fed.ChannelAs(fed.pki().IssueCommonNameOnly("site-a")));
  CHECK(status.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_CASE("A site refuses a coordinator whose certificate another CA issued", "[tls]") {
  Federation fed({"site-a"});
  fed.Start();
  TempDir other_dir;
  TestPki other(other_dir.path(), "testfed");
  // The site trusts only the other CA: the real coordinator cannot prove itself.
  config::TlsFiles files{other.ca_path(), fed.pki().dir() + "/site-a.pem",
                         fed.pki().dir() + "/site-a.key"};
  grpc::Status status = ProbeClosedRound(fed.ChannelAs(files));
  CHECK(status.error_code() == grpc::StatusCode::UNAVAILABLE);
}

}  // namespace cohort::testing
