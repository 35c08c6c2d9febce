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

// SPIFFE-style identity URI for a site: "spiffe://<federation>/site/<site_id>".
std::string SiteIdentityUri(absl::string_view federation, absl::string_view site_id);

// Writes `contents` to `path` atomically: the data goes to a temporary file in the same
// directory, which is given permission bits `mode` (e.g. 0600 for keys, 0644 for
// certificates; not subject to the umask), fsync'ed, and renamed over `path`; the
// directory is then fsync'ed. Readers see either the old file or the complete new one.
// Creates no directories. Returns InvalidArgument if `mode` has bits outside 07777.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents, int mode);

}  // namespace cohort::crypto

#endif  // COHORT_COMMON_CRYPTO_PKI_H_
