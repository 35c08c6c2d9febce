#ifndef COHORT_COMMON_CRYPTO_SECURE_SAMPLER_H_
#define COHORT_COMMON_CRYPTO_SECURE_SAMPLER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"

namespace cohort::crypto {

// The randomness DP-SGD's guarantee rests on, from a cryptographically secure stream: the
// AES-256-CTR keystream (OpenSSL) under a key from the OS's entropy source. Gaussian values come
// from the Box-Muller transform in double precision (53-bit uniforms, so the tails reach 8.5
// standard deviations); Poisson subsampling draws each example's inclusion from the same stream.
// A Mersenne Twister or LibTorch's generator would let anyone who learns the state recompute
// and subtract the noise, or know which records were in a batch.
class SecureSampler {
 public:
  // A sampler keyed from the OS (RAND_priv_bytes). The production constructor.
  static absl::StatusOr<std::unique_ptr<SecureSampler>> FromOsEntropy();
  // A reproducible sampler (key = SHA-256 of the seed): tests and simulations only.
  static absl::StatusOr<std::unique_ptr<SecureSampler>> FromSeedForTesting(uint64_t seed);
  ~SecureSampler();
  SecureSampler(const SecureSampler&) = delete;
  SecureSampler& operator=(const SecureSampler&) = delete;

  // Writes `count` independent N(0, stddev^2) values.
  absl::Status Gaussian(float* out, size_t count, double stddev);
  // Poisson subsampling: each of the indices 0..n-1 is kept independently with probability
  // `rate`; returns the kept indices in increasing order (possibly none).
  absl::StatusOr<std::vector<int64_t>> Subsample(int64_t n, double rate);

 private:
  explicit SecureSampler(void* cipher_context) : ctx_(cipher_context) {}
  static absl::StatusOr<std::unique_ptr<SecureSampler>> FromKey(const unsigned char key[32]);
  absl::Status NextWords(uint64_t* out, size_t count);

  void* ctx_;  // EVP_CIPHER_CTX*, kept opaque so callers do not include OpenSSL headers.
  std::vector<unsigned char> zeros_;
};

}  // namespace cohort::crypto

#endif  // COHORT_COMMON_CRYPTO_SECURE_SAMPLER_H_
