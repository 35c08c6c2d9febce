#ifndef COHORT_COMMON_CRYPTO_SECURE_SAMPLER_H_
#define COHORT_COMMON_CRYPTO_SECURE_SAMPLER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cohort::crypto {

// The randomness DP-SGD's guarantee rests on, from a cryptographically secure stream: the
// AES-256-CTR keystream (OpenSSL, AES-NI) under a key from the OS's entropy source. A Mersenne
// Twister or LibTorch's generator would let anyone who learns the state recompute and subtract
// the noise, or know which records were in a batch.
//
// Gaussian values: the Box-Muller transform in float32, vectorised (AVX-512 or AVX2 when the
// CPU has them, a portable loop otherwise; all paths give the same bits). Each pair of values
// takes three 32-bit keystream words:
//   - the radius uniform u1 = (a + (b + 1/2) 2^-31) 2^-31 from two 31-bit words a, b: 62 random
//     bits, never 0, so the smallest u1 is 2^-63 and the largest |z| is
//     sqrt(2 * 63 * ln 2) = 9.34 standard deviations (P(|Z| > 9.34) = 1e-20: the tails are
//     exact as far as any run can observe). Rounded to float32 (24-bit significand), so u1's
//     density is exact to a relative 2^-24;
//   - the angle from a 24-bit uniform (2 bits pick the quadrant, 22 the angle within it).
// log, sin and cos are polynomial approximations good to about 1e-7 relative (float32
// rounding); z = sqrt(-2 log u1) * (cos, sin)(angle).
//
// The keystream is addressed by AES block: a request's values map to fixed blocks from the
// current position, so large requests are split across threads (set_threads) with the same
// output as one thread, and a seeded sampler repeats exactly for any thread count.
// Poisson subsampling draws each example's inclusion from the same stream (a 53-bit uniform).
//
// Not thread-safe (one caller at a time); it starts its own worker threads per large request.
class SecureSampler {
 public:
  static constexpr int kMaxThreads = 8;

  // A sampler keyed from the OS (RAND_priv_bytes). The production constructor.
  static absl::StatusOr<std::unique_ptr<SecureSampler>> FromOsEntropy();
  // A reproducible sampler (key = SHA-256 of the seed): tests and simulations only.
  static absl::StatusOr<std::unique_ptr<SecureSampler>> FromSeedForTesting(uint64_t seed);
  ~SecureSampler();
  SecureSampler(const SecureSampler&) = delete;
  SecureSampler& operator=(const SecureSampler&) = delete;

  // Writes `count` independent N(0, stddev^2) values.
  absl::Status Gaussian(float* out, size_t count, double stddev);
  // Adds `count` independent N(0, stddev^2) values to `values` in place (the same values
  // Gaussian would have written, given the same stream position).
  absl::Status AddGaussian(float* values, size_t count, double stddev);
  // Poisson subsampling: each of the indices 0..n-1 is kept independently with probability
  // `rate`; returns the kept indices in increasing order (possibly none).
  absl::StatusOr<std::vector<int64_t>> Subsample(int64_t n, double rate);

  // Threads used for large Gaussian requests, in [1, kMaxThreads]; the default is the
  // number of hardware threads, at most kMaxThreads. Does not change the output.
  void set_threads(int threads);
  int threads() const { return threads_; }

 private:
  explicit SecureSampler(std::vector<void*> contexts);
  static absl::StatusOr<std::unique_ptr<SecureSampler>> FromKey(const unsigned char key[32]);
  absl::Status FillGaussian(float* out, size_t count, double stddev, bool accumulate);

  // EVP_CIPHER_CTX*, one per worker thread, all under the same key; kept opaque so callers
  // do not include OpenSSL headers.
  std::vector<void*> contexts_;
  uint64_t next_block_ = 0;  // keystream position, in 16-byte AES blocks
  int threads_ = 1;
};

// The Box-Muller transform of SecureSampler, exposed so tests can compare its code paths.
namespace internal {

enum class SimdLevel { kPortable, kAvx2, kAvx512 };

// The best level this CPU supports.
SimdLevel BestSimdLevel();

// From 3 * pairs keystream words (radius words a in [0, pairs), b in [pairs, 2 pairs),
// angle words in [2 pairs, 3 pairs)) writes, or with `accumulate` adds, stddev * z to
// cos_out[j] and sin_out[j] for j < pairs. `level` must be supported by the CPU.
void BoxMuller(const uint32_t* words, size_t pairs, float stddev, float* cos_out,
               float* sin_out, bool accumulate, SimdLevel level);

}  // namespace internal

}  // namespace cohort::crypto

#endif  // COHORT_COMMON_CRYPTO_SECURE_SAMPLER_H_
