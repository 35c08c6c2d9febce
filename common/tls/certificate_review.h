#ifndef COHORT_COMMON_TLS_CERTIFICATE_REVIEW_H_
#define COHORT_COMMON_TLS_CERTIFICATE_REVIEW_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/pki.h"

namespace cohort::tls {

// A peer certificate read and judged against the federation CA: what it says, and every
// reason the CA check refuses it now (issuer, validity). Role checks (clientAuth, host name,
// revocation) are added by the caller.
struct CertificateReview {
  crypto::CertificateInfo info;
  std::vector<std::string> reasons;  // empty: accepted so far
};

// Unauthenticated ("cannot read the <whose>: ..." / "cannot check the <whose>: ...") when the
// certificate or the CA does not parse.
absl::StatusOr<CertificateReview> ReviewCertificate(const std::string& cert_pem,
                                                    const std::string& ca_pem,
                                                    absl::string_view whose);

}  // namespace cohort::tls

#endif  // COHORT_COMMON_TLS_CERTIFICATE_REVIEW_H_
