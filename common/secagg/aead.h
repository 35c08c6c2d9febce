#ifndef COHORT_COMMON_SECAGG_AEAD_H_
#define COHORT_COMMON_SECAGG_AEAD_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/secagg/secret.h"

namespace cohort::secagg {

// AES-256-GCM. Seal returns nonce (12 random bytes) || ciphertext || tag (16 bytes).
absl::StatusOr<std::string> Seal(const SecretBytes& key, const SecretBytes& plaintext,
                                 absl::string_view associated_data);
// Opens what Seal produced. InvalidArgument for a short input; Unauthenticated when the tag
// does not verify (wrong key, tampered ciphertext, or different associated data).
absl::StatusOr<SecretBytes> Open(const SecretBytes& key, absl::string_view sealed,
                                 absl::string_view associated_data);

}  // namespace cohort::secagg

#endif  // COHORT_COMMON_SECAGG_AEAD_H_
