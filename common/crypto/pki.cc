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

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <iterator>
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
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
  void operator()(X509_CRL* p) const { X509_CRL_free(p); }
  void operator()(X509_REVOKED* p) const { X509_REVOKED_free(p); }
  void operator()(STACK_OF(X509_EXTENSION) * p) const {
    sk_X509_EXTENSION_pop_free(p, X509_EXTENSION_free);
  }
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
using X509ReqPtr = std::unique_ptr<X509_REQ, OpenSslFree>;
using X509CrlPtr = std::unique_ptr<X509_CRL, OpenSslFree>;
using X509RevokedPtr = std::unique_ptr<X509_REVOKED, OpenSslFree>;
using ExtensionStackPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), OpenSslFree>;

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

// Appends the DNS, IP and URI entries of `names` (may be null) to the three lists.
void ReadGeneralNames(const GENERAL_NAMES* names, std::vector<std::string>* dns_names,
                      std::vector<std::string>* ip_addresses, std::vector<std::string>* uris) {
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    int type = 0;
    const auto* value = static_cast<const ASN1_STRING*>(GENERAL_NAME_get0_value(name, &type));
    if (type != GEN_DNS && type != GEN_URI && type != GEN_IPADD) continue;
    const unsigned char* data = ASN1_STRING_get0_data(value);
    const int length = ASN1_STRING_length(value);
    if (type == GEN_IPADD) {
      ip_addresses->push_back(FormatIpAddress(data, length));
    } else {
      std::string text(reinterpret_cast<const char*>(data), static_cast<size_t>(length));
      (type == GEN_DNS ? dns_names : uris)->push_back(std::move(text));
    }
  }
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

// The CA's certificate and key, parsed and checked to belong together.
struct LoadedCa {
  X509Ptr cert;
  PkeyPtr key;
};

absl::StatusOr<LoadedCa> LoadCa(const PemIdentity& ca) {
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
  return LoadedCa{*std::move(ca_cert), *std::move(ca_key)};
}

// Builds and signs a leaf certificate for `subject_key` as described by `spec`: see
// IssueCertificate() for the extensions.
absl::StatusOr<X509Ptr> SignLeaf(const LoadedCa& ca, EVP_PKEY* subject_key,
                                 const CertificateSpec& spec) {
  if (absl::Status s = ValidateCommonName(spec.common_name); !s.ok()) return s;
  if (absl::Status s = ValidateWindow(spec.not_before, spec.not_after); !s.ok()) return s;
  absl::StatusOr<GeneralNamesPtr> alt_names = BuildSubjectAltNames(spec);
  if (!alt_names.ok()) return alt_names.status();

  absl::StatusOr<X509Ptr> cert =
      NewCertificate(spec.common_name, subject_key, X509_get_subject_name(ca.cert.get()),
                     spec.not_before, spec.not_after);
  if (!cert.ok()) return cert.status();
  X509* x = cert->get();

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca.cert.get(), x, nullptr, nullptr, 0);
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
  if (X509_sign(x, ca.key.get(), EVP_sha256()) <= 0) return InternalError("X509_sign");
  return cert;
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
  // The spec is checked before the CA so that its errors do not depend on the CA.
  if (absl::Status s = ValidateCommonName(spec.common_name); !s.ok()) return s;
  if (absl::Status s = ValidateWindow(spec.not_before, spec.not_after); !s.ok()) return s;
  if (absl::StatusOr<GeneralNamesPtr> names = BuildSubjectAltNames(spec); !names.ok()) {
    return names.status();
  }
  absl::StatusOr<LoadedCa> loaded = LoadCa(ca);
  if (!loaded.ok()) return loaded.status();
  absl::StatusOr<PkeyPtr> key = GenerateP256Key();
  if (!key.ok()) return key.status();
  absl::StatusOr<X509Ptr> cert = SignLeaf(*loaded, key->get(), spec);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> cert_pem = CertificateToPem(cert->get());
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = PrivateKeyToPem(key->get());
  if (!key_pem.ok()) return key_pem.status();
  return PemIdentity{*std::move(cert_pem), *std::move(key_pem)};
}

namespace {

// InspectCertificate of a parsed certificate.
absl::StatusOr<CertificateInfo> InspectParsed(X509* cert) {
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
  ReadGeneralNames(names.get(), &info.dns_names, &info.ip_addresses, &info.uris);

  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  if (X509_digest(cert, EVP_sha256(), digest, &digest_length) != 1) {
    return InternalError("X509_digest(sha256)");
  }
  info.sha256_fingerprint_hex =
      HexEncode(absl::string_view(reinterpret_cast<const char*>(digest), digest_length));
  return info;
}

}  // namespace

absl::StatusOr<CertificateInfo> InspectCertificate(const std::string& cert_pem) {
  ERR_clear_error();
  absl::StatusOr<X509Ptr> parsed = ParseCertificate(cert_pem, "the input");
  if (!parsed.ok()) return parsed.status();
  return InspectParsed(parsed->get());
}

namespace {

// Verifies a parsed certificate against `store` at `at` (see VerifyCertificate).
absl::Status VerifyParsed(X509* cert, X509_STORE* store, absl::Time at) {
  if (at == absl::InfinitePast() || at == absl::InfiniteFuture()) {
    return absl::InvalidArgumentError("verification time must be finite");
  }
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (ctx == nullptr) return InternalError("X509_STORE_CTX_new");
  if (X509_STORE_CTX_init(ctx.get(), store, cert, nullptr) != 1) {
    return InternalError("X509_STORE_CTX_init");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, absl::ToTimeT(at));
  // Every certificate in the bundle is a trust anchor, even if it is not self-signed.
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);

  if (X509_verify_cert(ctx.get()) == 1) return absl::OkStatus();
  const int error = X509_STORE_CTX_get_error(ctx.get());
  if (error == X509_V_OK) return InternalError("X509_verify_cert");
  ERR_clear_error();
  return absl::UnauthenticatedError(absl::StrCat("certificate verification failed at depth ",
                                                 X509_STORE_CTX_get_error_depth(ctx.get()), ": ",
                                                 X509_verify_cert_error_string(error)));
}

}  // namespace

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
  return VerifyParsed(cert->get(), store.get(), at);
}

struct TrustStore::Store {
  X509StorePtr store;
};

TrustStore::TrustStore(std::unique_ptr<Store> store) : store_(std::move(store)) {}
TrustStore::~TrustStore() = default;

absl::StatusOr<std::shared_ptr<const TrustStore>> TrustStore::Create(const std::string& ca_pem) {
  ERR_clear_error();
  auto store = std::make_unique<Store>();
  store->store.reset(X509_STORE_new());
  if (store->store == nullptr) return InternalError("X509_STORE_new");
  if (absl::Status s = AddTrustAnchors(store->store.get(), ca_pem); !s.ok()) return s;
  return std::shared_ptr<const TrustStore>(new TrustStore(std::move(store)));
}

absl::StatusOr<CertificateInfo> TrustStore::VerifyAndInspect(const std::string& cert_pem,
                                                             absl::Time at) const {
  ERR_clear_error();
  absl::StatusOr<X509Ptr> cert = ParseCertificate(cert_pem, "the certificate to verify");
  if (!cert.ok()) return cert.status();
  if (absl::Status s = VerifyParsed(cert->get(), store_->store.get(), at); !s.ok()) return s;
  return InspectParsed(cert->get());
}


// ---- Certificate signing requests --------------------------------------------------------

namespace {

// Minimum RSA modulus accepted in a CSR.
constexpr int kMinRsaBits = 2048;

absl::StatusOr<X509ReqPtr> ParseRequest(absl::string_view pem) {
  absl::StatusOr<BioPtr> bio = ReadOnlyBio(pem);
  if (!bio.ok()) return bio.status();
  X509ReqPtr req(PEM_read_bio_X509_REQ(bio->get(), nullptr, RefusePassword, nullptr));
  if (req == nullptr) {
    return OpenSslError(absl::StatusCode::kInvalidArgument,
                        "parsing the input as a PEM certificate request");
  }
  return req;
}

// "EC P-256" or "RSA 3072"; refuses every other kind of key with the reason.
absl::StatusOr<std::string> AcceptableKeyType(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {};
    size_t length = 0;
    if (EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), &length) != 1) {
      return OpenSslError(absl::StatusCode::kInvalidArgument, "reading the EC key's curve");
    }
    const std::string name(group, length);
    if (name == "prime256v1" || name == "P-256") return std::string("EC P-256");
    return absl::InvalidArgumentError(
        absl::StrCat("the key is EC ", name, "; only ECDSA P-256 or RSA >= ", kMinRsaBits,
                     " bits are accepted"));
  }
  if (EVP_PKEY_is_a(key, "RSA")) {
    const int bits = EVP_PKEY_get_bits(key);
    if (bits >= kMinRsaBits) return absl::StrCat("RSA ", bits);
    return absl::InvalidArgumentError(absl::StrCat("the key is RSA ", bits,
                                                   " bits; RSA keys need at least ",
                                                   kMinRsaBits, " bits"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("the key is ", EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key)
                                                               : "of an unknown type",
                   "; only ECDSA P-256 or RSA >= ", kMinRsaBits, " bits are accepted"));
}

// Parses a CSR, checks its signature and key; returns the request and its summary.
absl::StatusOr<std::pair<X509ReqPtr, CertificateRequestInfo>> LoadRequest(
    const std::string& csr_pem) {
  absl::StatusOr<X509ReqPtr> req = ParseRequest(csr_pem);
  if (!req.ok()) return req.status();
  EVP_PKEY* key = X509_REQ_get0_pubkey(req->get());  // owned by the request
  if (key == nullptr) {
    return OpenSslError(absl::StatusCode::kInvalidArgument, "reading the request's public key");
  }
  if (X509_REQ_verify(req->get(), key) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "the certificate request's signature does not verify with its own key (the request "
        "was altered, or not made with the key it carries)");
  }
  CertificateRequestInfo info;
  absl::StatusOr<std::string> key_type = AcceptableKeyType(key);
  if (!key_type.ok()) return key_type.status();
  info.key_type = *std::move(key_type);
  absl::StatusOr<std::string> cn = CommonNameOf(X509_REQ_get_subject_name(req->get()));
  if (!cn.ok()) return cn.status();
  info.common_name = *std::move(cn);
  ExtensionStackPtr extensions(X509_REQ_get_extensions(req->get()));
  if (extensions != nullptr) {
    int critical = 0;
    GeneralNamesPtr names(static_cast<GENERAL_NAMES*>(
        X509V3_get_d2i(extensions.get(), NID_subject_alt_name, &critical, nullptr)));
    if (names == nullptr && critical != -1) {
      return OpenSslError(absl::StatusCode::kInvalidArgument,
                          "decoding the request's subjectAltName");
    }
    ReadGeneralNames(names.get(), &info.dns_names, &info.ip_addresses, &info.uris);
  }
  ERR_clear_error();
  return std::make_pair(*std::move(req), std::move(info));
}

}  // namespace

absl::StatusOr<std::string> CreateCertificateRequest(const std::string& key_pem,
                                                     const CertificateSpec& subject) {
  ERR_clear_error();
  if (absl::Status s = ValidateCommonName(subject.common_name); !s.ok()) return s;
  absl::StatusOr<GeneralNamesPtr> alt_names = BuildSubjectAltNames(subject);
  if (!alt_names.ok()) return alt_names.status();
  absl::StatusOr<PkeyPtr> key = ParsePrivateKey(key_pem, "the private key");
  if (!key.ok()) return key.status();

  X509ReqPtr req(X509_REQ_new());
  if (req == nullptr) return InternalError("X509_REQ_new");
  if (X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1) {
    return InternalError("X509_REQ_set_version");
  }
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(subject.common_name.data()),
                                 static_cast<int>(subject.common_name.size()), -1, 0) != 1) {
    return OpenSslError(absl::StatusCode::kInvalidArgument, "setting the request's common name");
  }
  if (X509_REQ_set_pubkey(req.get(), key->get()) != 1) return InternalError("X509_REQ_set_pubkey");
  if (*alt_names != nullptr) {
    ExtensionStackPtr extensions(sk_X509_EXTENSION_new_null());
    if (extensions == nullptr) return InternalError("sk_X509_EXTENSION_new_null");
    X509_EXTENSION* ext = X509V3_EXT_i2d(NID_subject_alt_name, /*crit=*/0, alt_names->get());
    if (ext == nullptr) return InternalError("encoding subjectAltName");
    if (sk_X509_EXTENSION_push(extensions.get(), ext) <= 0) {
      X509_EXTENSION_free(ext);
      return InternalError("sk_X509_EXTENSION_push");
    }
    if (X509_REQ_add_extensions(req.get(), extensions.get()) != 1) {
      return InternalError("X509_REQ_add_extensions");
    }
  }
  if (X509_REQ_sign(req.get(), key->get(), EVP_sha256()) <= 0) return InternalError("X509_REQ_sign");
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr) return InternalError("BIO_new(mem)");
  if (PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) {
    return InternalError("PEM_write_bio_X509_REQ");
  }
  return BioContents(bio.get());
}

absl::StatusOr<CertificateRequestInfo> InspectCertificateRequest(const std::string& csr_pem) {
  ERR_clear_error();
  auto loaded = LoadRequest(csr_pem);
  if (!loaded.ok()) return loaded.status();
  return std::move(loaded->second);
}

absl::StatusOr<std::string> SignCertificateRequest(const PemIdentity& ca,
                                                   const std::string& csr_pem,
                                                   const CertificateSpec& spec) {
  ERR_clear_error();
  auto request = LoadRequest(csr_pem);
  if (!request.ok()) return request.status();
  absl::StatusOr<LoadedCa> loaded = LoadCa(ca);
  if (!loaded.ok()) return loaded.status();
  absl::StatusOr<X509Ptr> cert =
      SignLeaf(*loaded, X509_REQ_get0_pubkey(request->first.get()), spec);
  if (!cert.ok()) return cert.status();
  return CertificateToPem(cert->get());
}

absl::Status CheckKeyMatchesCertificate(const std::string& cert_pem, const std::string& key_pem) {
  ERR_clear_error();
  absl::StatusOr<X509Ptr> cert = ParseCertificate(cert_pem, "the certificate");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<PkeyPtr> key = ParsePrivateKey(key_pem, "the private key");
  if (!key.ok()) return key.status();
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "the private key does not belong to the certificate (their public keys differ)");
  }
  return absl::OkStatus();
}

// ---- Revocation --------------------------------------------------------------------------

namespace {

// RFC 5280 section 5.3.1 reason codes, indexed by their CRLReason value; value 7 is unused.
constexpr const char* kCrlReasons[] = {"unspecified",          "keyCompromise",
                                       "cACompromise",         "affiliationChanged",
                                       "superseded",           "cessationOfOperation",
                                       "certificateHold",      nullptr,
                                       "removeFromCRL",        "privilegeWithdrawn",
                                       "aACompromise"};

// The reasons CreateCrl accepts: a CA of this kind never puts certificates on hold.
const std::vector<std::string>& AcceptedReasons() {
  static const std::vector<std::string>* reasons = new std::vector<std::string>{
      "unspecified", "keyCompromise",      "cACompromise",        "affiliationChanged",
      "superseded",  "cessationOfOperation", "privilegeWithdrawn"};
  return *reasons;
}

int ReasonCode(absl::string_view name) {
  for (int i = 0; i < static_cast<int>(std::size(kCrlReasons)); ++i) {
    if (kCrlReasons[i] != nullptr && name == kCrlReasons[i]) return i;
  }
  return -1;
}

absl::StatusOr<AsnStringPtr> SerialFromHex(const std::string& hex) {
  const bool hex_only = !hex.empty() && hex.size() <= 40 &&
                        hex.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
  BIGNUM* raw = nullptr;
  if (!hex_only || BN_hex2bn(&raw, hex.c_str()) != static_cast<int>(hex.size())) {
    BN_free(raw);
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("serial '", hex, "' is not a hexadecimal number of at most 160 bits"));
  }
  BignumPtr bn(raw);
  AsnStringPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (serial == nullptr) return InternalError("BN_to_ASN1_INTEGER(serial)");
  return serial;
}

absl::StatusOr<std::string> SerialToHex(const ASN1_INTEGER* serial) {
  BignumPtr bn(ASN1_INTEGER_to_BN(serial, nullptr));
  if (bn == nullptr) return InternalError("ASN1_INTEGER_to_BN(serial)");
  std::unique_ptr<char, OpenSslBufferFree> hex(BN_bn2hex(bn.get()));
  if (hex == nullptr) return InternalError("BN_bn2hex(serial)");
  return std::string(hex.get());
}

// Canonical form of a serial given by a user: uppercase, without leading zeros or colons.
std::string CanonicalSerial(absl::string_view hex) {
  std::string out;
  for (char c : hex) {
    if (c == ':') continue;
    out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  const size_t first = out.find_first_not_of('0');
  return first == std::string::npos ? "0" : out.substr(first);
}

absl::StatusOr<X509CrlPtr> ParseCrlPem(absl::string_view pem) {
  absl::StatusOr<BioPtr> bio = ReadOnlyBio(pem);
  if (!bio.ok()) return bio.status();
  X509CrlPtr crl(PEM_read_bio_X509_CRL(bio->get(), nullptr, RefusePassword, nullptr));
  if (crl == nullptr) {
    return OpenSslError(absl::StatusCode::kInvalidArgument, "parsing the input as a PEM CRL");
  }
  return crl;
}

}  // namespace

const std::vector<std::string>& CrlReasonNames() { return AcceptedReasons(); }

absl::StatusOr<std::string> CreateCrl(const PemIdentity& ca, const CrlInfo& spec) {
  ERR_clear_error();
  if (absl::Status s = ValidateWindow(spec.this_update, spec.next_update); !s.ok()) return s;
  if (spec.number < 0) return absl::InvalidArgumentError("the CRL number must not be negative");
  absl::StatusOr<LoadedCa> loaded = LoadCa(ca);
  if (!loaded.ok()) return loaded.status();

  X509CrlPtr crl(X509_CRL_new());
  if (crl == nullptr) return InternalError("X509_CRL_new");
  if (X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1) {
    return InternalError("X509_CRL_set_version");
  }
  if (X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(loaded->cert.get())) != 1) {
    return InternalError("X509_CRL_set_issuer_name");
  }
  AsnStringPtr this_update(ASN1_TIME_new());
  AsnStringPtr next_update(ASN1_TIME_new());
  if (this_update == nullptr || next_update == nullptr) return InternalError("ASN1_TIME_new");
  if (absl::Status s = SetAsn1Time(this_update.get(), spec.this_update, "this_update"); !s.ok()) {
    return s;
  }
  if (absl::Status s = SetAsn1Time(next_update.get(), spec.next_update, "next_update"); !s.ok()) {
    return s;
  }
  if (X509_CRL_set1_lastUpdate(crl.get(), this_update.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next_update.get()) != 1) {
    return InternalError("setting the CRL's update times");
  }

  for (const RevokedCertificate& entry : spec.revoked) {
    const int code = ReasonCode(entry.reason);
    if (code < 0 || std::find(AcceptedReasons().begin(), AcceptedReasons().end(), entry.reason) ==
                        AcceptedReasons().end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown revocation reason '", entry.reason,
                       "'; use one of: ", absl::StrJoin(AcceptedReasons(), ", ")));
    }
    absl::StatusOr<AsnStringPtr> serial = SerialFromHex(entry.serial_hex);
    if (!serial.ok()) return serial.status();
    X509RevokedPtr revoked(X509_REVOKED_new());
    if (revoked == nullptr) return InternalError("X509_REVOKED_new");
    AsnStringPtr when(ASN1_TIME_new());
    if (when == nullptr) return InternalError("ASN1_TIME_new");
    if (absl::Status s = SetAsn1Time(when.get(), entry.revoked_at, "revoked_at"); !s.ok()) {
      return s;
    }
    if (X509_REVOKED_set_serialNumber(revoked.get(), serial->get()) != 1 ||
        X509_REVOKED_set_revocationDate(revoked.get(), when.get()) != 1) {
      return InternalError("filling a CRL entry");
    }
    AsnStringPtr reason(ASN1_ENUMERATED_new());
    if (reason == nullptr || ASN1_ENUMERATED_set(reason.get(), code) != 1 ||
        X509_REVOKED_add1_ext_i2d(revoked.get(), NID_crl_reason, reason.get(), 0, 0) != 1) {
      return InternalError("adding a CRL entry's reason");
    }
    if (X509_CRL_add0_revoked(crl.get(), revoked.get()) != 1) {
      return InternalError("X509_CRL_add0_revoked");
    }
    revoked.release();  // now owned by `crl`
  }
  if (X509_CRL_sort(crl.get()) != 1) return InternalError("X509_CRL_sort");

  BignumPtr number(BN_new());
  if (number == nullptr || BN_set_word(number.get(), static_cast<BN_ULONG>(spec.number)) != 1) {
    return InternalError("BN_set_word(crlNumber)");
  }
  AsnStringPtr crl_number(BN_to_ASN1_INTEGER(number.get(), nullptr));
  if (crl_number == nullptr ||
      X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, crl_number.get(), 0, 0) != 1) {
    return InternalError("adding crlNumber");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, loaded->cert.get(), nullptr, nullptr, crl.get(), 0);
  X509ExtensionPtr aki(
      X509V3_EXT_nconf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
  if (aki == nullptr || X509_CRL_add_ext(crl.get(), aki.get(), -1) != 1) {
    return InternalError("adding the CRL's authorityKeyIdentifier");
  }
  if (X509_CRL_sign(crl.get(), loaded->key.get(), EVP_sha256()) <= 0) {
    return InternalError("X509_CRL_sign");
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr) return InternalError("BIO_new(mem)");
  if (PEM_write_bio_X509_CRL(bio.get(), crl.get()) != 1) {
    return InternalError("PEM_write_bio_X509_CRL");
  }
  return BioContents(bio.get());
}

absl::StatusOr<CrlInfo> ParseCrl(const std::string& crl_pem, const std::string& ca_pem) {
  ERR_clear_error();
  absl::StatusOr<X509CrlPtr> crl = ParseCrlPem(crl_pem);
  if (!crl.ok()) return crl.status();
  CrlInfo info;
  absl::StatusOr<std::string> issuer = CommonNameOf(X509_CRL_get_issuer(crl->get()));
  if (!issuer.ok()) return issuer.status();
  info.issuer_common_name = *std::move(issuer);

  // Find the CA among the anchors by name and check the CRL's signature with its key.
  absl::StatusOr<BioPtr> bio = ReadOnlyBio(ca_pem);
  if (!bio.ok()) return bio.status();
  bool signed_by_ca = false;
  int anchors = 0;
  while (X509Ptr ca{PEM_read_bio_X509(bio->get(), nullptr, RefusePassword, nullptr)}) {
    ++anchors;
    if (X509_NAME_cmp(X509_get_subject_name(ca.get()), X509_CRL_get_issuer(crl->get())) != 0) {
      continue;
    }
    EVP_PKEY* key = X509_get0_pubkey(ca.get());
    if (key != nullptr && X509_CRL_verify(crl->get(), key) == 1) {
      signed_by_ca = true;
      break;
    }
  }
  ERR_clear_error();
  if (anchors == 0) {
    return absl::InvalidArgumentError("the CA bundle holds no PEM certificate");
  }
  if (!signed_by_ca) {
    return absl::UnauthenticatedError(
        absl::StrCat("the CRL issued by CN=", info.issuer_common_name,
                     " is not signed by the federation CA"));
  }

  absl::StatusOr<absl::Time> this_update =
      Asn1TimeToAbsl(X509_CRL_get0_lastUpdate(crl->get()), "thisUpdate");
  if (!this_update.ok()) return this_update.status();
  info.this_update = *this_update;
  if (X509_CRL_get0_nextUpdate(crl->get()) != nullptr) {
    absl::StatusOr<absl::Time> next_update =
        Asn1TimeToAbsl(X509_CRL_get0_nextUpdate(crl->get()), "nextUpdate");
    if (!next_update.ok()) return next_update.status();
    info.next_update = *next_update;
  } else {
    info.next_update = absl::InfiniteFuture();
  }
  AsnStringPtr number(static_cast<ASN1_INTEGER*>(
      X509_CRL_get_ext_d2i(crl->get(), NID_crl_number, nullptr, nullptr)));
  if (number != nullptr) info.number = ASN1_INTEGER_get(number.get());

  STACK_OF(X509_REVOKED)* entries = X509_CRL_get_REVOKED(crl->get());  // owned by `crl`
  for (int i = 0; entries != nullptr && i < sk_X509_REVOKED_num(entries); ++i) {
    const X509_REVOKED* entry = sk_X509_REVOKED_value(entries, i);
    RevokedCertificate revoked;
    absl::StatusOr<std::string> serial = SerialToHex(X509_REVOKED_get0_serialNumber(entry));
    if (!serial.ok()) return serial.status();
    revoked.serial_hex = *std::move(serial);
    absl::StatusOr<absl::Time> when =
        Asn1TimeToAbsl(X509_REVOKED_get0_revocationDate(entry), "revocationDate");
    if (!when.ok()) return when.status();
    revoked.revoked_at = *when;
    AsnStringPtr reason(static_cast<ASN1_ENUMERATED*>(
        X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, nullptr, nullptr)));
    if (reason != nullptr) {
      const long code = ASN1_ENUMERATED_get(reason.get());
      if (code >= 0 && code < static_cast<long>(std::size(kCrlReasons)) &&
          kCrlReasons[code] != nullptr) {
        revoked.reason = kCrlReasons[code];
      }
    }
    info.revoked.push_back(std::move(revoked));
  }
  ERR_clear_error();
  return info;
}

// ---- Diagnosis ---------------------------------------------------------------------------

absl::StatusOr<std::vector<std::string>> RefusalReasons(const std::string& cert_pem,
                                                        const AcceptanceCriteria& criteria) {
  ERR_clear_error();
  absl::StatusOr<CertificateInfo> info = InspectCertificate(cert_pem);
  if (!info.ok()) return info.status();
  const auto utc = [](absl::Time t) {
    return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
  };
  const absl::Time at = criteria.at == absl::InfinitePast() ? absl::Now() : criteria.at;
  std::vector<std::string> reasons;
  if (at < info->not_before) {
    reasons.push_back(absl::StrCat("not yet valid: its validity starts ", utc(info->not_before)));
  }
  if (at > info->not_after) {
    reasons.push_back(absl::StrCat("expired at ", utc(info->not_after)));
  }

  if (!criteria.ca_pem.empty()) {
    // The chain alone, with time checks off: expiry was reported above.
    absl::StatusOr<X509Ptr> cert = ParseCertificate(cert_pem, "the certificate");
    if (!cert.ok()) return cert.status();
    X509StorePtr store(X509_STORE_new());
    if (store == nullptr) return InternalError("X509_STORE_new");
    if (absl::Status s = AddTrustAnchors(store.get(), criteria.ca_pem); !s.ok()) return s;
    X509StoreCtxPtr ctx(X509_STORE_CTX_new());
    if (ctx == nullptr ||
        X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), nullptr) != 1) {
      return InternalError("X509_STORE_CTX_init");
    }
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME);
    if (X509_verify_cert(ctx.get()) != 1) {
      const int error = X509_STORE_CTX_get_error(ctx.get());
      absl::StatusOr<CertificateInfo> ca_info = InspectCertificate(criteria.ca_pem);
      const std::string ca_name = ca_info.ok() ? ca_info->common_name : "?";
      if (error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
          error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT ||
          error == X509_V_ERR_CERT_SIGNATURE_FAILURE ||
          error == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT) {
        reasons.push_back(absl::StrCat("issued by another CA: its issuer is CN=",
                                       info->issuer_common_name,
                                       ", and the federation CA is CN=", ca_name,
                                       info->issuer_common_name == ca_name
                                           ? " (the same name, but a different key: was the "
                                             "CA re-created?)"
                                           : ""));
      } else {
        reasons.push_back(absl::StrCat("does not verify against the federation CA CN=", ca_name,
                                       ": ", X509_verify_cert_error_string(error)));
      }
    }
    ERR_clear_error();
  }

  if (!criteria.crl_pem.empty()) {
    if (criteria.ca_pem.empty()) {
      return absl::InvalidArgumentError("checking a CRL needs the CA that signed it");
    }
    absl::StatusOr<CrlInfo> crl = ParseCrl(criteria.crl_pem, criteria.ca_pem);
    if (!crl.ok()) return crl.status();
    if (crl->issuer_common_name == info->issuer_common_name) {
      for (const RevokedCertificate& entry : crl->revoked) {
        if (entry.serial_hex != info->serial_hex) continue;
        reasons.push_back(absl::StrCat("revoked at ", utc(entry.revoked_at), " (reason: ",
                                       entry.reason, ")"));
      }
    }
  }

  if (!criteria.federation.empty()) {
    const std::string prefix = absl::StrCat("spiffe://", criteria.federation, "/");
    for (const std::string& uri : info->uris) {
      if (uri.rfind("spiffe://", 0) == 0 && uri.rfind(prefix, 0) != 0) {
        reasons.push_back(absl::StrCat("belongs to another federation: it names ", uri,
                                       ", not a ", prefix, "... identity"));
      }
    }
  }
  return reasons;
}

std::string CanonicalSerialHex(absl::string_view hex) { return CanonicalSerial(hex); }

std::string SiteIdentityUri(absl::string_view federation, absl::string_view site_id) {
  return absl::StrCat("spiffe://", federation, "/site/", site_id);
}

std::string AdminIdentityUri(absl::string_view federation, absl::string_view name) {
  return absl::StrCat("spiffe://", federation, "/admin/", name);
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents, int mode) {
  return WriteFileDurably(path, contents, mode);
}

}  // namespace cohort::crypto
