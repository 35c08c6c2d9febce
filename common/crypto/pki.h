// A small X.509 PKI for a cohort federation, built on the OpenSSL 3 EVP/X509 API.
//
// The federation has one certificate authority (CA). It issues a server+client
// certificate to the coordinator and a client certificate to every site; a site's
// identity is the SPIFFE-style URI in its subjectAltName (see SiteIdentityUri()).
// All keys are ECDSA P-256 and all signatures are ECDSA with SHA-256.
//
// Every function is thread-safe. Failures inside OpenSSL are reported as absl::Status
// values whose message names the failing step and carries OpenSSL's error string.
#ifndef COHORT_COMMON_CRYPTO_PKI_H_
#define COHORT_COMMON_CRYPTO_PKI_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cohort::crypto {

// A PEM-encoded certificate and its PEM-encoded private key (PKCS#8, unencrypted).
struct PemIdentity {
  std::string cert_pem;
  std::string key_pem;
};

// What a certificate should say. X.509 times have one-second resolution, so the
// validity bounds are truncated to whole seconds when encoded.
struct CertificateSpec {
  std::string common_name;                // 1 to 64 characters
  std::vector<std::string> dns_names;     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries (IPv4 or IPv6 text)
  // subjectAltName URI entries, e.g. spiffe://demo/site/hospital-a
  std::vector<std::string> uris;
  absl::Time not_before;
  absl::Time not_after;
  bool server_auth = false;  // extendedKeyUsage serverAuth
  bool client_auth = false;  // extendedKeyUsage clientAuth
};

// A readable summary of a certificate, as returned by InspectCertificate().
struct CertificateInfo {
  std::string common_name;  // subject CN; empty if the subject has none
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;  // canonical text (e.g. "127.0.0.1", "::1")
  std::vector<std::string> uris;
  absl::Time not_before;
  absl::Time not_after;
  bool is_ca = false;  // basicConstraints CA:TRUE
  std::string issuer_common_name;
  std::string serial_hex;  // uppercase hex as printed by OpenSSL, no separators
  // extendedKeyUsage; both false when the certificate has no EKU extension.
  bool server_auth = false;
  bool client_auth = false;
  std::string sha256_fingerprint_hex;  // SHA-256 of the DER encoding, lowercase hex
};

// Generates a new ECDSA P-256 key; returns it as unencrypted PKCS#8 PEM
// ("-----BEGIN PRIVATE KEY-----").
absl::StatusOr<std::string> GeneratePrivateKeyPem();

// Creates a self-signed CA certificate for a fresh P-256 key with basicConstraints
// CA:TRUE (critical), keyUsage keyCertSign+cRLSign (critical) and a
// subjectKeyIdentifier. Returns InvalidArgument for an empty or over-long common
// name or for not_after <= not_before.
absl::StatusOr<PemIdentity> CreateCertificateAuthority(const std::string& common_name,
                                                       absl::Time not_before, absl::Time not_after);

// Issues a leaf certificate for a fresh P-256 key, signed by `ca`: basicConstraints
// CA:FALSE (critical), keyUsage digitalSignature+keyEncipherment (critical), the EKUs
// and subjectAltNames requested in `spec`, subject/authority key identifiers, a random
// 128-bit serial number and an ECDSA-SHA256 signature. The validity window is encoded
// exactly as given, even if it lies outside the CA's own window.
// Returns InvalidArgument if `ca` does not parse, its key does not match its
// certificate, it is not a CA, or `spec` is invalid (empty common name, unparsable IP,
// empty DNS/URI entry, not_after <= not_before).
absl::StatusOr<PemIdentity> IssueCertificate(const PemIdentity& ca, const CertificateSpec& spec);

// Parses the first certificate in `cert_pem` and summarizes it. Returns
// InvalidArgument if there is no parsable certificate.
absl::StatusOr<CertificateInfo> InspectCertificate(const std::string& cert_pem);

// Verifies that the first certificate in `cert_pem` chains to one of the certificates
// in `ca_pem` (one or more PEM certificates, all treated as trust anchors) and is valid
// at time `at`. Returns OkStatus on success, InvalidArgument if either input does not
// parse, and Unauthenticated (with OpenSSL's verification error) if verification fails.
// No purpose or hostname check is made; callers that need one do it themselves.
absl::Status VerifyCertificate(const std::string& cert_pem, const std::string& ca_pem,
                               absl::Time at);

// A CA bundle parsed once, for verifying many certificates against it: a secure-aggregation
// round checks every peer's key advertisement, and parsing the CA and each certificate
// several times per advertisement dominated a 100-site round (docs/PERFORMANCE.md).
// Thread-safe (OpenSSL's store locks its own lookups).
class TrustStore {
 public:
  // InvalidArgument when `ca_pem` holds no PEM certificate or a malformed one.
  static absl::StatusOr<std::shared_ptr<const TrustStore>> Create(const std::string& ca_pem);
  ~TrustStore();
  TrustStore(const TrustStore&) = delete;
  TrustStore& operator=(const TrustStore&) = delete;

  // VerifyCertificate and InspectCertificate of `cert_pem` with one parse: the certificate's
  // fields when it chains to the bundle and is valid at `at`; the same errors as those two.
  absl::StatusOr<CertificateInfo> VerifyAndInspect(const std::string& cert_pem,
                                                   absl::Time at) const;

 private:
  struct Store;
  explicit TrustStore(std::unique_ptr<Store> store);
  std::unique_ptr<Store> store_;
};

// ---- Certificate signing requests ---------------------------------------------------------

// What a certificate signing request (PKCS#10) carries, as returned by
// InspectCertificateRequest().
struct CertificateRequestInfo {
  std::string common_name;  // subject CN; empty if the subject has none
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  std::vector<std::string> uris;
  std::string key_type;  // "EC P-256" or "RSA <bits>"
};

// Creates a PEM CSR ("-----BEGIN CERTIFICATE REQUEST-----") for `key_pem`, signed with that
// key, with subject CN=`subject.common_name` and a subjectAltName extension request for the
// DNS/IP/URI entries of `subject`. The validity window and EKUs of `subject` are ignored:
// they are the CA's decision. Returns InvalidArgument for a bad key or spec.
absl::StatusOr<std::string> CreateCertificateRequest(const std::string& key_pem,
                                                     const CertificateSpec& subject);

// Parses the first CSR in `csr_pem`, checks its self-signature (proof that the requester
// holds the key) and that its key is ECDSA P-256 or RSA of at least 2048 bits. Returns
// InvalidArgument naming the problem otherwise.
absl::StatusOr<CertificateRequestInfo> InspectCertificateRequest(const std::string& csr_pem);

// Issues a certificate for the public key in `csr_pem` (which must pass
// InspectCertificateRequest), signed by `ca`. Subject, SANs, window and EKUs all come from
// `spec`, never from the request. Returns the certificate PEM.
absl::StatusOr<std::string> SignCertificateRequest(const PemIdentity& ca,
                                                   const std::string& csr_pem,
                                                   const CertificateSpec& spec);

// Returns OkStatus if `key_pem` is the private key of the certificate in `cert_pem`, else
// InvalidArgument saying that they do not belong together.
absl::Status CheckKeyMatchesCertificate(const std::string& cert_pem, const std::string& key_pem);

// ---- Revocation --------------------------------------------------------------------------

// RFC 5280 CRL reason codes accepted by CreateCrl(), in their RFC spelling.
const std::vector<std::string>& CrlReasonNames();

// One entry of a certificate revocation list.
struct RevokedCertificate {
  std::string serial_hex;  // as CertificateInfo::serial_hex (uppercase, no separators)
  absl::Time revoked_at;
  std::string reason = "unspecified";  // one of CrlReasonNames()
};

// A CRL's contents.
struct CrlInfo {
  std::string issuer_common_name;
  absl::Time this_update;
  absl::Time next_update;
  int64_t number = 0;  // the crlNumber extension; increases with every CRL the CA issues
  std::vector<RevokedCertificate> revoked;
};

// Creates a v2 CRL signed by `ca` (ECDSA-SHA256) listing `crl.revoked`, with thisUpdate,
// nextUpdate, crlNumber and authorityKeyIdentifier. `issuer_common_name` is ignored (the
// issuer is the CA's subject). Returns the CRL as PEM ("-----BEGIN X509 CRL-----").
// InvalidArgument for a bad serial, unknown reason, or next_update <= this_update.
absl::StatusOr<std::string> CreateCrl(const PemIdentity& ca, const CrlInfo& crl);

// Parses a PEM CRL and verifies its signature against the certificate in `ca_pem` (one or
// more PEM certificates) whose subject is the CRL's issuer. Returns InvalidArgument if it
// does not parse and Unauthenticated if no CA in `ca_pem` signed it.
absl::StatusOr<CrlInfo> ParseCrl(const std::string& crl_pem, const std::string& ca_pem);

// A serial number as the user may type it ("0a:1b:..", lower case, leading zeros) in the
// form of CertificateInfo::serial_hex.
std::string CanonicalSerialHex(absl::string_view hex);

// ---- Diagnosis ---------------------------------------------------------------------------

// What a peer checks before it accepts a certificate; empty fields are not checked.
struct AcceptanceCriteria {
  std::string ca_pem;      // trust anchors (the federation CA)
  std::string crl_pem;     // the federation's CRL (needs ca_pem)
  std::string federation;  // SPIFFE URIs must name this federation
  absl::Time at = absl::InfinitePast();  // InfinitePast: now
};

// Every reason a peer applying `criteria` would refuse the first certificate in `cert_pem`,
// each a readable sentence (not yet valid, expired, issued by another CA, revoked, another
// federation). Empty when it would be accepted. InvalidArgument if an input does not parse.
absl::StatusOr<std::vector<std::string>> RefusalReasons(const std::string& cert_pem,
                                                        const AcceptanceCriteria& criteria);

// SPIFFE-style identity URI for a site: "spiffe://<federation>/site/<site_id>".
std::string SiteIdentityUri(absl::string_view federation, absl::string_view site_id);

// SPIFFE-style identity URI for an operator: "spiffe://<federation>/admin/<name>". The
// coordinator's Admin service accepts only certificates carrying such a URI.
std::string AdminIdentityUri(absl::string_view federation, absl::string_view name);

// Writes `contents` to `path` atomically: the data goes to a temporary file in the same
// directory, which is given permission bits `mode` (e.g. 0600 for keys, 0644 for
// certificates; not subject to the umask), fsync'ed, and renamed over `path`; the
// directory is then fsync'ed. Readers see either the old file or the complete new one.
// Creates no directories. Returns InvalidArgument if `mode` has bits outside 07777.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents, int mode);

}  // namespace cohort::crypto

#endif  // COHORT_COMMON_CRYPTO_PKI_H_
