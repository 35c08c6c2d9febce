#ifndef COHORT_COMMON_SECAGG_SHAMIR_H_
#define COHORT_COMMON_SECAGG_SHAMIR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/secagg/secret.h"

namespace cohort::secagg {

// Shamir t-out-of-n secret sharing of 32-byte secrets over the prime field GF(2^61 - 1):
// the secret is cut into five 7-byte limbs (each < 2^56 < p), every limb is shared with its
// own random polynomial of degree t - 1 (coefficients from RAND_priv_bytes), and a share is
// the five evaluations at the holder's x. Fewer than t shares reveal nothing about the secret.
struct ShamirShare {
  uint32_t x = 0;  // the holder's evaluation point, never 0
  SecretBytes y;   // 5 field elements, 8 bytes each, little-endian (40 bytes)
};

inline constexpr size_t kShamirSecretBytes = 32;
inline constexpr size_t kShamirShareBytes = 40;

// One share per entry of `xs` (distinct, non-zero). InvalidArgument unless the secret is 32
// bytes and 1 <= threshold <= xs.size().
absl::StatusOr<std::vector<ShamirShare>> ShamirSplit(const SecretBytes& secret, int threshold,
                                                     absl::Span<const uint32_t> xs);

// Reconstructs the secret from at least `threshold` shares (Lagrange interpolation at 0).
// Every share beyond the first `threshold` is checked to lie on the same polynomial; a share
// that does not (a corrupted or forged share) gives DataLoss. InvalidArgument for too few
// shares, duplicate or zero x, malformed y, or a limb that does not decode to 7 bytes.
absl::StatusOr<SecretBytes> ShamirReconstruct(absl::Span<const ShamirShare> shares,
                                              int threshold);

}  // namespace cohort::secagg

#endif  // COHORT_COMMON_SECAGG_SHAMIR_H_
