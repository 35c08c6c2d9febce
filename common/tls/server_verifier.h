#ifndef COHORT_COMMON_TLS_SERVER_VERIFIER_H_
#define COHORT_COMMON_TLS_SERVER_VERIFIER_H_

#include <functional>
#include <string>
#include <vector>

#include <grpcpp/security/tls_certificate_verifier.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cohort::tls {

// True if `target` (a host name or IP address, without port) is covered by the DNS or IP
// subjectAltNames of a certificate. DNS names compare case-insensitively; a leading "*."
// wildcard matches exactly one label. An IP target matches only IP entries.
bool HostMatchesCertificate(absl::string_view target, const std::vector<std::string>& dns_names,
                            const std::vector<std::string>& ip_addresses);

// Checks the coordinator's certificate (PEM) as a site does: it must chain to a CA in the PEM
// bundle `ca_pem`, be valid now, carry extendedKeyUsage serverAuth, and name `target_name`
// ("host" or "host:port"). Unauthenticated otherwise, with every reason spelled out, e.g.
// "certificate is for DNS:localhost, IP:127.0.0.1, not for 'coord.example.org'".
absl::Status CheckCoordinatorCertificate(const std::string& cert_pem, const std::string& ca_pem,
                                         absl::string_view target_name);

// The site's verifier of the coordinator's certificate. It replaces gRPC's own chain and
// host name checks with CheckCoordinatorCertificate() so that a refusal says why (gRPC
// itself only reports "certificate verify failed"). The CA file is read at every handshake,
// so a replaced CA takes effect at the next connection.
class CoordinatorVerifier final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit CoordinatorVerifier(std::string ca_path) : ca_path_(std::move(ca_path)) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> callback, grpc::Status* sync_status) override;
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  const std::string ca_path_;
};

}  // namespace cohort::tls

#endif  // COHORT_COMMON_TLS_SERVER_VERIFIER_H_
