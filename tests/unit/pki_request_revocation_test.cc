// Unit tests for certificate requests, revocation lists, key/certificate matching and the
// refusal diagnosis in common/crypto/pki, and for the coordinator's RevocationList
// (common/tls/revocation). Every key, certificate and CRL is made with OpenSSL at run time.
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/crypto/pki.h"
#include "common/tls/revocation.h"
#include "common/tls/server_verifier.h"
#include "tests/support/temp_dir.h"

namespace cohort::crypto {
namespace {

using ::cohort::testing::TempDir;

PemIdentity MakeCa(const std::string& name) {
  absl::StatusOr<PemIdentity> ca =
      CreateCertificateAuthority(name, absl::Now() - absl::Hours(1), absl::Now() + absl::Hours(48));
  REQUIRE(ca.ok());
  return *std::move(ca);
}

const PemIdentity& DemoCa() {
  static const PemIdentity* ca = new PemIdentity(MakeCa("demo CA"));
  return *ca;
}

CertificateSpec SiteSpec(const std::string& site, const std::string& federation = "demo") {
  CertificateSpec spec;
  spec.common_name = site;
  spec.uris = {SiteIdentityUri(federation, site)};
  spec.not_before = absl::Now() - absl::Minutes(5);
  spec.not_after = absl::Now() + absl::Hours(24);
  spec.client_auth = true;
  return spec;
}

PemIdentity IssueSite(const std::string& site, const PemIdentity& ca = DemoCa()) {
  absl::StatusOr<PemIdentity> issued = IssueCertificate(ca, SiteSpec(site));
  REQUIRE(issued.ok());
  return *std::move(issued);
}

// A PEM key made with OpenSSL directly: RSA of `bits`, or an EC key on `curve`.
std::string OpenSslKey(const char* type, const char* curve_or_null, unsigned bits) {
  EVP_PKEY* key = nullptr;
  if (curve_or_null != nullptr) {
    key = EVP_PKEY_Q_keygen(nullptr, nullptr, type, curve_or_null);
  } else {
    key = EVP_PKEY_Q_keygen(nullptr, nullptr, type, static_cast<size_t>(bits));
  }
  REQUIRE(key != nullptr);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  REQUIRE(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  EVP_PKEY_free(key);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

std::string MakeRequest(const std::string& key_pem, const std::string& site) {
  CertificateSpec subject;
  subject.common_name = site;
  subject.uris = {SiteIdentityUri("demo", site)};
  absl::StatusOr<std::string> csr = CreateCertificateRequest(key_pem, subject);
  REQUIRE(csr.ok());
  return *std::move(csr);
}

TEST_CASE("A certificate request carries the site's CN, SPIFFE URI and key type", "[pki][csr]") {
  absl::StatusOr<std::string> key = GeneratePrivateKeyPem();
  REQUIRE(key.ok());
  const std::string csr = MakeRequest(*key, "hospital-a");
  CHECK(absl::StrContains(csr, "-----BEGIN CERTIFICATE REQUEST-----"));
  absl::StatusOr<CertificateRequestInfo> info = InspectCertificateRequest(csr);
  REQUIRE(info.ok());
  CHECK(info->common_name == "hospital-a");
  CHECK(info->uris == std::vector<std::string>{"spiffe://demo/site/hospital-a"});
  CHECK(info->dns_names.empty());
  CHECK(info->key_type == "EC P-256");
}

TEST_CASE("Signing a request binds the requester's key and the CA's chosen identity",
          "[pki][csr]") {
  absl::StatusOr<std::string> key = GeneratePrivateKeyPem();
  REQUIRE(key.ok());
  const std::string csr = MakeRequest(*key, "hospital-a");
  absl::StatusOr<std::string> cert = SignCertificateRequest(DemoCa(), csr, SiteSpec("hospital-a"));
  REQUIRE(cert.ok());
  CHECK(CheckKeyMatchesCertificate(*cert, *key).ok());
  CHECK(VerifyCertificate(*cert, DemoCa().cert_pem, absl::Now()).ok());
  absl::StatusOr<CertificateInfo> info = InspectCertificate(*cert);
  REQUIRE(info.ok());
  CHECK(info->common_name == "hospital-a");
  CHECK(info->uris == std::vector<std::string>{"spiffe://demo/site/hospital-a"});
  CHECK(info->client_auth);
  CHECK_FALSE(info->server_auth);
  CHECK(info->issuer_common_name == "demo CA");
}

TEST_CASE("An RSA 2048 request is signed and an RSA 1024 or P-384 request is refused",
          "[pki][csr]") {
  const std::string rsa2048 = MakeRequest(OpenSslKey("RSA", nullptr, 2048), "site-rsa");
  absl::StatusOr<CertificateRequestInfo> info = InspectCertificateRequest(rsa2048);
  REQUIRE(info.ok());
  CHECK(info->key_type == "RSA 2048");
  CHECK(SignCertificateRequest(DemoCa(), rsa2048, SiteSpec("site-rsa")).ok());

  absl::StatusOr<CertificateRequestInfo> weak =
      InspectCertificateRequest(MakeRequest(OpenSslKey("RSA", nullptr, 1024), "site-weak"));
  REQUIRE(weak.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(weak.status().message()), Catch::Contains("RSA 1024 bits"));
  CHECK_FALSE(
      SignCertificateRequest(DemoCa(), MakeRequest(OpenSslKey("RSA", nullptr, 1024), "w"),
                             SiteSpec("w"))
          .ok());

  absl::StatusOr<CertificateRequestInfo> p384 =
      InspectCertificateRequest(MakeRequest(OpenSslKey("EC", "P-384", 0), "site-384"));
  REQUIRE(p384.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(p384.status().message()), Catch::Contains("secp384r1"));
}

TEST_CASE("A request whose signature does not verify is refused", "[pki][csr]") {
  absl::StatusOr<std::string> key = GeneratePrivateKeyPem();
  REQUIRE(key.ok());
  std::string csr = MakeRequest(*key, "hospital-a");
  // Flip one bit in the DER body: the subject or the signature no longer match.
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_mem_buf(csr.data(), csr.size()), &BIO_free);
  X509_REQ* req = PEM_read_bio_X509_REQ(in.get(), nullptr, nullptr, nullptr);
  REQUIRE(req != nullptr);
  unsigned char* der = nullptr;
  const int length = i2d_X509_REQ(req, &der);
  X509_REQ_free(req);
  REQUIRE(length > 100);
  der[length - 80] ^= 0x01;  // inside the signed subjectPublicKeyInfo / attributes
  const unsigned char* p = der;
  X509_REQ* tampered = d2i_X509_REQ(nullptr, &p, length);
  OPENSSL_free(der);
  REQUIRE(tampered != nullptr);
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), &BIO_free);
  REQUIRE(PEM_write_bio_X509_REQ(out.get(), tampered) == 1);
  X509_REQ_free(tampered);
  char* data = nullptr;
  const long out_length = BIO_get_mem_data(out.get(), &data);
  const std::string tampered_pem(data, static_cast<size_t>(out_length));

  absl::StatusOr<CertificateRequestInfo> info = InspectCertificateRequest(tampered_pem);
  REQUIRE_FALSE(info.ok());
  CHECK(info.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_FALSE(SignCertificateRequest(DemoCa(), tampered_pem, SiteSpec("hospital-a")).ok());
}

TEST_CASE("A key that does not belong to the certificate is named as such", "[pki]") {
  const PemIdentity a = IssueSite("site-a");
  const PemIdentity b = IssueSite("site-b");
  CHECK(CheckKeyMatchesCertificate(a.cert_pem, a.key_pem).ok());
  absl::Status mismatch = CheckKeyMatchesCertificate(a.cert_pem, b.key_pem);
  REQUIRE(mismatch.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(mismatch.message()),
             Catch::Contains("private key does not belong to the certificate"));
}

TEST_CASE("A CRL lists revoked serials with time and reason and verifies with OpenSSL",
          "[pki][crl]") {
  const PemIdentity revoked = IssueSite("site-revoked");
  const PemIdentity good = IssueSite("site-good");
  absl::StatusOr<CertificateInfo> revoked_info = InspectCertificate(revoked.cert_pem);
  REQUIRE(revoked_info.ok());
  const absl::Time when = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()));
  CrlInfo spec;
  spec.this_update = when - absl::Minutes(5);
  spec.next_update = when + absl::Hours(24 * 7);
  spec.number = 7;
  spec.revoked = {{revoked_info->serial_hex, when, "keyCompromise"}};
  absl::StatusOr<std::string> crl = CreateCrl(DemoCa(), spec);
  REQUIRE(crl.ok());
  CHECK(absl::StrContains(*crl, "-----BEGIN X509 CRL-----"));

  absl::StatusOr<CrlInfo> parsed = ParseCrl(*crl, DemoCa().cert_pem);
  REQUIRE(parsed.ok());
  CHECK(parsed->issuer_common_name == "demo CA");
  CHECK(parsed->number == 7);
  CHECK(parsed->next_update == spec.next_update);
  REQUIRE(parsed->revoked.size() == 1);
  CHECK(parsed->revoked[0].serial_hex == revoked_info->serial_hex);
  CHECK(parsed->revoked[0].revoked_at == when);
  CHECK(parsed->revoked[0].reason == "keyCompromise");

  // OpenSSL's own CRL check agrees: the revoked one fails, the other passes.
  const auto openssl_verify = [&](const std::string& cert_pem) {
    std::unique_ptr<BIO, decltype(&BIO_free)> cb(BIO_new_mem_buf(cert_pem.data(), cert_pem.size()),
                                                 &BIO_free);
    std::unique_ptr<BIO, decltype(&BIO_free)> ab(
        BIO_new_mem_buf(DemoCa().cert_pem.data(), DemoCa().cert_pem.size()), &BIO_free);
    std::unique_ptr<BIO, decltype(&BIO_free)> lb(BIO_new_mem_buf(crl->data(), crl->size()),
                                                 &BIO_free);
    X509* cert = PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr);
    X509* ca = PEM_read_bio_X509(ab.get(), nullptr, nullptr, nullptr);
    X509_CRL* list = PEM_read_bio_X509_CRL(lb.get(), nullptr, nullptr, nullptr);
    X509_STORE* store = X509_STORE_new();
    X509_STORE_add_cert(store, ca);
    X509_STORE_add_crl(store, list);
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    X509_STORE_CTX* ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, cert, nullptr);
    const int ok = X509_verify_cert(ctx);
    const int error = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_CRL_free(list);
    X509_free(ca);
    X509_free(cert);
    return ok == 1 ? X509_V_OK : error;
  };
  CHECK(openssl_verify(revoked.cert_pem) == X509_V_ERR_CERT_REVOKED);
  CHECK(openssl_verify(good.cert_pem) == X509_V_OK);
}

TEST_CASE("A CRL signed by another CA is refused", "[pki][crl]") {
  const PemIdentity other = MakeCa("demo CA");  // same name, different key
  CrlInfo spec;
  spec.this_update = absl::Now();
  spec.next_update = absl::Now() + absl::Hours(1);
  absl::StatusOr<std::string> crl = CreateCrl(other, spec);
  REQUIRE(crl.ok());
  absl::StatusOr<CrlInfo> parsed = ParseCrl(*crl, DemoCa().cert_pem);
  REQUIRE(parsed.status().code() == absl::StatusCode::kUnauthenticated);
  CHECK_THAT(std::string(parsed.status().message()), Catch::Contains("not signed by the federation CA"));
}

TEST_CASE("CreateCrl refuses an unknown reason or a malformed serial", "[pki][crl]") {
  CrlInfo spec;
  spec.this_update = absl::Now();
  spec.next_update = absl::Now() + absl::Hours(1);
  spec.revoked = {{"0A1B", absl::Now(), "fellOffATruck"}};
  absl::StatusOr<std::string> bad_reason = CreateCrl(DemoCa(), spec);
  REQUIRE(bad_reason.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(bad_reason.status().message()), Catch::Contains("fellOffATruck"));
  spec.revoked = {{"XYZ", absl::Now(), "superseded"}};
  CHECK(CreateCrl(DemoCa(), spec).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(CanonicalSerialHex("00:0a:1B") == "A1B");
}

TEST_CASE("RefusalReasons names expiry, future validity, another CA, revocation and federation",
          "[pki]") {
  const absl::Time now = absl::Now();
  AcceptanceCriteria criteria;
  criteria.ca_pem = DemoCa().cert_pem;
  criteria.federation = "demo";
  criteria.at = now;

  const PemIdentity fine = IssueSite("site-fine");
  absl::StatusOr<std::vector<std::string>> none = RefusalReasons(fine.cert_pem, criteria);
  REQUIRE(none.ok());
  CHECK(none->empty());

  CertificateSpec expired_spec = SiteSpec("site-old");
  expired_spec.not_before = now - absl::Hours(48);
  expired_spec.not_after = now - absl::Hours(1);
  absl::StatusOr<PemIdentity> expired = IssueCertificate(DemoCa(), expired_spec);
  REQUIRE(expired.ok());
  auto reasons = RefusalReasons(expired->cert_pem, criteria);
  REQUIRE(reasons.ok());
  CHECK_THAT(absl::StrJoin(*reasons, "|"), Catch::StartsWith("expired at "));

  CertificateSpec future_spec = SiteSpec("site-new");
  future_spec.not_before = now + absl::Hours(2);
  future_spec.not_after = now + absl::Hours(48);
  absl::StatusOr<PemIdentity> future = IssueCertificate(DemoCa(), future_spec);
  REQUIRE(future.ok());
  reasons = RefusalReasons(future->cert_pem, criteria);
  REQUIRE(reasons.ok());
  CHECK_THAT(absl::StrJoin(*reasons, "|"), Catch::StartsWith("not yet valid"));

  const PemIdentity stranger = IssueSite("site-x", MakeCa("rogue CA"));
  reasons = RefusalReasons(stranger.cert_pem, criteria);
  REQUIRE(reasons.ok());
  CHECK_THAT(absl::StrJoin(*reasons, "|"),
             Catch::Contains("issued by another CA: its issuer is CN=rogue CA, and the "
                             "federation CA is CN=demo CA"));

  absl::StatusOr<PemIdentity> foreign = IssueCertificate(DemoCa(), SiteSpec("site-f", "otherfed"));
  REQUIRE(foreign.ok());
  reasons = RefusalReasons(foreign->cert_pem, criteria);
  REQUIRE(reasons.ok());
  CHECK_THAT(absl::StrJoin(*reasons, "|"),
             Catch::Contains("another federation: it names spiffe://otherfed/site/site-f"));

  absl::StatusOr<CertificateInfo> info = InspectCertificate(fine.cert_pem);
  REQUIRE(info.ok());
  CrlInfo spec;
  spec.this_update = now - absl::Minutes(1);
  spec.next_update = now + absl::Hours(1);
  spec.revoked = {{info->serial_hex, now, "cessationOfOperation"}};
  absl::StatusOr<std::string> crl = CreateCrl(DemoCa(), spec);
  REQUIRE(crl.ok());
  criteria.crl_pem = *crl;
  reasons = RefusalReasons(fine.cert_pem, criteria);
  REQUIRE(reasons.ok());
  REQUIRE(reasons->size() == 1);
  CHECK_THAT((*reasons)[0], Catch::StartsWith("revoked at ") &&
                                Catch::Contains("(reason: cessationOfOperation)"));
}

// --- tls::RevocationList --------------------------------------------------------------------

std::string WriteCrlFile(const TempDir& dir, const std::vector<RevokedCertificate>& revoked,
                         int64_t number, const PemIdentity& ca = DemoCa()) {
  CrlInfo spec;
  spec.this_update = absl::Now() - absl::Minutes(1);
  spec.next_update = absl::Now() + absl::Hours(1);
  spec.number = number;
  spec.revoked = revoked;
  absl::StatusOr<std::string> crl = CreateCrl(ca, spec);
  REQUIRE(crl.ok());
  const std::string path = dir.File("crl.pem");
  REQUIRE(WriteFileAtomically(path, *crl, 0644).ok());
  return path;
}

TEST_CASE("RevocationList refuses a revoked certificate and rereads the file when it changes",
          "[pki][crl][tls]") {
  TempDir dir;
  REQUIRE(WriteFileAtomically(dir.File("ca.pem"), DemoCa().cert_pem, 0644).ok());
  const PemIdentity site = IssueSite("site-a");
  absl::StatusOr<CertificateInfo> info = InspectCertificate(site.cert_pem);
  REQUIRE(info.ok());

  const std::string path = WriteCrlFile(dir, {}, 1);
  auto list = tls::RevocationList::Open(path, dir.File("ca.pem"));
  REQUIRE(list.ok());
  CHECK((*list)->Check(site.cert_pem).ok());

  WriteCrlFile(dir, {{info->serial_hex, absl::Now(), "keyCompromise"}}, 2);
  REQUIRE((*list)->Refresh(/*force=*/false).ok());
  absl::Status refused = (*list)->Check(site.cert_pem);
  REQUIRE(refused.code() == absl::StatusCode::kUnauthenticated);
  CHECK_THAT(std::string(refused.message()),
             Catch::Contains("CN=site-a") && Catch::Contains(info->serial_hex) &&
                 Catch::Contains("keyCompromise"));
  CHECK((*list)->number() == 2);
}

TEST_CASE("RevocationList keeps the CRL in force when an update is bad or older", "[pki][crl][tls]") {
  TempDir dir;
  REQUIRE(WriteFileAtomically(dir.File("ca.pem"), DemoCa().cert_pem, 0644).ok());
  const PemIdentity site = IssueSite("site-a");
  absl::StatusOr<CertificateInfo> info = InspectCertificate(site.cert_pem);
  REQUIRE(info.ok());
  const std::string path = WriteCrlFile(dir, {{info->serial_hex, absl::Now(), "unspecified"}}, 5);
  auto list = tls::RevocationList::Open(path, dir.File("ca.pem"));
  REQUIRE(list.ok());

  REQUIRE(WriteFileAtomically(path, "garbage\n", 0644).ok());
  CHECK_FALSE((*list)->Refresh(/*force=*/false).ok());
  CHECK_FALSE((*list)->Check(site.cert_pem).ok());

  WriteCrlFile(dir, {}, 5, MakeCa("demo CA"));  // right name, wrong key
  CHECK_FALSE((*list)->Refresh(/*force=*/false).ok());
  CHECK_FALSE((*list)->Check(site.cert_pem).ok());

  WriteCrlFile(dir, {}, 4);  // a replayed older CRL would un-revoke the site
  CHECK_FALSE((*list)->Refresh(/*force=*/false).ok());
  CHECK_FALSE((*list)->Check(site.cert_pem).ok());
  CHECK((*list)->number() == 5);
}

TEST_CASE("RevocationList refuses to open a CRL that the CA did not sign", "[pki][crl][tls]") {
  TempDir dir;
  REQUIRE(WriteFileAtomically(dir.File("ca.pem"), DemoCa().cert_pem, 0644).ok());
  const std::string path = WriteCrlFile(dir, {}, 1, MakeCa("rogue CA"));
  auto list = tls::RevocationList::Open(path, dir.File("ca.pem"));
  REQUIRE_FALSE(list.ok());
  CHECK_THAT(std::string(list.status().message()), Catch::Contains("not signed by the federation CA"));
}

// --- Handshake checks (messages) -----------------------------------------------------------

TEST_CASE("Host names match DNS SANs case-insensitively with one-label wildcards, IPs exactly",
          "[tls][pki]") {
  const std::vector<std::string> dns = {"coord.example.org", "*.fed.example.org"};
  const std::vector<std::string> ips = {"10.0.0.1", "::1"};
  CHECK(tls::HostMatchesCertificate("COORD.example.org", dns, ips));
  CHECK(tls::HostMatchesCertificate("a.fed.example.org", dns, ips));
  CHECK_FALSE(tls::HostMatchesCertificate("a.b.fed.example.org", dns, ips));
  CHECK_FALSE(tls::HostMatchesCertificate("fed.example.org", dns, ips));
  CHECK_FALSE(tls::HostMatchesCertificate("example.org", dns, ips));
  CHECK(tls::HostMatchesCertificate("10.0.0.1", dns, ips));
  CHECK(tls::HostMatchesCertificate("0:0:0:0:0:0:0:1", dns, ips));
  CHECK_FALSE(tls::HostMatchesCertificate("10.0.0.2", dns, ips));
  // An IP address never matches a DNS entry spelling it.
  CHECK_FALSE(tls::HostMatchesCertificate("10.0.0.3", {"10.0.0.3"}, {}));
}

PemIdentity IssueCoordinator(const PemIdentity& ca, bool server_auth = true) {
  CertificateSpec spec;
  spec.common_name = "coordinator";
  spec.dns_names = {"localhost"};
  spec.ip_addresses = {"127.0.0.1"};
  spec.not_before = absl::Now() - absl::Minutes(5);
  spec.not_after = absl::Now() + absl::Hours(1);
  spec.server_auth = server_auth;
  spec.client_auth = true;
  absl::StatusOr<PemIdentity> issued = IssueCertificate(ca, spec);
  REQUIRE(issued.ok());
  return *std::move(issued);
}

TEST_CASE("A site's check of the coordinator names the expected and the presented host names",
          "[tls][pki]") {
  const PemIdentity coordinator = IssueCoordinator(DemoCa());
  CHECK(tls::CheckCoordinatorCertificate(coordinator.cert_pem, DemoCa().cert_pem,
                                         "localhost:7443")
            .ok());
  CHECK(tls::CheckCoordinatorCertificate(coordinator.cert_pem, DemoCa().cert_pem, "127.0.0.1")
            .ok());
  absl::Status wrong = tls::CheckCoordinatorCertificate(coordinator.cert_pem, DemoCa().cert_pem,
                                                        "coord.example.org:7443");
  REQUIRE(wrong.code() == absl::StatusCode::kUnauthenticated);
  CHECK_THAT(std::string(wrong.message()),
             Catch::Contains("coordinator certificate CN=coordinator refused: it is for "
                             "DNS:localhost, IP:127.0.0.1, not for 'coord.example.org'"));
}

TEST_CASE("A site's check of the coordinator names another CA and a missing serverAuth",
          "[tls][pki]") {
  const PemIdentity rogue = IssueCoordinator(MakeCa("rogue CA"));
  absl::Status other_ca =
      tls::CheckCoordinatorCertificate(rogue.cert_pem, DemoCa().cert_pem, "localhost");
  CHECK_THAT(std::string(other_ca.message()),
             Catch::Contains("issued by another CA: its issuer is CN=rogue CA"));
  const PemIdentity client_only = IssueCoordinator(DemoCa(), /*server_auth=*/false);
  absl::Status no_eku =
      tls::CheckCoordinatorCertificate(client_only.cert_pem, DemoCa().cert_pem, "localhost");
  CHECK_THAT(std::string(no_eku.message()), Catch::Contains("no extendedKeyUsage serverAuth"));
}

TEST_CASE("The coordinator's check of a site names expiry, another CA and a server-only certificate",
          "[tls][pki]") {
  CHECK(tls::CheckSiteCertificate(IssueSite("site-a").cert_pem, DemoCa().cert_pem, nullptr).ok());

  CertificateSpec expired_spec = SiteSpec("site-old");
  expired_spec.not_before = absl::Now() - absl::Hours(48);
  expired_spec.not_after = absl::Now() - absl::Hours(1);
  absl::StatusOr<PemIdentity> expired = IssueCertificate(DemoCa(), expired_spec);
  REQUIRE(expired.ok());
  absl::Status s = tls::CheckSiteCertificate(expired->cert_pem, DemoCa().cert_pem, nullptr);
  REQUIRE(s.code() == absl::StatusCode::kUnauthenticated);
  CHECK_THAT(std::string(s.message()),
             Catch::StartsWith("client certificate CN=site-old serial ") &&
                 Catch::Contains("refused: expired at "));

  s = tls::CheckSiteCertificate(IssueSite("site-x", MakeCa("demo CA")).cert_pem,
                                DemoCa().cert_pem, nullptr);
  CHECK_THAT(std::string(s.message()),
             Catch::Contains("issued by another CA: its issuer is CN=demo CA, and the federation "
                             "CA is CN=demo CA (the same name, but a different key"));

  CertificateSpec server_only = SiteSpec("site-s");
  server_only.client_auth = false;
  server_only.server_auth = true;
  absl::StatusOr<PemIdentity> server_cert = IssueCertificate(DemoCa(), server_only);
  REQUIRE(server_cert.ok());
  s = tls::CheckSiteCertificate(server_cert->cert_pem, DemoCa().cert_pem, nullptr);
  CHECK_THAT(std::string(s.message()), Catch::Contains("no extendedKeyUsage clientAuth"));
}

}  // namespace
}  // namespace cohort::crypto
