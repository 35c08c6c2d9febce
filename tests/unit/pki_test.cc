// Unit tests for common/crypto: the X.509 PKI helpers and SHA-256.
#include "common/crypto/pki.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/crypto/sha256.h"

namespace cohort::crypto {
namespace {

namespace fs = std::filesystem;

// --- Test helpers -------------------------------------------------------------------------

struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
};

// Parses a PEM certificate with OpenSSL directly, independent of the code under test.
std::unique_ptr<X509, X509Free> ParseX509(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  return std::unique_ptr<X509, X509Free>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

std::unique_ptr<EVP_PKEY, X509Free> ParseKey(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  return std::unique_ptr<EVP_PKEY, X509Free>(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

// True if `cert` has extension `nid` and it is marked critical.
bool IsCritical(X509* cert, int nid) {
  const int index = X509_get_ext_by_NID(cert, nid, -1);
  return index >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, index)) == 1;
}

absl::Time Date(int year, int month, int day) {
  return absl::FromCivil(absl::CivilDay(year, month, day), absl::UTCTimeZone());
}

// A directory under the system temp dir with a unique name, removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    std::ostringstream name;
    name << "cohort_pki_test_" << getpid() << "_" << std::hex << rd() << rd();
    path_ = fs::temp_directory_path() / name.str();
    fs::create_directory(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

int PermissionBits(const fs::path& path) {
  struct stat st = {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  return static_cast<int>(st.st_mode & 07777);
}

// Restores the process umask on scope exit.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : previous_(umask(mask)) {}
  ~ScopedUmask() { umask(previous_); }

 private:
  mode_t previous_;
};

// A CA valid from an hour ago for ten years; shared by the tests that do not care.
const PemIdentity& TestCa() {
  static const PemIdentity* ca = [] {
    const absl::Time now = absl::Now();
    absl::StatusOr<PemIdentity> created =
        CreateCertificateAuthority("demo CA", now - absl::Hours(1), now + absl::Hours(24 * 3650));
    REQUIRE(created.ok());
    return new PemIdentity(*std::move(created));
  }();
  return *ca;
}

CertificateSpec SiteSpec(const std::string& site_id) {
  const absl::Time now = absl::Now();
  CertificateSpec spec;
  spec.common_name = site_id;
  spec.uris = {SiteIdentityUri("demo", site_id)};
  spec.not_before = now - absl::Minutes(5);
  spec.not_after = now + absl::Hours(24 * 825);
  spec.client_auth = true;
  return spec;
}

// --- SHA-256 ------------------------------------------------------------------------------

TEST_CASE("SHA-256 of \"abc\" equals the FIPS 180-2 test vector", "[sha256]") {
  CHECK(HexEncode(Sha256("abc")) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(Sha256("abc").size() == kSha256DigestSize);
}

TEST_CASE("SHA-256 of the empty string and the two-block FIPS vector are correct", "[sha256]") {
  CHECK(HexEncode(Sha256("")) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(HexEncode(Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("Sha256Hasher over a million 'a' in pieces equals the FIPS 180-2 vector", "[sha256]") {
  Sha256Hasher hasher;
  const std::string thousand(1000, 'a');
  for (int i = 0; i < 1000; ++i) hasher.Update(thousand);
  CHECK(HexEncode(hasher.Finish()) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("Sha256Hasher matches one-shot Sha256 and resets after Finish", "[sha256]") {
  Sha256Hasher hasher;
  hasher.Update("a");
  hasher.Update("");
  hasher.Update("bc");
  CHECK(hasher.Finish() == Sha256("abc"));
  // After Finish the hasher starts a new, empty message.
  CHECK(hasher.Finish() == Sha256(""));
  hasher.Update("hello");
  Sha256Hasher moved = std::move(hasher);
  moved.Update(" world");
  CHECK(moved.Finish() == Sha256("hello world"));
}

TEST_CASE("HexEncode writes two lowercase digits per byte", "[sha256]") {
  CHECK(HexEncode("") == "");
  CHECK(HexEncode(std::string("\x00\x01\xab\xff", 4)) == "0001abff");
}

// --- Keys and CA --------------------------------------------------------------------------

TEST_CASE("GeneratePrivateKeyPem returns a PKCS#8 ECDSA P-256 key", "[pki]") {
  absl::StatusOr<std::string> pem = GeneratePrivateKeyPem();
  REQUIRE(pem.ok());
  CHECK(absl::StartsWith(*pem, "-----BEGIN PRIVATE KEY-----"));
  auto key = ParseKey(*pem);
  REQUIRE(key != nullptr);
  CHECK(EVP_PKEY_is_a(key.get(), "EC"));
  char group[64] = {};
  size_t group_length = 0;
  REQUIRE(EVP_PKEY_get_group_name(key.get(), group, sizeof(group), &group_length) == 1);
  CHECK(std::string(group) == "prime256v1");
  // Two calls give two different keys.
  absl::StatusOr<std::string> other = GeneratePrivateKeyPem();
  REQUIRE(other.ok());
  CHECK(*other != *pem);
}

TEST_CASE("CreateCertificateAuthority makes a self-signed CA with the required extensions",
          "[pki]") {
  const PemIdentity& ca = TestCa();
  auto cert = ParseX509(ca.cert_pem);
  REQUIRE(cert != nullptr);
  CHECK(X509_get_version(cert.get()) == X509_VERSION_3);
  CHECK(X509_check_ca(cert.get()) == 1);
  CHECK(IsCritical(cert.get(), NID_basic_constraints));
  CHECK(IsCritical(cert.get(), NID_key_usage));
  CHECK(X509_get_key_usage(cert.get()) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  CHECK(X509_get0_subject_key_id(cert.get()) != nullptr);
  CHECK((X509_get_extension_flags(cert.get()) & EXFLAG_SS) != 0);  // self-signed

  auto key = ParseKey(ca.key_pem);
  REQUIRE(key != nullptr);
  CHECK(X509_check_private_key(cert.get(), key.get()) == 1);
  CHECK(X509_verify(cert.get(), key.get()) == 1);

  absl::StatusOr<CertificateInfo> info = InspectCertificate(ca.cert_pem);
  REQUIRE(info.ok());
  CHECK(info->is_ca);
  CHECK(info->common_name == "demo CA");
  CHECK(info->issuer_common_name == "demo CA");
  // A CA certificate verifies against itself.
  CHECK(VerifyCertificate(ca.cert_pem, ca.cert_pem, absl::Now()).ok());
}

TEST_CASE("CreateCertificateAuthority refuses an empty name or an empty window", "[pki]") {
  const absl::Time now = absl::Now();
  absl::StatusOr<PemIdentity> no_name = CreateCertificateAuthority("", now, now + absl::Hours(1));
  CHECK(no_name.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(no_name.status().message(), "common name"));

  absl::StatusOr<PemIdentity> backwards =
      CreateCertificateAuthority("ca", now, now - absl::Hours(1));
  CHECK(backwards.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(backwards.status().message(), "not_after"));
  absl::StatusOr<PemIdentity> empty = CreateCertificateAuthority("ca", now, now);
  CHECK(empty.status().code() == absl::StatusCode::kInvalidArgument);

  absl::StatusOr<PemIdentity> too_long =
      CreateCertificateAuthority(std::string(65, 'x'), now, now + absl::Hours(1));
  CHECK(too_long.status().code() == absl::StatusCode::kInvalidArgument);
  absl::StatusOr<PemIdentity> infinite =
      CreateCertificateAuthority("ca", now, absl::InfiniteFuture());
  CHECK(infinite.status().code() == absl::StatusCode::kInvalidArgument);
}

// --- Issuing and verifying ----------------------------------------------------------------

TEST_CASE("IssueCertificate signs a leaf that verifies against its CA", "[pki]") {
  absl::StatusOr<PemIdentity> leaf = IssueCertificate(TestCa(), SiteSpec("hospital-a"));
  REQUIRE(leaf.ok());
  CHECK(VerifyCertificate(leaf->cert_pem, TestCa().cert_pem, absl::Now()).ok());

  // Cross-check with OpenSSL directly: the CA's public key verifies the signature.
  auto cert = ParseX509(leaf->cert_pem);
  auto ca_cert = ParseX509(TestCa().cert_pem);
  REQUIRE(cert != nullptr);
  REQUIRE(ca_cert != nullptr);
  CHECK(X509_verify(cert.get(), X509_get0_pubkey(ca_cert.get())) == 1);
  CHECK(X509_check_issued(ca_cert.get(), cert.get()) == X509_V_OK);
  // The returned key belongs to the certificate.
  auto key = ParseKey(leaf->key_pem);
  REQUIRE(key != nullptr);
  CHECK(X509_check_private_key(cert.get(), key.get()) == 1);
  CHECK(absl::StartsWith(leaf->key_pem, "-----BEGIN PRIVATE KEY-----"));
}

TEST_CASE("A leaf has CA:FALSE, the leaf key usages, key identifiers and an ECDSA-SHA256 signature",
          "[pki]") {
  absl::StatusOr<PemIdentity> leaf = IssueCertificate(TestCa(), SiteSpec("hospital-a"));
  REQUIRE(leaf.ok());
  auto cert = ParseX509(leaf->cert_pem);
  auto ca_cert = ParseX509(TestCa().cert_pem);
  REQUIRE(cert != nullptr);
  REQUIRE(ca_cert != nullptr);

  CHECK(X509_check_ca(cert.get()) == 0);
  CHECK(IsCritical(cert.get(), NID_basic_constraints));
  CHECK((X509_get_extension_flags(cert.get()) & EXFLAG_BCONS) != 0);
  CHECK(IsCritical(cert.get(), NID_key_usage));
  CHECK(X509_get_key_usage(cert.get()) == (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
  CHECK(X509_get_signature_nid(cert.get()) == NID_ecdsa_with_SHA256);

  const ASN1_OCTET_STRING* authority_key_id = X509_get0_authority_key_id(cert.get());
  const ASN1_OCTET_STRING* ca_subject_key_id = X509_get0_subject_key_id(ca_cert.get());
  REQUIRE(authority_key_id != nullptr);
  REQUIRE(ca_subject_key_id != nullptr);
  CHECK(ASN1_OCTET_STRING_cmp(authority_key_id, ca_subject_key_id) == 0);
  CHECK(X509_get0_subject_key_id(cert.get()) != nullptr);
}

TEST_CASE("Serial numbers are random, positive and at most 128 bits", "[pki]") {
  absl::StatusOr<PemIdentity> first = IssueCertificate(TestCa(), SiteSpec("hospital-a"));
  absl::StatusOr<PemIdentity> second = IssueCertificate(TestCa(), SiteSpec("hospital-a"));
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  absl::StatusOr<CertificateInfo> a = InspectCertificate(first->cert_pem);
  absl::StatusOr<CertificateInfo> b = InspectCertificate(second->cert_pem);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->serial_hex != b->serial_hex);

  auto cert = ParseX509(first->cert_pem);
  REQUIRE(cert != nullptr);
  std::unique_ptr<BIGNUM, X509Free> serial(
      ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  REQUIRE(serial != nullptr);
  CHECK(!BN_is_negative(serial.get()));
  CHECK(!BN_is_zero(serial.get()));
  CHECK(BN_num_bits(serial.get()) <= 128);
}

TEST_CASE("A certificate issued by another CA does not verify", "[pki]") {
  const absl::Time now = absl::Now();
  absl::StatusOr<PemIdentity> other_ca =
      CreateCertificateAuthority("demo CA", now - absl::Hours(1), now + absl::Hours(24));
  REQUIRE(other_ca.ok());
  absl::StatusOr<PemIdentity> leaf = IssueCertificate(*other_ca, SiteSpec("intruder"));
  REQUIRE(leaf.ok());

  // Same issuer name, different key: the signature check must catch it.
  absl::Status status = VerifyCertificate(leaf->cert_pem, TestCa().cert_pem, now);
  CHECK(status.code() == absl::StatusCode::kUnauthenticated);
  CHECK(absl::StrContains(status.message(), "verification failed"));
  CHECK(VerifyCertificate(leaf->cert_pem, other_ca->cert_pem, now).ok());
  // With both CAs in the bundle it verifies again.
  CHECK(VerifyCertificate(leaf->cert_pem, TestCa().cert_pem + other_ca->cert_pem, now).ok());
}

TEST_CASE("Expired validity window is encoded as given", "[pki]") {
  absl::StatusOr<PemIdentity> old_ca =
      CreateCertificateAuthority("old CA", Date(2000, 1, 1), Date(2030, 1, 1));
  REQUIRE(old_ca.ok());
  CertificateSpec spec = SiteSpec("hospital-a");
  spec.not_before = Date(2001, 1, 1);
  spec.not_after = Date(2002, 1, 1) + absl::Seconds(1) + absl::Milliseconds(900);
  absl::StatusOr<PemIdentity> leaf = IssueCertificate(*old_ca, spec);
  REQUIRE(leaf.ok());

  absl::StatusOr<CertificateInfo> info = InspectCertificate(leaf->cert_pem);
  REQUIRE(info.ok());
  CHECK(info->not_before == Date(2001, 1, 1));
  // X.509 has one-second resolution: fractions are dropped.
  CHECK(info->not_after == Date(2002, 1, 1) + absl::Seconds(1));

  CHECK(VerifyCertificate(leaf->cert_pem, old_ca->cert_pem, Date(2001, 6, 1)).ok());
  absl::Status expired = VerifyCertificate(leaf->cert_pem, old_ca->cert_pem, absl::Now());
  CHECK(expired.code() == absl::StatusCode::kUnauthenticated);
  CHECK(absl::StrContains(expired.message(), "expired"));
  absl::Status early = VerifyCertificate(leaf->cert_pem, old_ca->cert_pem, Date(2000, 6, 1));
  CHECK(early.code() == absl::StatusCode::kUnauthenticated);
  CHECK(absl::StrContains(early.message(), "not yet valid"));
}

TEST_CASE("Dates from 2050 on are encoded as GeneralizedTime and read back", "[pki]") {
  absl::StatusOr<PemIdentity> ca =
      CreateCertificateAuthority("long CA", Date(2020, 1, 1), Date(2101, 3, 4));
  REQUIRE(ca.ok());
  absl::StatusOr<CertificateInfo> info = InspectCertificate(ca->cert_pem);
  REQUIRE(info.ok());
  CHECK(info->not_before == Date(2020, 1, 1));
  CHECK(info->not_after == Date(2101, 3, 4));
}

TEST_CASE("Site certificate carries the SPIFFE URI and common name", "[pki]") {
  CHECK(SiteIdentityUri("demo", "hospital-a") == "spiffe://demo/site/hospital-a");
  absl::StatusOr<PemIdentity> leaf = IssueCertificate(TestCa(), SiteSpec("hospital-a"));
  REQUIRE(leaf.ok());
  absl::StatusOr<CertificateInfo> info = InspectCertificate(leaf->cert_pem);
  REQUIRE(info.ok());
  CHECK(info->common_name == "hospital-a");
  CHECK(info->uris == std::vector<std::string>{"spiffe://demo/site/hospital-a"});
  CHECK(info->dns_names.empty());
  CHECK(info->ip_addresses.empty());
  CHECK(info->issuer_common_name == "demo CA");
  CHECK_FALSE(info->is_ca);
  CHECK(info->client_auth);
  CHECK_FALSE(info->server_auth);
  CHECK(info->serial_hex.size() >= 30);
  CHECK(info->sha256_fingerprint_hex.size() == 64);
}

TEST_CASE("Coordinator certificate carries DNS and IP SANs and both EKUs", "[pki]") {
  CertificateSpec spec = SiteSpec("coordinator");
  spec.uris.clear();
  spec.dns_names = {"localhost", "coordinator.example.org"};
  spec.ip_addresses = {"127.0.0.1", "::1", "2001:db8::42"};
  spec.server_auth = true;
  spec.client_auth = true;
  absl::StatusOr<PemIdentity> leaf = IssueCertificate(TestCa(), spec);
  REQUIRE(leaf.ok());
  absl::StatusOr<CertificateInfo> info = InspectCertificate(leaf->cert_pem);
  REQUIRE(info.ok());
  CHECK(info->dns_names == spec.dns_names);
  CHECK(info->ip_addresses == spec.ip_addresses);
  CHECK(info->uris.empty());
  CHECK(info->server_auth);
  CHECK(info->client_auth);

  // OpenSSL's own host/IP matching agrees.
  auto cert = ParseX509(leaf->cert_pem);
  REQUIRE(cert != nullptr);
  CHECK(X509_check_host(cert.get(), "localhost", 0, 0, nullptr) == 1);
  CHECK(X509_check_ip_asc(cert.get(), "127.0.0.1", 0) == 1);
  CHECK(X509_check_ip_asc(cert.get(), "10.0.0.1", 0) == 0);
  CHECK(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_SERVER, 0) == 1);
  CHECK(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_CLIENT, 0) == 1);
}

TEST_CASE("A site certificate is not valid for TLS server use", "[pki]") {
  absl::StatusOr<PemIdentity> leaf = IssueCertificate(TestCa(), SiteSpec("hospital-a"));
  REQUIRE(leaf.ok());
  auto cert = ParseX509(leaf->cert_pem);
  REQUIRE(cert != nullptr);
  CHECK(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_CLIENT, 0) == 1);
  CHECK(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_SERVER, 0) == 0);
}

// --- Invalid input ------------------------------------------------------------------------

TEST_CASE("Garbage PEM is refused with InvalidArgument", "[pki]") {
  const std::string garbage =
      "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n";

  absl::StatusOr<CertificateInfo> info = InspectCertificate(garbage);
  CHECK(info.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(InspectCertificate("").status().code() == absl::StatusCode::kInvalidArgument);
  // The message names what failed and carries OpenSSL's reason.
  absl::StatusOr<CertificateInfo> plain = InspectCertificate("hello");
  CHECK(absl::StrContains(plain.status().message(), "PEM certificate"));
  CHECK(absl::StrContains(plain.status().message(), "no start line"));

  PemIdentity bad_cert{garbage, TestCa().key_pem};
  CHECK(IssueCertificate(bad_cert, SiteSpec("a")).status().code() ==
        absl::StatusCode::kInvalidArgument);
  PemIdentity bad_key{TestCa().cert_pem, "garbage"};
  absl::StatusOr<PemIdentity> from_bad_key = IssueCertificate(bad_key, SiteSpec("a"));
  CHECK(from_bad_key.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(from_bad_key.status().message(), "CA key"));

  CHECK(VerifyCertificate(garbage, TestCa().cert_pem, absl::Now()).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(VerifyCertificate(TestCa().cert_pem, garbage, absl::Now()).code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("A CA certificate with someone else's key is refused", "[pki]") {
  absl::StatusOr<std::string> stray_key = GeneratePrivateKeyPem();
  REQUIRE(stray_key.ok());
  absl::StatusOr<PemIdentity> leaf =
      IssueCertificate(PemIdentity{TestCa().cert_pem, *stray_key}, SiteSpec("a"));
  CHECK(leaf.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(leaf.status().message(), "CA key matches"));
}

TEST_CASE("An encrypted CA key is refused instead of prompting for a password", "[pki]") {
  auto key = ParseKey(TestCa().key_pem);
  REQUIRE(key != nullptr);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  static constexpr char kPassphrase[] = "correct horse";
  REQUIRE(PEM_write_bio_PKCS8PrivateKey(bio.get(), key.get(), EVP_aes_256_cbc(), kPassphrase,
                                        sizeof(kPassphrase) - 1, nullptr, nullptr) == 1);
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  const std::string encrypted(data, static_cast<size_t>(length));
  REQUIRE(absl::StrContains(encrypted, "ENCRYPTED PRIVATE KEY"));

  absl::StatusOr<PemIdentity> leaf =
      IssueCertificate(PemIdentity{TestCa().cert_pem, encrypted}, SiteSpec("a"));
  CHECK(leaf.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(leaf.status().message(), "unencrypted"));
}

TEST_CASE("A leaf certificate cannot act as a CA", "[pki]") {
  absl::StatusOr<PemIdentity> leaf = IssueCertificate(TestCa(), SiteSpec("hospital-a"));
  REQUIRE(leaf.ok());
  absl::StatusOr<PemIdentity> grandchild = IssueCertificate(*leaf, SiteSpec("hospital-b"));
  CHECK(grandchild.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(grandchild.status().message(), "not a certificate authority"));
}

TEST_CASE("Invalid certificate specs are refused with InvalidArgument", "[pki]") {
  CertificateSpec no_name = SiteSpec("a");
  no_name.common_name.clear();
  CHECK(IssueCertificate(TestCa(), no_name).status().code() == absl::StatusCode::kInvalidArgument);

  CertificateSpec backwards = SiteSpec("a");
  backwards.not_after = backwards.not_before;
  CHECK(IssueCertificate(TestCa(), backwards).status().code() ==
        absl::StatusCode::kInvalidArgument);

  for (const char* bad_ip : {"300.1.1.1", "localhost", "1.2.3", "1.2.3.4 ", "::g", ""}) {
    CertificateSpec spec = SiteSpec("a");
    spec.ip_addresses = {bad_ip};
    absl::StatusOr<PemIdentity> leaf = IssueCertificate(TestCa(), spec);
    INFO("ip = '" << bad_ip << "'");
    CHECK(leaf.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(absl::StrContains(leaf.status().message(), std::string("'") + bad_ip + "'"));
  }

  CertificateSpec empty_dns = SiteSpec("a");
  empty_dns.dns_names = {""};
  CHECK(IssueCertificate(TestCa(), empty_dns).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CertificateSpec spaced_dns = SiteSpec("a");
  spaced_dns.dns_names = {"two words"};
  CHECK(IssueCertificate(TestCa(), spaced_dns).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CertificateSpec relative_uri = SiteSpec("a");
  relative_uri.uris = {"site/a"};
  CHECK(IssueCertificate(TestCa(), relative_uri).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

// --- Files --------------------------------------------------------------------------------

TEST_CASE("WriteFileAtomically sets key permissions to 0600", "[pki][files]") {
  TempDir dir;
  const fs::path key = dir.path() / "site.key";
  ScopedUmask umask_guard(0);  // even a permissive umask must not widen the mode
  REQUIRE(WriteFileAtomically(key.string(), "secret", 0600).ok());
  CHECK(PermissionBits(key) == 0600);
  CHECK(ReadAll(key) == "secret");
}

TEST_CASE("WriteFileAtomically sets certificate permissions to 0644 despite a strict umask",
          "[pki][files]") {
  TempDir dir;
  const fs::path cert = dir.path() / "site.pem";
  ScopedUmask umask_guard(077);
  REQUIRE(WriteFileAtomically(cert.string(), TestCa().cert_pem, 0644).ok());
  CHECK(PermissionBits(cert) == 0644);
  CHECK(ReadAll(cert) == TestCa().cert_pem);
}

TEST_CASE("WriteFileAtomically replaces an existing file and leaves no temporary files",
          "[pki][files]") {
  TempDir dir;
  const fs::path file = dir.path() / "data.txt";
  REQUIRE(WriteFileAtomically(file.string(), "first version, longer", 0644).ok());
  REQUIRE(WriteFileAtomically(file.string(), "second", 0600).ok());
  CHECK(ReadAll(file) == "second");
  CHECK(PermissionBits(file) == 0600);
  REQUIRE(WriteFileAtomically(file.string(), "", 0644).ok());
  CHECK(ReadAll(file).empty());

  int entries = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) {
    ++entries;
    CHECK(entry.path().filename() == "data.txt");
  }
  CHECK(entries == 1);
}

TEST_CASE("WriteFileAtomically creates no directories and rejects bad modes", "[pki][files]") {
  TempDir dir;
  const fs::path missing = dir.path() / "missing" / "file.txt";
  absl::Status status = WriteFileAtomically(missing.string(), "x", 0644);
  CHECK(status.code() == absl::StatusCode::kNotFound);
  CHECK_FALSE(fs::exists(dir.path() / "missing"));

  CHECK(WriteFileAtomically((dir.path() / "f").string(), "x", 010000).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(WriteFileAtomically("", "x", 0644).code() == absl::StatusCode::kInvalidArgument);
  CHECK(WriteFileAtomically(dir.path().string() + "/", "x", 0644).code() ==
        absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cohort::crypto
