#include "common/tls/certificate_review.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cohort::tls {

absl::StatusOr<CertificateReview> ReviewCertificate(const std::string& cert_pem,
                                                    const std::string& ca_pem,
                                                    absl::string_view whose) {
  absl::StatusOr<crypto::CertificateInfo> info = crypto::InspectCertificate(cert_pem);
  if (!info.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("cannot read the ", whose, ": ", info.status().message()));
  }
  crypto::AcceptanceCriteria criteria;
  criteria.ca_pem = ca_pem;
  absl::StatusOr<std::vector<std::string>> reasons = crypto::RefusalReasons(cert_pem, criteria);
  if (!reasons.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("cannot check the ", whose, ": ", reasons.status().message()));
  }
  return CertificateReview{std::move(*info), std::move(*reasons)};
}

}  // namespace cohort::tls
