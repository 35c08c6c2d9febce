#ifndef COHORT_COMMON_SECAGG_SIGNATURE_H_
#define COHORT_COMMON_SECAGG_SIGNATURE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cohort::secagg {

// Signs `message` with the PEM private key of a site's TLS identity (ECDSA P-256 or RSA,
// SHA-256 digest; EVP_DigestSign).
absl::StatusOr<std::string> SignMessage(const std::string& private_key_pem,
                                        absl::string_view message);
// Verifies `signature` over `message` with the public key of the first certificate in
// `cert_pem`. Unauthenticated when the signature does not verify; InvalidArgument when the
// certificate does not parse. (Chain and identity checks are the caller's: crypto::pki.)
absl::Status VerifyMessage(const std::string& cert_pem, absl::string_view message,
                           absl::string_view signature);

}  // namespace cohort::secagg

#endif  // COHORT_COMMON_SECAGG_SIGNATURE_H_
