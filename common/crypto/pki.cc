#include "common/crypto/pki.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>
#include <filesystem>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto/sha256.h"
#include "common/util/files.h"

namespace cohort::crypto {
namespace {

// Frees OpenSSL objects held in std::unique_ptr. ASN1_INTEGER, ASN1_TIME,
// ASN1_OCTET_STRING and ASN1_IA5STRING are all typedefs of ASN1_STRING, so the
// ASN1_STRING overload covers them.
struct OpenSslFree {
  void operator()(BIO* p) const { BIO_free_all(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(ASN1_STRING* p) const { ASN1_STRING_free(p); }
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
  void operator()(GENERAL_NAME* p) const { GENERAL_NAME_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};

// Frees buffers that OpenSSL allocated with OPENSSL_malloc (BN_bn2hex, ASN1_STRING_to_UTF8).
struct OpenSslBufferFree {
  void operator()(void* p) const { OPENSSL_free(p); }
};

using AsnStringPtr = std::unique_ptr<ASN1_STRING, OpenSslFree>;
using BignumPtr = std::unique_ptr<BIGNUM, OpenSslFree>;
using BioPtr = std::unique_ptr<BIO, OpenSslFree>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, OpenSslFree>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, OpenSslFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, OpenSslFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslFree>;
using X509ExtensionPtr = std::unique_ptr<X509_EXTENSION, OpenSslFree>;
using X509Ptr = std::unique_ptr<X509, OpenSslFree>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, OpenSslFree>;
using X509StorePtr = std::unique_ptr<X509_STORE, OpenSslFree>;

// RFC 5280 upper bound on the length of a commonName attribute.
constexpr size_t kMaxCommonNameLength = 64;
// Size of certificate serial numbers in bytes (128 bits of randomness).
constexpr int kSerialBytes = 16;

// Drains this thread's OpenSSL error queue into one readable string.
std::string DrainOpenSslErrors() {
  std::string out;
  char buffer[256];
  while (unsigned long err = ERR_get_error()) {
    ERR_error_string_n(err, buffer, sizeof(buffer));
    if (!out.empty()) out += "; ";
    out += buffer;
  }
  return out.empty() ? "no OpenSSL error detail" : out;
}

// A status with code `code` saying that `what` failed, with OpenSSL's error details.
absl::Status OpenSslError(absl::StatusCode code, absl::string_view what) {
  return absl::Status(code, absl::StrCat(what, " failed: ", DrainOpenSslErrors()));
}

absl::Status InternalError(absl::string_view what) {
  return OpenSslError(absl::StatusCode::kInternal, what);
}

// Password callback that refuses to supply one, so that reading an encrypted key fails
// instead of OpenSSL prompting on the terminal.
int RefusePassword(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) { return -1; }

// A read-only memory BIO over `data`, which must outlive the BIO.
absl::StatusOr<BioPtr> ReadOnlyBio(absl::string_view data) {
  if (data.size() > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError("PEM input is too large");
  }
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (bio == nullptr) return InternalError("BIO_new_mem_buf");
  return bio;
}

// Copies the contents of a memory BIO into a string.
std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  return length > 0 ? std::string(data, static_cast<size_t>(length)) : std::string();
}

// Parses the first PEM certificate in `pem`; `what` names it in error messages.
absl::StatusOr<X509Ptr> ParseCertificate(absl::string_view pem, absl::string_view what) {
  absl::StatusOr<BioPtr> bio = ReadOnlyBio(pem);
  if (!bio.ok()) return bio.status();
  X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, RefusePassword, nullptr));
  if (cert == nullptr) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("parsing ", what, " as a PEM certificate"));
  }
  return cert;
}

// Parses a PEM private key (PKCS#8 or traditional); encrypted keys are refused.
absl::StatusOr<PkeyPtr> ParsePrivateKey(absl::string_view pem, absl::string_view what) {
  absl::StatusOr<BioPtr> bio = ReadOnlyBio(pem);
  if (!bio.ok()) return bio.status();
  PkeyPtr key(PEM_read_bio_PrivateKey(bio->get(), nullptr, RefusePassword, nullptr));
  if (key == nullptr) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("parsing ", what, " as an unencrypted PEM private key"));
  }
  return key;
}

// Generates a fresh ECDSA P-256 key pair.
absl::StatusOr<PkeyPtr> GenerateP256Key() {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  if (ctx == nullptr) return InternalError("EVP_PKEY_CTX_new_from_name(EC)");
  if (EVP_PKEY_keygen_init(ctx.get()) <= 0) return InternalError("EVP_PKEY_keygen_init");
  if (EVP_PKEY_CTX_set_group_name(ctx.get(), "P-256") <= 0) {
    return InternalError("EVP_PKEY_CTX_set_group_name(P-256)");
  }
  EVP_PKEY* raw = nullptr;
  if (EVP_PKEY_generate(ctx.get(), &raw) <= 0) return InternalError("EVP_PKEY_generate");
  return PkeyPtr(raw);
}

// Encodes `key` as unencrypted PKCS#8 PEM. The intermediate buffer is a secure-memory
// BIO so the key bytes are wiped when it is freed.
absl::StatusOr<std::string> PrivateKeyToPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (bio == nullptr) return InternalError("BIO_new(secmem)");
  if (PEM_write_bio_PKCS8PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return InternalError("PEM_write_bio_PKCS8PrivateKey");
  }
  return BioContents(bio.get());
}

absl::StatusOr<std::string> CertificateToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr) return InternalError("BIO_new(mem)");
  if (PEM_write_bio_X509(bio.get(), cert) != 1) return InternalError("PEM_write_bio_X509");
  return BioContents(bio.get());
}

// Sets `target` to `t`, truncated to whole seconds. ASN1_TIME_set picks UTCTime for
// years 1950-2049 and GeneralizedTime otherwise, as RFC 5280 requires.
absl::Status SetAsn1Time(ASN1_TIME* target, absl::Time t, absl::string_view field) {
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be a finite time"));
  }
  const int64_t year = absl::ToCivilSecond(t, absl::UTCTimeZone()).year();
  if (year < 1 || year > 9999) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " ", absl::FormatTime(t), " is outside years 0001-9999"));
  }
  if (ASN1_TIME_set(target, absl::ToTimeT(t)) == nullptr) {
    return InternalError(absl::StrCat("ASN1_TIME_set(", field, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Time> Asn1TimeToAbsl(const ASN1_TIME* t, absl::string_view field) {
  struct tm parts = {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &parts) != 1) {
    return OpenSslError(absl::StatusCode::kInvalidArgument, absl::StrCat("decoding ", field));
  }
  return absl::FromCivil(absl::CivilSecond(parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                                           parts.tm_hour, parts.tm_min, parts.tm_sec),
                         absl::UTCTimeZone());
}

// Returns the (first) commonName of `name` as UTF-8, or "" if there is none.
absl::StatusOr<std::string> CommonNameOf(const X509_NAME* name) {
  const int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (index < 0) return std::string();
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, data);
  if (length < 0) return OpenSslError(absl::StatusCode::kInvalidArgument, "decoding commonName");
  std::unique_ptr<unsigned char, OpenSslBufferFree> owner(utf8);
  return std::string(reinterpret_cast<const char*>(utf8), static_cast<size_t>(length));
}

absl::Status ValidateWindow(absl::Time not_before, absl::Time not_after) {
  if (not_after <= not_before) {
    return absl::InvalidArgumentError(absl::StrCat("not_after (", absl::FormatTime(not_after),
                                                   ") must be later than not_before (",
                                                   absl::FormatTime(not_before), ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateCommonName(const std::string& common_name) {
  if (common_name.empty()) return absl::InvalidArgumentError("common name must not be empty");
  if (common_name.size() > kMaxCommonNameLength) {
    return absl::InvalidArgumentError(absl::StrCat(
        "common name '", common_name, "' is longer than ", kMaxCommonNameLength, " bytes"));
  }
  return absl::OkStatus();
}

// DNS names and URIs are IA5Strings: they must be non-empty printable ASCII without spaces.
bool IsPrintableAsciiToken(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// Parses IPv4 or IPv6 text into its 4- or 16-byte network-order form.
absl::StatusOr<std::string> ParseIpAddress(const std::string& text) {
  unsigned char buffer[16];
  if (inet_pton(AF_INET, text.c_str(), buffer) == 1) {
    return std::string(reinterpret_cast<const char*>(buffer), 4);
  }
  if (inet_pton(AF_INET6, text.c_str(), buffer) == 1) {
    return std::string(reinterpret_cast<const char*>(buffer), 16);
  }
  return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not an IPv4 or IPv6 address"));
}

// Formats a 4- or 16-byte iPAddress SAN as text; other lengths (e.g. name-constraint
// subnets) are shown as hex.
std::string FormatIpAddress(const unsigned char* data, int length) {
  char buffer[INET6_ADDRSTRLEN] = {};
  if (length == 4 && inet_ntop(AF_INET, data, buffer, sizeof(buffer)) != nullptr) return buffer;
  if (length == 16 && inet_ntop(AF_INET6, data, buffer, sizeof(buffer)) != nullptr) return buffer;
  return absl::StrCat("hex:",
                      HexEncode(absl::string_view(reinterpret_cast<const char*>(data), length)));
}

// Appends a GENERAL_NAME of `type` whose value is an ASN1_STRING holding `value`.
absl::Status PushGeneralName(GENERAL_NAMES* names, int type, absl::string_view value) {
  AsnStringPtr str(type == GEN_IPADD ? ASN1_OCTET_STRING_new() : ASN1_IA5STRING_new());
  if (str == nullptr) return InternalError("allocating a subjectAltName string");
  if (ASN1_STRING_set(str.get(), value.data(), static_cast<int>(value.size())) != 1) {
    return InternalError("ASN1_STRING_set(subjectAltName)");
  }
  GeneralNamePtr name(GENERAL_NAME_new());
  if (name == nullptr) return InternalError("GENERAL_NAME_new");
  GENERAL_NAME_set0_value(name.get(), type, str.release());  // `name` now owns the string
  if (sk_GENERAL_NAME_push(names, name.get()) <= 0) return InternalError("sk_GENERAL_NAME_push");
  name.release();  // now owned by `names`
  return absl::OkStatus();
}

// Builds the subjectAltName list for `spec`; returns null if it asks for no SANs.
absl::StatusOr<GeneralNamesPtr> BuildSubjectAltNames(const CertificateSpec& spec) {
  if (spec.dns_names.empty() && spec.ip_addresses.empty() && spec.uris.empty()) {
    return GeneralNamesPtr();
  }
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (names == nullptr) return InternalError("sk_GENERAL_NAME_new_null");
  for (const std::string& dns : spec.dns_names) {
    if (!IsPrintableAsciiToken(dns) || dns.size() > 253) {
      return absl::InvalidArgumentError(absl::StrCat(
          "DNS name '", dns, "' must be 1-253 printable ASCII characters without spaces"));
    }
    if (absl::Status s = PushGeneralName(names.get(), GEN_DNS, dns); !s.ok()) return s;
  }
  for (const std::string& ip : spec.ip_addresses) {
    absl::StatusOr<std::string> octets = ParseIpAddress(ip);
    if (!octets.ok()) return octets.status();
    if (absl::Status s = PushGeneralName(names.get(), GEN_IPADD, *octets); !s.ok()) return s;
  }
  for (const std::string& uri : spec.uris) {
    // RFC 5280 requires an absolute URI, so insist on at least "scheme:".
    const size_t colon = uri.find(':');
    if (!IsPrintableAsciiToken(uri) || colon == std::string::npos || colon == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "URI '", uri, "' must be an absolute URI of printable ASCII characters without spaces"));
    }
    if (absl::Status s = PushGeneralName(names.get(), GEN_URI, uri); !s.ok()) return s;
  }
  return names;
}

// Sets a random, positive, non-zero 128-bit serial number on `cert`.
absl::Status SetRandomSerial(X509* cert) {
  unsigned char bytes[kSerialBytes];
  bool all_zero = true;
  while (all_zero) {
    if (RAND_bytes(bytes, sizeof(bytes)) != 1) return InternalError("RAND_bytes(serial)");
    for (unsigned char b : bytes) all_zero = all_zero && b == 0;
  }
  // BN_bin2bn reads the bytes as an unsigned big-endian number, so the serial is positive.
  BignumPtr bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (bn == nullptr) return InternalError("BN_bin2bn(serial)");
  if (BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) {
    return InternalError("BN_to_ASN1_INTEGER(serial)");
  }
  return absl::OkStatus();
}

// Creates an unsigned v3 certificate for `subject_key` with subject CN=`common_name`, a
// random serial and the given window. The issuer name is `issuer_name`, or the subject
// name itself when `issuer_name` is null (self-signed). Adds no extensions.
absl::StatusOr<X509Ptr> NewCertificate(const std::string& common_name, EVP_PKEY* subject_key,
                                       const X509_NAME* issuer_name, absl::Time not_before,
                                       absl::Time not_after) {
  X509Ptr cert(X509_new());
  if (cert == nullptr) return InternalError("X509_new");
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1) return InternalError("X509_set_version");
  if (absl::Status s = SetRandomSerial(cert.get()); !s.ok()) return s;

  X509_NAME* subject = X509_get_subject_name(cert.get());  // owned by `cert`
  if (X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.data()),
                                 static_cast<int>(common_name.size()), -1, 0) != 1) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        absl::StrCat("setting common name '", common_name, "'"));
  }
  if (X509_set_issuer_name(cert.get(), issuer_name != nullptr ? issuer_name : subject) != 1) {
    return InternalError("X509_set_issuer_name");
  }
  if (absl::Status s = SetAsn1Time(X509_getm_notBefore(cert.get()), not_before, "not_before");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = SetAsn1Time(X509_getm_notAfter(cert.get()), not_after, "not_after");
      !s.ok()) {
    return s;
  }
  if (X509_set_pubkey(cert.get(), subject_key) != 1) return InternalError("X509_set_pubkey");
  return cert;
}

// Adds the extension `nid` described by OpenSSL's config syntax `value` (e.g.
// "critical,CA:TRUE"). `ctx` supplies the subject and issuer certificates that the key
// identifier extensions are computed from. Only fixed strings are passed here; anything
// derived from user input (the SANs) is built structurally instead.
absl::Status AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509ExtensionPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
  if (ext == nullptr) {
    return InternalError(absl::StrCat("building extension ", OBJ_nid2sn(nid), "=", value));
  }
  if (X509_add_ext(cert, ext.get(), -1) != 1) {
    return InternalError(absl::StrCat("X509_add_ext(", OBJ_nid2sn(nid), ")"));
  }
  return absl::OkStatus();
}

// Signs `cert` with `key` using SHA-256 and returns the identity as PEM.
absl::StatusOr<PemIdentity> SignAndEncode(X509* cert, EVP_PKEY* signing_key,
                                          EVP_PKEY* subject_key) {
  if (X509_sign(cert, signing_key, EVP_sha256()) <= 0) return InternalError("X509_sign");
  absl::StatusOr<std::string> cert_pem = CertificateToPem(cert);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = PrivateKeyToPem(subject_key);
  if (!key_pem.ok()) return key_pem.status();
  return PemIdentity{*std::move(cert_pem), *std::move(key_pem)};
}

// Reads every PEM certificate in `pem` into `store`; fails if there is none or if any
// block after the first is malformed.
absl::Status AddTrustAnchors(X509_STORE* store, absl::string_view pem) {
  absl::StatusOr<BioPtr> bio = ReadOnlyBio(pem);
  if (!bio.ok()) return bio.status();
  int count = 0;
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio->get(), nullptr, RefusePassword, nullptr));
    if (cert == nullptr) break;
    if (X509_STORE_add_cert(store, cert.get()) != 1) {
      return InternalError("X509_STORE_add_cert");
    }
    ++count;
  }
  // Running out of input shows up as PEM "no start line"; anything else is a real error.
  const unsigned long err = ERR_peek_last_error();
  const bool clean_end =
      ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
  if (count == 0 || !clean_end) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        "parsing the CA bundle as PEM certificates");
  }
  ERR_clear_error();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> GeneratePrivateKeyPem() {
  ERR_clear_error();
  absl::StatusOr<PkeyPtr> key = GenerateP256Key();
  if (!key.ok()) return key.status();
  return PrivateKeyToPem(key->get());
}

absl::StatusOr<PemIdentity> CreateCertificateAuthority(const std::string& common_name,
                                                       absl::Time not_before,
                                                       absl::Time not_after) {
  ERR_clear_error();
  if (absl::Status s = ValidateCommonName(common_name); !s.ok()) return s;
  if (absl::Status s = ValidateWindow(not_before, not_after); !s.ok()) return s;

  absl::StatusOr<PkeyPtr> key = GenerateP256Key();
  if (!key.ok()) return key.status();
  absl::StatusOr<X509Ptr> cert =
      NewCertificate(common_name, key->get(), /*issuer_name=*/nullptr, not_before, not_after);
  if (!cert.ok()) return cert.status();

  // Self-signed: the certificate is both subject and issuer.
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert->get(), cert->get(), nullptr, nullptr, 0);
  X509* x = cert->get();
  for (const auto& [nid, value] :
       {std::pair<int, const char*>{NID_basic_constraints, "critical,CA:TRUE"},
        {NID_key_usage, "critical,keyCertSign,cRLSign"},
        {NID_subject_key_identifier, "hash"}}) {
    if (absl::Status s = AddExtension(x, &ctx, nid, value); !s.ok()) return s;
  }
  return SignAndEncode(x, key->get(), key->get());
}

absl::StatusOr<PemIdentity> IssueCertificate(const PemIdentity& ca, const CertificateSpec& spec) {
  ERR_clear_error();
  if (absl::Status s = ValidateCommonName(spec.common_name); !s.ok()) return s;
  if (absl::Status s = ValidateWindow(spec.not_before, spec.not_after); !s.ok()) return s;
  absl::StatusOr<GeneralNamesPtr> alt_names = BuildSubjectAltNames(spec);
  if (!alt_names.ok()) return alt_names.status();

  absl::StatusOr<X509Ptr> ca_cert = ParseCertificate(ca.cert_pem, "the CA certificate");
  if (!ca_cert.ok()) return ca_cert.status();
  absl::StatusOr<PkeyPtr> ca_key = ParsePrivateKey(ca.key_pem, "the CA key");
  if (!ca_key.ok()) return ca_key.status();
  if (X509_check_private_key(ca_cert->get(), ca_key->get()) != 1) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        "checking that the CA key matches the CA certificate");
  }
  // 1 means basicConstraints CA:TRUE (and keyCertSign, if keyUsage is present).
  if (X509_check_ca(ca_cert->get()) != 1) {
    return absl::InvalidArgumentError(
        "the CA certificate is not a certificate authority (needs basicConstraints CA:TRUE "
        "and keyUsage keyCertSign)");
  }

  absl::StatusOr<PkeyPtr> key = GenerateP256Key();
  if (!key.ok()) return key.status();
  absl::StatusOr<X509Ptr> cert =
      NewCertificate(spec.common_name, key->get(), X509_get_subject_name(ca_cert->get()),
                     spec.not_before, spec.not_after);
  if (!cert.ok()) return cert.status();
  X509* x = cert->get();

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca_cert->get(), x, nullptr, nullptr, 0);
  if (absl::Status s = AddExtension(x, &ctx, NID_basic_constraints, "critical,CA:FALSE"); !s.ok()) {
    return s;
  }
  if (absl::Status s =
          AddExtension(x, &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment");
      !s.ok()) {
    return s;
  }
  if (spec.server_auth || spec.client_auth) {
    const char* usage = spec.server_auth && spec.client_auth ? "serverAuth,clientAuth"
                        : spec.server_auth                   ? "serverAuth"
                                                             : "clientAuth";
    if (absl::Status s = AddExtension(x, &ctx, NID_ext_key_usage, usage); !s.ok()) return s;
  }
  if (*alt_names != nullptr) {
    // Not critical: RFC 5280 only requires that when the subject name is empty.
    X509ExtensionPtr ext(X509V3_EXT_i2d(NID_subject_alt_name, /*crit=*/0, alt_names->get()));
    if (ext == nullptr) return InternalError("encoding subjectAltName");
    if (X509_add_ext(x, ext.get(), -1) != 1) return InternalError("X509_add_ext(subjectAltName)");
  }
  if (absl::Status s = AddExtension(x, &ctx, NID_subject_key_identifier, "hash"); !s.ok()) {
    return s;
  }
  // "always" makes this fail rather than silently omit the extension when the CA
  // certificate has no subjectKeyIdentifier to copy.
  if (absl::Status s = AddExtension(x, &ctx, NID_authority_key_identifier, "keyid:always");
      !s.ok()) {
    return s;
  }
  return SignAndEncode(x, ca_key->get(), key->get());
}

absl::StatusOr<CertificateInfo> InspectCertificate(const std::string& cert_pem) {
  ERR_clear_error();
  absl::StatusOr<X509Ptr> parsed = ParseCertificate(cert_pem, "the input");
  if (!parsed.ok()) return parsed.status();
  X509* cert = parsed->get();

  CertificateInfo info;
  absl::StatusOr<std::string> cn = CommonNameOf(X509_get_subject_name(cert));
  if (!cn.ok()) return cn.status();
  info.common_name = *std::move(cn);
  absl::StatusOr<std::string> issuer_cn = CommonNameOf(X509_get_issuer_name(cert));
  if (!issuer_cn.ok()) return issuer_cn.status();
  info.issuer_common_name = *std::move(issuer_cn);

  absl::StatusOr<absl::Time> not_before = Asn1TimeToAbsl(X509_get0_notBefore(cert), "notBefore");
  if (!not_before.ok()) return not_before.status();
  info.not_before = *not_before;
  absl::StatusOr<absl::Time> not_after = Asn1TimeToAbsl(X509_get0_notAfter(cert), "notAfter");
  if (!not_after.ok()) return not_after.status();
  info.not_after = *not_after;

  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (serial == nullptr) return InternalError("ASN1_INTEGER_to_BN(serial)");
  std::unique_ptr<char, OpenSslBufferFree> serial_hex(BN_bn2hex(serial.get()));
  if (serial_hex == nullptr) return InternalError("BN_bn2hex(serial)");
  info.serial_hex = serial_hex.get();

  // X509_get_extension_flags decodes and caches the standard extensions.
  const uint32_t flags = X509_get_extension_flags(cert);
  if (flags & EXFLAG_INVALID) {
    return OpenSslError(absl::StatusCode::kInvalidArgument, "decoding certificate extensions");
  }
  info.is_ca = (flags & EXFLAG_CA) != 0;
  if (flags & EXFLAG_XKUSAGE) {
    const uint32_t eku = X509_get_extended_key_usage(cert);
    info.server_auth = (eku & XKU_SSL_SERVER) != 0;
    info.client_auth = (eku & XKU_SSL_CLIENT) != 0;
  }

  int critical = 0;
  GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, &critical, nullptr)));
  if (names == nullptr && critical != -1) {  // -1 means "absent"; anything else is malformed
    return OpenSslError(absl::StatusCode::kInvalidArgument, "decoding subjectAltName");
  }
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    int type = 0;
    const auto* value = static_cast<const ASN1_STRING*>(GENERAL_NAME_get0_value(name, &type));
    if (type != GEN_DNS && type != GEN_URI && type != GEN_IPADD) continue;
    const unsigned char* data = ASN1_STRING_get0_data(value);
    const int length = ASN1_STRING_length(value);
    if (type == GEN_IPADD) {
      info.ip_addresses.push_back(FormatIpAddress(data, length));
    } else {
      std::string text(reinterpret_cast<const char*>(data), static_cast<size_t>(length));
      (type == GEN_DNS ? info.dns_names : info.uris).push_back(std::move(text));
    }
  }

  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  if (X509_digest(cert, EVP_sha256(), digest, &digest_length) != 1) {
    return InternalError("X509_digest(sha256)");
  }
  info.sha256_fingerprint_hex =
      HexEncode(absl::string_view(reinterpret_cast<const char*>(digest), digest_length));
  return info;
}

absl::Status VerifyCertificate(const std::string& cert_pem, const std::string& ca_pem,
                               absl::Time at) {
  ERR_clear_error();
  if (at == absl::InfinitePast() || at == absl::InfiniteFuture()) {
    return absl::InvalidArgumentError("verification time must be finite");
  }
  absl::StatusOr<X509Ptr> cert = ParseCertificate(cert_pem, "the certificate to verify");
  if (!cert.ok()) return cert.status();
  X509StorePtr store(X509_STORE_new());
  if (store == nullptr) return InternalError("X509_STORE_new");
  if (absl::Status s = AddTrustAnchors(store.get(), ca_pem); !s.ok()) return s;

  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (ctx == nullptr) return InternalError("X509_STORE_CTX_new");
  if (X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), nullptr) != 1) {
    return InternalError("X509_STORE_CTX_init");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, absl::ToTimeT(at));
  // Every certificate in `ca_pem` is a trust anchor, even if it is not self-signed.
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);

  if (X509_verify_cert(ctx.get()) == 1) return absl::OkStatus();
  const int error = X509_STORE_CTX_get_error(ctx.get());
  if (error == X509_V_OK) return InternalError("X509_verify_cert");
  ERR_clear_error();
  return absl::UnauthenticatedError(absl::StrCat("certificate verification failed at depth ",
                                                 X509_STORE_CTX_get_error_depth(ctx.get()), ": ",
                                                 X509_verify_cert_error_string(error)));
}

std::string SiteIdentityUri(absl::string_view federation, absl::string_view site_id) {
  return absl::StrCat("spiffe://", federation, "/site/", site_id);
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents, int mode) {
  return WriteFileDurably(path, contents, mode);
}

}  // namespace cohort::crypto
