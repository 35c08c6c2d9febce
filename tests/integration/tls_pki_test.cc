// Certificate lifecycle over real mutual TLS on loopback: revocation (CRL), expiry, and
// certificates and keys replaced while the coordinator and a site keep running. Each test
// opens new connections and shows what the next handshake does; every certificate and CRL
// is generated at run time with OpenSSL.
#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "common/crypto/pki.h"
#include "common/tls/credentials.h"
#include "common/util/files.h"
#include "tests/integration/harness.h"

namespace cohort::testing {
namespace {

// What one call on a fresh connection saw: the call status and the certificate that the
// coordinator presented (empty when the handshake failed).
struct ProbeResult {
  grpc::Status status;
  std::string server_cert_pem;
};

// Dials `address` on a new connection (a channel-local subchannel pool, so no connection is
// shared with an earlier channel) and calls DownloadModel for a round that is not open: a
// site that passes TLS and authorization gets FAILED_PRECONDITION; a failed handshake gives
// UNAVAILABLE.
ProbeResult ProbeNewConnection(const std::string& address,
                               const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                               const std::string& server_name = "") {
  grpc::ChannelArguments args = tls::MakeChannelArguments(server_name);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = grpc::CreateCustomChannel(address, credentials, args);
  grpc::ClientContext context;
  ProbeResult result;
  result.status = ProbeClosedRound(channel, &context);
  if (auto auth = context.auth_context(); auth != nullptr) {
    for (const grpc::string_ref& pem : auth->FindPropertyValues("x509_pem_cert")) {
      result.server_cert_pem.assign(pem.data(), pem.size());
    }
  }
  return result;
}

std::shared_ptr<grpc::ChannelCredentials> CredentialsFor(const config::TlsFiles& files) {
  auto credentials = tls::MakeChannelCredentials(files);
  INFO(credentials.status().ToString());
  REQUIRE(credentials.ok());
  return *credentials;
}

std::string Serial(const std::string& cert_pem) {
  auto info = crypto::InspectCertificate(cert_pem);
  REQUIRE(info.ok());
  return info->serial_hex;
}

std::string ReadText(const std::string& path) {
  auto text = ReadFileToString(path);
  REQUIRE(text.ok());
  return *text;
}

// Signs and writes the federation CRL listing `revoked_certs` (PEM), numbered `number`.
void WriteCrl(const TestPki& pki, const std::string& path,
              const std::vector<std::string>& revoked_certs, int64_t number) {
  crypto::CrlInfo crl;
  crl.this_update = absl::Now() - absl::Minutes(1);
  crl.next_update = absl::Now() + absl::Hours(24);
  crl.number = number;
  for (const std::string& pem : revoked_certs) {
    crl.revoked.push_back({Serial(pem), absl::Now(), "keyCompromise"});
  }
  auto text = crypto::CreateCrl(pki.ca(), crl);
  REQUIRE(text.ok());
  REQUIRE(crypto::WriteFileAtomically(path, *text, 0644).ok());
}

// Retries `probe` until `accept` holds or `limit` passes; returns the last result.
template <typename Probe, typename Accept>
ProbeResult Eventually(Probe probe, Accept accept, absl::Duration limit = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + limit;
  ProbeResult result = probe();
  while (!accept(result) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(250));
    result = probe();
  }
  return result;
}

bool Admitted(const ProbeResult& r) {
  return r.status.error_code() == grpc::StatusCode::FAILED_PRECONDITION;
}

}  // namespace

TEST_CASE("A revoked site is refused at its next handshake once the CRL file changes",
          "[tls][pki][crl]") {
  Federation fed({"site-a", "site-b"});
  const std::string crl_path = fed.pki().dir() + "/crl.pem";
  WriteCrl(fed.pki(), crl_path, {}, 1);
  fed.config().tls.crl = crl_path;
  fed.Start();
  const config::TlsFiles site_a = fed.ClientConfigFor("site-a").tls;
  const config::TlsFiles site_b = fed.ClientConfigFor("site-b").tls;
  REQUIRE(Admitted(ProbeNewConnection(fed.address(), CredentialsFor(site_a))));

  WriteCrl(fed.pki(), crl_path, {ReadText(site_a.cert)}, 2);
  ProbeResult refused = ProbeNewConnection(fed.address(), CredentialsFor(site_a));
  CHECK(refused.status.error_code() == grpc::StatusCode::UNAVAILABLE);
  // Only the revoked certificate is refused.
  CHECK(Admitted(ProbeNewConnection(fed.address(), CredentialsFor(site_b))));

  // A CRL that is not signed by the CA does not lift the revocation.
  REQUIRE(crypto::WriteFileAtomically(crl_path, "not a crl\n", 0644).ok());
  CHECK(ProbeNewConnection(fed.address(), CredentialsFor(site_a)).status.error_code() ==
        grpc::StatusCode::UNAVAILABLE);
  CHECK(Admitted(ProbeNewConnection(fed.address(), CredentialsFor(site_b))));
}

TEST_CASE("A site revoked while connected is cut off before the next round",
          "[tls][pki][crl]") {
  Federation fed({"site-a", "site-b", "site-c"});
  const std::string crl_path = fed.pki().dir() + "/crl.pem";
  WriteCrl(fed.pki(), crl_path, {}, 1);
  fed.config().tls.crl = crl_path;
  fed.config().rounds.count = 3;
  fed.config().rounds.min_clients = 2;
  fed.config().rounds.select_timeout = absl::Seconds(1);
  fed.Start();
  const std::string site_c_cert = ReadText(fed.ClientConfigFor("site-c").tls.cert);
  auto revoking = std::make_unique<ScriptedTrainer>(1.0f, 10);
  // While site-c trains in round 1, the operator revokes it. Its connection was admitted
  // before; every later call on it is refused (so its round-1 upload), and its session is
  // closed before round 2.
  const TestPki* pki = &fed.pki();
  revoking->before_train = [pki, crl_path, site_c_cert](int task) {
    if (task == 0) WriteCrl(*pki, crl_path, {site_c_cert}, 2);
  };
  ClientRunner a(fed.ClientConfigFor("site-a"), std::make_unique<ScriptedTrainer>(1.0f, 10));
  ClientRunner b(fed.ClientConfigFor("site-b"), std::make_unique<ScriptedTrainer>(1.0f, 10));
  ClientRunner c(fed.ClientConfigFor("site-c"), std::move(revoking));
  REQUIRE(fed.coordinator().Wait().ok());
  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
  REQUIRE(rounds.size() == 3);
  CHECK(rounds[0].participants == std::vector<std::string>{"site-a", "site-b"});
  CHECK(rounds[0].dropped == std::vector<std::string>{"site-c"});
  CHECK(rounds[1].participants == std::vector<std::string>{"site-a", "site-b"});
  CHECK(rounds[2].participants == std::vector<std::string>{"site-a", "site-b"});
  // Its new sessions are refused, on the old connection and at new handshakes alike.
  CHECK(c.client().sessions_opened() == 1);
}

TEST_CASE("The coordinator refuses to start with a CRL that its CA did not sign",
          "[tls][pki][crl]") {
  Federation fed({"site-a"});
  TempDir other_dir;
  TestPki other(other_dir.path(), "testfed");
  const std::string crl_path = fed.pki().dir() + "/crl.pem";
  WriteCrl(other, crl_path, {}, 1);
  fed.config().tls.crl = crl_path;
  auto coordinator = server::Coordinator::Create(fed.config());
  REQUIRE(coordinator.ok());
  absl::Status started = (*coordinator)->Start();
  CHECK_FALSE(started.ok());
  CHECK_THAT(std::string(started.message()),
             Catch::Contains("tls.crl") && Catch::Contains("not signed by the federation CA"));
}

TEST_CASE("A site certificate is refused at the first handshake after it expires",
          "[tls][pki]") {
  Federation fed({"site-a"});
  fed.Start();
  // X.509 times have one-second resolution: expire a few whole seconds from now.
  const absl::Time expiry = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()) + 4);
  config::TlsFiles short_lived =
      fed.pki().IssueSite("site-a", "site-a-short", absl::Now() - absl::Hours(1), expiry);
  auto credentials = CredentialsFor(short_lived);
  REQUIRE(Admitted(ProbeNewConnection(fed.address(), credentials)));

  absl::SleepFor(expiry - absl::Now() + absl::Milliseconds(1500));
  ProbeResult after = ProbeNewConnection(fed.address(), credentials);
  CHECK(after.status.error_code() == grpc::StatusCode::UNAVAILABLE);
}

TEST_CASE("The coordinator presents its replaced certificate and key to new connections",
          "[tls][pki][reload]") {
  Federation fed({"site-a"});
  fed.config().tls.reload_seconds = 1;
  fed.Start();
  auto credentials = CredentialsFor(fed.ClientConfigFor("site-a").tls);
  ProbeResult before = ProbeNewConnection(fed.address(), credentials);
  REQUIRE(Admitted(before));
  const std::string old_serial = Serial(before.server_cert_pem);
  REQUIRE(old_serial == Serial(ReadText(fed.pki().dir() + "/coordinator.pem")));

  // Rotate: a new key and certificate in the same files, as an operator would.
  crypto::CertificateSpec spec;
  spec.common_name = "coordinator";
  spec.dns_names = {"localhost"};
  spec.ip_addresses = {"127.0.0.1"};
  spec.not_before = absl::Now() - absl::Hours(1);
  spec.not_after = absl::Now() + absl::Hours(24);
  spec.server_auth = spec.client_auth = true;
  auto rotated = crypto::IssueCertificate(fed.pki().ca(), spec);
  REQUIRE(rotated.ok());
  const config::TlsFiles files = fed.pki().coordinator_files();
  REQUIRE(crypto::WriteFileAtomically(files.key, rotated->key_pem, 0600).ok());
  REQUIRE(crypto::WriteFileAtomically(files.cert, rotated->cert_pem, 0644).ok());
  const std::string new_serial = Serial(rotated->cert_pem);

  ProbeResult after = Eventually(
      [&] { return ProbeNewConnection(fed.address(), credentials); },
      [&](const ProbeResult& r) {
        return Admitted(r) && !r.server_cert_pem.empty() && Serial(r.server_cert_pem) == new_serial;
      });
  CHECK(Admitted(after));
  REQUIRE_FALSE(after.server_cert_pem.empty());
  CHECK(Serial(after.server_cert_pem) == new_serial);
}

TEST_CASE("A running site uses its replaced certificate and key for new connections",
          "[tls][pki][reload]") {
  Federation fed({"site-a"});
  const std::string crl_path = fed.pki().dir() + "/crl.pem";
  WriteCrl(fed.pki(), crl_path, {}, 1);
  fed.config().tls.crl = crl_path;
  fed.Start();
  config::TlsFiles files = fed.ClientConfigFor("site-a").tls;
  files.reload_seconds = 1;
  // One credentials object for the whole test, as a running cohort-client holds one.
  auto running_site = CredentialsFor(files);
  REQUIRE(Admitted(ProbeNewConnection(fed.address(), running_site)));
  const std::string old_cert = ReadText(files.cert);
  const std::string old_key = ReadText(files.key);

  // The site rotates its key and certificate in place; then the CA revokes the old one.
  TempDir scratch;
  config::TlsFiles fresh = fed.pki().IssueSite("site-a", "site-a-next");
  REQUIRE(crypto::WriteFileAtomically(files.key, ReadText(fresh.key), 0600).ok());
  REQUIRE(crypto::WriteFileAtomically(files.cert, ReadText(fresh.cert), 0644).ok());
  WriteCrl(fed.pki(), crl_path, {old_cert}, 2);

  // The old identity is now refused...
  config::TlsFiles old_files(files.ca, scratch.File("old.pem"), scratch.File("old.key"));
  REQUIRE(crypto::WriteFileAtomically(old_files.cert, old_cert, 0644).ok());
  REQUIRE(crypto::WriteFileAtomically(old_files.key, old_key, 0600).ok());
  CHECK(ProbeNewConnection(fed.address(), CredentialsFor(old_files)).status.error_code() ==
        grpc::StatusCode::UNAVAILABLE);
  // ...and the running site gets in again once it has re-read its files.
  ProbeResult after = Eventually([&] { return ProbeNewConnection(fed.address(), running_site); },
                                 Admitted);
  CHECK(Admitted(after));
}

TEST_CASE("Channel credentials refuse a key that belongs to another certificate", "[tls][pki]") {
  Federation fed({"site-a", "site-b"});  // not started: only its PKI is used
  const std::string dir = fed.pki().dir();
  config::TlsFiles mixed(fed.pki().ca_path(), dir + "/site-a.pem", dir + "/site-b.key");
  auto credentials = tls::MakeChannelCredentials(mixed);
  REQUIRE_FALSE(credentials.ok());
  CHECK_THAT(std::string(credentials.status().message()),
             Catch::Contains("does not match tls.cert") && Catch::Contains("site-b.key") &&
                 Catch::Contains("private key does not belong to the certificate"));

  config::TlsFiles coordinator = fed.pki().coordinator_files();
  coordinator.key = mixed.key;
  auto server = tls::MakeServerCredentials(coordinator);
  REQUIRE_FALSE(server.ok());
  CHECK_THAT(std::string(server.status().message()), Catch::Contains("does not match tls.cert"));
}

TEST_CASE("A site names the expected and the presented host names on a SAN mismatch",
          "[tls][pki][errors]") {
  Federation fed({"site-a"});
  fed.Start();
  auto credentials = CredentialsFor(fed.ClientConfigFor("site-a").tls);
  // The site expects coord.example.org; the coordinator's certificate is for localhost.
  ProbeResult result = ProbeNewConnection(fed.address(), credentials, "coord.example.org");
  CHECK(result.status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(result.status.error_message(),
             Catch::Contains("it is for DNS:localhost, IP:127.0.0.1, not for 'coord.example.org'"));
  // The names the certificate does carry are accepted.
  CHECK(Admitted(ProbeNewConnection(fed.address(), credentials, "localhost")));
}

TEST_CASE("A site says that the coordinator's certificate comes from another CA",
          "[tls][pki][errors]") {
  Federation fed({"site-a"});
  fed.Start();
  TempDir other_dir;
  TestPki other(other_dir.path(), "otherfed");
  config::TlsFiles files = fed.ClientConfigFor("site-a").tls;
  files.ca = other.ca_path();
  ProbeResult result = ProbeNewConnection(fed.address(), CredentialsFor(files));
  CHECK(result.status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(result.status.error_message(),
             Catch::Contains("issued by another CA: its issuer is CN=testfed CA, and the "
                             "federation CA is CN=otherfed CA") &&
                 Catch::Contains(other.ca_path()));
}

TEST_CASE("A site says when the coordinator's certificate has expired", "[tls][pki][errors]") {
  Federation fed({"site-a"});
  crypto::CertificateSpec spec;
  spec.common_name = "coordinator";
  spec.dns_names = {"localhost"};
  spec.ip_addresses = {"127.0.0.1"};
  spec.not_before = absl::Now() - absl::Hours(48);
  spec.not_after = absl::Now() - absl::Hours(1);
  spec.server_auth = spec.client_auth = true;
  auto expired = crypto::IssueCertificate(fed.pki().ca(), spec);
  REQUIRE(expired.ok());
  const config::TlsFiles files = fed.pki().coordinator_files();
  REQUIRE(crypto::WriteFileAtomically(files.key, expired->key_pem, 0600).ok());
  REQUIRE(crypto::WriteFileAtomically(files.cert, expired->cert_pem, 0644).ok());
  fed.Start();
  ProbeResult result =
      ProbeNewConnection(fed.address(), CredentialsFor(fed.ClientConfigFor("site-a").tls));
  CHECK(result.status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(result.status.error_message(),
             Catch::Contains("coordinator certificate CN=coordinator refused: expired at "));
}

TEST_CASE("A site certificate without serverAuth cannot pose as the coordinator",
          "[tls][pki][errors]") {
  Federation fed({"site-a"});
  // The coordinator serves with a client-only certificate that names 127.0.0.1.
  crypto::CertificateSpec spec;
  spec.common_name = "coordinator";
  spec.ip_addresses = {"127.0.0.1"};
  spec.not_before = absl::Now() - absl::Hours(1);
  spec.not_after = absl::Now() + absl::Hours(1);
  spec.client_auth = true;
  auto client_only = crypto::IssueCertificate(fed.pki().ca(), spec);
  REQUIRE(client_only.ok());
  const config::TlsFiles files = fed.pki().coordinator_files();
  REQUIRE(crypto::WriteFileAtomically(files.key, client_only->key_pem, 0600).ok());
  REQUIRE(crypto::WriteFileAtomically(files.cert, client_only->cert_pem, 0644).ok());
  fed.Start();
  ProbeResult result =
      ProbeNewConnection(fed.address(), CredentialsFor(fed.ClientConfigFor("site-a").tls));
  CHECK(result.status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(result.status.error_message(), Catch::Contains("no extendedKeyUsage serverAuth"));
}

TEST_CASE("A site refused by the coordinator can tell why from its own certificate",
          "[tls][pki][errors]") {
  Federation fed({"site-a"});
  fed.Start();
  // The coordinator ends these handshakes without a reason the site can read...
  config::TlsFiles expired = fed.pki().IssueSite("site-a", "site-a-expired",
                                                 absl::Now() - absl::Hours(48),
                                                 absl::Now() - absl::Hours(1));
  CHECK(ProbeNewConnection(fed.address(), CredentialsFor(expired)).status.error_code() ==
        grpc::StatusCode::UNAVAILABLE);
  TempDir other_dir;
  TestPki other(other_dir.path(), "otherfed");
  config::TlsFiles impostor = other.IssueSite("site-a");
  impostor.ca = fed.pki().ca_path();
  CHECK(ProbeNewConnection(fed.address(), CredentialsFor(impostor)).status.error_code() ==
        grpc::StatusCode::UNAVAILABLE);
  // ...so the site checks its own certificate against the federation CA it holds.
  CHECK_THAT(tls::OwnCertificateProblems(expired),
             Catch::Contains("site-a-expired.pem: expired at "));
  CHECK_THAT(tls::OwnCertificateProblems(impostor),
             Catch::Contains("issued by another CA: its issuer is CN=otherfed CA"));
  CHECK(tls::OwnCertificateProblems(fed.ClientConfigFor("site-a").tls).empty());
}

}  // namespace cohort::testing
