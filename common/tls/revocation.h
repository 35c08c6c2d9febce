#ifndef COHORT_COMMON_TLS_REVOCATION_H_
#define COHORT_COMMON_TLS_REVOCATION_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>

#include <grpcpp/security/tls_certificate_verifier.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace cohort::tls {

// The federation CRL as the coordinator enforces it: a PEM file signed by the federation CA,
// re-read whenever the file changes (checked at every handshake) and on Refresh(force).
// Invariant: once a CRL has loaded, an update that fails to read, parse or verify is logged
// and ignored, so a bad update never drops revocations already in force. Thread-safe.
class RevocationList {
 public:
  // Loads `crl_path`, verifying it against the CA certificate(s) in `ca_path`. Fails with the
  // reason if either file is unreadable or the CRL is not signed by that CA.
  static absl::StatusOr<std::shared_ptr<RevocationList>> Open(std::string crl_path,
                                                              std::string ca_path);
  ~RevocationList();

  // Re-reads the CRL if the file changed since it was last read (any change of inode, size
  // or modification time), or unconditionally when `force`. Returns the load error, if any;
  // the previous CRL then stays in force.
  absl::Status Refresh(bool force);

  // OkStatus if the certificate (PEM) is not on the current CRL; Unauthenticated naming the
  // certificate's subject, serial and revocation time otherwise.
  absl::Status Check(const std::string& cert_pem) const;

  // The crlNumber of the CRL in force.
  int64_t number() const;
  const std::string& path() const { return crl_path_; }

 private:
  // What identifies a version of the file without reading it.
  struct FileStamp {
    uint64_t inode = 0;
    int64_t size = -1;
    int64_t mtime_ns = 0;
    bool operator==(const FileStamp& o) const {
      return inode == o.inode && size == o.size && mtime_ns == o.mtime_ns;
    }
  };
  // A revoked certificate: its issuer's CN and serial.
  using Key = std::pair<std::string, std::string>;

  RevocationList(std::string crl_path, std::string ca_path)
      : crl_path_(std::move(crl_path)), ca_path_(std::move(ca_path)) {}
  absl::Status Load() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string crl_path_;
  const std::string ca_path_;
  mutable absl::Mutex mu_;
  FileStamp stamp_ ABSL_GUARDED_BY(mu_);
  std::set<Key> revoked_ ABSL_GUARDED_BY(mu_);
  std::map<Key, std::string> detail_ ABSL_GUARDED_BY(mu_);  // "revoked at T (reason: R)"
  int64_t number_ ABSL_GUARDED_BY(mu_) = 0;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_update_ ABSL_GUARDED_BY(mu_);
};

// Re-reads every open RevocationList now (the coordinator calls this on SIGHUP). Errors are
// logged; lists that fail keep their previous CRL.
void RefreshAllRevocationLists();

// Checks a site's client certificate (PEM) as the coordinator does: it must chain to a CA in
// the PEM bundle `ca_pem`, be valid now, carry extendedKeyUsage clientAuth, and not be on
// `crl` (may be null). Unauthenticated otherwise, naming the certificate and every reason
// (e.g. "expired at 2026-01-01T00:00:00Z", "issued by another CA: ...", "revoked at ...").
absl::Status CheckSiteCertificate(const std::string& cert_pem, const std::string& ca_pem,
                                  const RevocationList* crl);

// CheckSiteCertificate with the CA read from `ca_path` now (so a replaced CA applies at once),
// refreshing `crl` first if its file changed. What the handshake verifier and the per-call
// re-check of a live connection both decide with. Unauthenticated when the CA cannot be read
// or no certificate was presented.
absl::Status CheckClientCertificate(absl::string_view cert_pem, const std::string& ca_path,
                                    RevocationList* crl);

// The coordinator's verifier of site certificates. gRPC only checks that a client presents a
// certificate and holds its key (REQUIRE_CLIENT_CERTIFICATE_BUT_DONT_VERIFY); this verifier
// makes the whole decision with CheckSiteCertificate(), so the coordinator's log says why a
// site was refused. The CA file is read at every handshake and the CRL re-read when it
// changes, so a replaced CA or CRL applies to the next connection.
class SiteVerifier final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  // `crl` may be null (no revocation check).
  SiteVerifier(std::string ca_path, std::shared_ptr<RevocationList> crl)
      : ca_path_(std::move(ca_path)), crl_(std::move(crl)) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> callback, grpc::Status* sync_status) override;
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  const std::string ca_path_;
  const std::shared_ptr<RevocationList> crl_;
};

}  // namespace cohort::tls

#endif  // COHORT_COMMON_TLS_REVOCATION_H_
