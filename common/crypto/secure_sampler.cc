#include "common/crypto/secure_sampler.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/crypto/sha256.h"

namespace cohort::crypto {
namespace {

constexpr double kTwoToMinus53 = 1.0 / 9007199254740992.0;
constexpr size_t kBlockBytes = 16;

// Gaussian requests are cut into chunks of kChunkPairs Box-Muller pairs: 3 words per pair, so
// a chunk is 12 KiB of keystream (768 AES blocks) and 8 KiB of output, in L1 together. Chunk c
// of a request always uses blocks [start + c * kChunkBlocks, ...) whichever thread runs it.
constexpr size_t kChunkPairs = 1024;
constexpr size_t kChunkValues = 2 * kChunkPairs;
constexpr size_t kChunkWords = 3 * kChunkPairs;
constexpr size_t kChunkBlocks = kChunkWords * sizeof(uint32_t) / kBlockBytes;
static_assert(kChunkWords * sizeof(uint32_t) % kBlockBytes == 0);
// Below this many values a request runs on the calling thread (starting a thread costs tens
// of microseconds; 64k values take about 100 us on one core).
constexpr size_t kMinValuesPerThread = size_t{1} << 16;

// Encrypting zeros yields the raw keystream.
alignas(64) const unsigned char kZeros[kChunkWords * sizeof(uint32_t)] = {};

// Points `ctx` at keystream block `block` (the CTR counter is the 128-bit big-endian IV).
bool Seek(EVP_CIPHER_CTX* ctx, uint64_t block) {
  unsigned char iv[16] = {0};
  for (int i = 0; i < 8; ++i) iv[15 - i] = static_cast<unsigned char>(block >> (8 * i));
  return EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, iv) == 1;
}

// The next `blocks` keystream blocks (blocks * 16 <= sizeof(kZeros)).
bool Keystream(EVP_CIPHER_CTX* ctx, size_t blocks, void* out) {
  const int bytes = static_cast<int>(blocks * kBlockBytes);
  int written = 0;
  return EVP_EncryptUpdate(ctx, static_cast<unsigned char*>(out), &written, kZeros, bytes) == 1 &&
         written == bytes;
}

// ---- The Box-Muller transform in float32 -------------------------------------------------
//
// Written as a plain loop over independent lanes so that GCC vectorises it; compiled once per
// instruction set below. No fused multiply-adds (the target lists leave FMA out, and
// contraction is switched off for the AVX-512 copy), so every path rounds identically.

inline float Bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}
inline uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

// sqrt(x) for 0 <= x < 2^64 as x / sqrt(x): three Newton steps on 1 / sqrt(x) from a
// bit-level first guess (relative error < 0.2%, then < 5e-6, then below float rounding).
// std::sqrt would be exact, but with errno semantics GCC keeps it a scalar call and the loop
// does not vectorise. sqrt(0) = 0 (the guess stays finite).
inline float Sqrt(float x) {
  float y = Bits(0x5f375a86u - (Bits(x) >> 1));
  const float half_x = 0.5f * x;
  y = y * (1.5f - half_x * y * y);
  y = y * (1.5f - half_x * y * y);
  y = y * (1.5f - half_x * y * y);
  return x * y;
}

// log(2) = kLn2Hi + kLn2Lo with kLn2Hi on 16 significant bits: e * kLn2Hi is exact for
// |e| < 2^8.
constexpr float kLn2Hi = 0.693145751953125f;
constexpr float kLn2Lo = 1.428606820309417232e-6f;
// (pi / 2) / 2^22: the angle step within a quadrant.
constexpr float kAngleStep = 3.7450702829239286e-7f;

template <bool kAccumulate>
__attribute__((always_inline)) inline void BoxMullerBody(const uint32_t* __restrict hi,
                                                         const uint32_t* __restrict lo,
                                                         const uint32_t* __restrict angle,
                                                         size_t pairs, float stddev,
                                                         float* __restrict cos_out,
                                                         float* __restrict sin_out) {
  for (size_t j = 0; j < pairs; ++j) {
    // u1 in [2^-63, 1]: never 0. Both conversions are exact below 2^24; above, the rounding
    // is a relative 2^-24.
    const float u1 = static_cast<float>(static_cast<int32_t>(hi[j] >> 1)) * 0x1p-31f +
                     (static_cast<float>(static_cast<int32_t>(lo[j] >> 1)) + 0.5f) * 0x1p-62f;
    // log(u1) = e log 2 + log(m), m in [sqrt(1/2), sqrt(2)), log(m) = 2 atanh(s) with
    // s = (m - 1) / (m + 1), |s| < 0.172: the series to s^9 errs by < 1e-9.
    const uint32_t bits = Bits(u1);
    const int32_t exponent = static_cast<int32_t>(bits >> 23) - 127;
    const float mantissa = Bits((bits & 0x007fffffu) | 0x3f800000u);  // [1, 2)
    // Selections as bit masks (all ones or zero), which vectorise without branches.
    const uint32_t high = 0u - static_cast<uint32_t>(mantissa > 1.41421356f);
    const float m = Bits(Bits(mantissa) - (high & 0x00800000u));  // halved when high
    const float e = static_cast<float>(exponent + static_cast<int32_t>(high & 1u));
    const float s = (m - 1.0f) / (m + 1.0f);  // m - 1 is exact
    const float s2 = s * s;
    const float series =
        s2 * (1.0f / 3.0f + s2 * (1.0f / 5.0f + s2 * (1.0f / 7.0f + s2 * (1.0f / 9.0f))));
    const float log_u1 = e * kLn2Hi + (e * kLn2Lo + (2.0f * s + 2.0f * s * series));
    // log_u1 <= 0: it is 0 only for u1 = 1, and below -log(2) + log(sqrt(2)) otherwise.
    const float radius = stddev * Sqrt(-2.0f * log_u1);

    // The angle: quadrant q from the top 2 bits, x in [-pi/4, pi/4) from the next 22, so
    // that theta = x + q pi / 2 is uniform on a grid of 2^24 points. Taylor series of sin
    // and cos on [-pi/4, pi/4]: the first omitted terms are below 2e-9.
    const uint32_t a = angle[j];
    const uint32_t quadrant = a >> 30;
    const int32_t steps = static_cast<int32_t>((a >> 8) & 0x3fffffu) - 0x200000;
    const float x = static_cast<float>(steps) * kAngleStep;
    const float x2 = x * x;
    const float sin_x =
        x + x * x2 *
                (-1.0f / 6.0f +
                 x2 * (1.0f / 120.0f + x2 * (-1.0f / 5040.0f + x2 * (1.0f / 362880.0f))));
    const float cos_x =
        1.0f +
        x2 * (-0.5f +
              x2 * (1.0f / 24.0f +
                    x2 * (-1.0f / 720.0f + x2 * (1.0f / 40320.0f + x2 * (-1.0f / 3628800.0f)))));
    // (cos, sin)(x + q pi/2) = (c, s), (-s, c), (-c, -s), (s, -c) for q = 0..3.
    const uint32_t swap = 0u - (quadrant & 1u);
    const float c = Bits((Bits(sin_x) & swap) | (Bits(cos_x) & ~swap));
    const float sn = Bits((Bits(cos_x) & swap) | (Bits(sin_x) & ~swap));
    const uint32_t cos_sign = ((quadrant ^ (quadrant >> 1)) & 1u) << 31;
    const uint32_t sin_sign = (quadrant >> 1) << 31;
    const float zc = Bits(Bits(radius * c) ^ cos_sign);
    const float zs = Bits(Bits(radius * sn) ^ sin_sign);
    if constexpr (kAccumulate) {
      cos_out[j] += zc;
      sin_out[j] += zs;
    } else {
      cos_out[j] = zc;
      sin_out[j] = zs;
    }
  }
}

template <bool kAccumulate>
void BoxMullerPortable(const uint32_t* words, size_t pairs, float stddev, float* cos_out,
                       float* sin_out) {
  BoxMullerBody<kAccumulate>(words, words + pairs, words + 2 * pairs, pairs, stddev, cos_out,
                             sin_out);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define COHORT_SAMPLER_X86 1
template <bool kAccumulate>
__attribute__((target("avx2"))) void BoxMullerAvx2(const uint32_t* words, size_t pairs,
                                                   float stddev, float* cos_out,
                                                   float* sin_out) {
  BoxMullerBody<kAccumulate>(words, words + pairs, words + 2 * pairs, pairs, stddev, cos_out,
                             sin_out);
}

// AVX-512F has fused multiply-add instructions of its own: contraction stays off so that this
// path rounds like the others.
template <bool kAccumulate>
__attribute__((target("avx512f"), optimize("fp-contract=off"))) void BoxMullerAvx512(
    const uint32_t* words, size_t pairs, float stddev, float* cos_out, float* sin_out) {
  BoxMullerBody<kAccumulate>(words, words + pairs, words + 2 * pairs, pairs, stddev, cos_out,
                             sin_out);
}
#endif

}  // namespace

namespace internal {

SimdLevel BestSimdLevel() {
#ifdef COHORT_SAMPLER_X86
  static const SimdLevel kLevel = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return SimdLevel::kAvx512;
    if (__builtin_cpu_supports("avx2")) return SimdLevel::kAvx2;
    return SimdLevel::kPortable;
  }();
  return kLevel;
#else
  return SimdLevel::kPortable;
#endif
}

void BoxMuller(const uint32_t* words, size_t pairs, float stddev, float* cos_out,
               float* sin_out, bool accumulate, SimdLevel level) {
#ifdef COHORT_SAMPLER_X86
  if (level == SimdLevel::kAvx512) {
    accumulate ? BoxMullerAvx512<true>(words, pairs, stddev, cos_out, sin_out)
               : BoxMullerAvx512<false>(words, pairs, stddev, cos_out, sin_out);
    return;
  }
  if (level == SimdLevel::kAvx2) {
    accumulate ? BoxMullerAvx2<true>(words, pairs, stddev, cos_out, sin_out)
               : BoxMullerAvx2<false>(words, pairs, stddev, cos_out, sin_out);
    return;
  }
#endif
  accumulate ? BoxMullerPortable<true>(words, pairs, stddev, cos_out, sin_out)
             : BoxMullerPortable<false>(words, pairs, stddev, cos_out, sin_out);
}

}  // namespace internal

namespace {

// Fills chunks [first, last) of a Gaussian request whose chunk 0 starts at keystream block
// `start`, with the context `ctx` (owned by the calling thread).
bool GaussianChunks(EVP_CIPHER_CTX* ctx, uint64_t start, size_t first, size_t last, float* out,
                    size_t count, float stddev, bool accumulate) {
  if (!Seek(ctx, start + first * kChunkBlocks)) return false;
  const internal::SimdLevel level = internal::BestSimdLevel();
  alignas(64) uint32_t words[kChunkWords];
  bool ok = true;
  for (size_t c = first; c < last && ok; ++c) {
    float* dest = out + c * kChunkValues;
    const size_t values = std::min(kChunkValues, count - c * kChunkValues);
    const size_t pairs = (values + 1) / 2;
    const size_t blocks = (3 * pairs * sizeof(uint32_t) + kBlockBytes - 1) / kBlockBytes;
    if (!Keystream(ctx, blocks, words)) {
      ok = false;
      break;
    }
    if (values == kChunkValues) {
      internal::BoxMuller(words, pairs, stddev, dest, dest + pairs, accumulate, level);
    } else {
      // The last, partial chunk: the cos values then the sin values, cut to `values`.
      alignas(64) float tail[kChunkValues];
      internal::BoxMuller(words, pairs, stddev, tail, tail + pairs, /*accumulate=*/false,
                          level);
      for (size_t i = 0; i < values; ++i) dest[i] = accumulate ? dest[i] + tail[i] : tail[i];
      OPENSSL_cleanse(tail, sizeof(tail));
    }
  }
  OPENSSL_cleanse(words, sizeof(words));
  return ok;
}

}  // namespace

SecureSampler::SecureSampler(std::vector<void*> contexts) : contexts_(std::move(contexts)) {
  const unsigned hardware = std::thread::hardware_concurrency();
  set_threads(hardware == 0 ? 1 : static_cast<int>(hardware));
}

absl::StatusOr<std::unique_ptr<SecureSampler>> SecureSampler::FromKey(
    const unsigned char key[32]) {
  std::vector<void*> contexts;
  unsigned char iv[16] = {0};
  for (int i = 0; i < kMaxThreads; ++i) {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    if (ctx != nullptr) contexts.push_back(ctx);
    if (ctx == nullptr || EVP_EncryptInit_ex(ctx, EVP_aes_256_ctr(), nullptr, key, iv) != 1) {
      for (void* c : contexts) EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(c));
      return absl::InternalError("cannot initialise AES-256-CTR for the noise generator");
    }
  }
  return std::unique_ptr<SecureSampler>(new SecureSampler(std::move(contexts)));
}

absl::StatusOr<std::unique_ptr<SecureSampler>> SecureSampler::FromOsEntropy() {
  unsigned char key[32];
  if (RAND_priv_bytes(key, sizeof(key)) != 1) {
    return absl::UnavailableError("the OS entropy source did not provide a noise key");
  }
  auto sampler = FromKey(key);
  OPENSSL_cleanse(key, sizeof(key));
  return sampler;
}

absl::StatusOr<std::unique_ptr<SecureSampler>> SecureSampler::FromSeedForTesting(
    uint64_t seed) {
  std::string digest = Sha256(absl::StrCat("cohort-test-noise-", seed));
  return FromKey(reinterpret_cast<const unsigned char*>(digest.data()));
}

SecureSampler::~SecureSampler() {
  for (void* ctx : contexts_) EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(ctx));
}

void SecureSampler::set_threads(int threads) {
  threads_ = std::clamp(threads, 1, kMaxThreads);
}

absl::StatusOr<std::vector<int64_t>> SecureSampler::Subsample(int64_t n, double rate) {
  if (!(rate >= 0.0 && rate <= 1.0) || n < 0) {
    return absl::InvalidArgumentError("subsampling needs 0 <= rate <= 1 and n >= 0");
  }
  auto* ctx = static_cast<EVP_CIPHER_CTX*>(contexts_[0]);
  if (!Seek(ctx, next_block_)) return absl::InternalError("AES-256-CTR seek failed");
  constexpr size_t kBatch = sizeof(kZeros) / sizeof(uint64_t);  // words per keystream request
  alignas(64) uint64_t words[kBatch];
  std::vector<int64_t> kept;
  for (int64_t start = 0; start < n; start += kBatch) {
    const size_t count = static_cast<size_t>(std::min<int64_t>(kBatch, n - start));
    const size_t blocks = (count * sizeof(uint64_t) + kBlockBytes - 1) / kBlockBytes;
    if (!Keystream(ctx, blocks, words)) {
      return absl::InternalError("AES-256-CTR keystream generation failed");
    }
    next_block_ += blocks;
    for (size_t i = 0; i < count; ++i) {
      if (static_cast<double>(words[i] >> 11) * kTwoToMinus53 < rate) kept.push_back(start + i);
    }
  }
  OPENSSL_cleanse(words, sizeof(words));
  return kept;
}

absl::Status SecureSampler::Gaussian(float* out, size_t count, double stddev) {
  return FillGaussian(out, count, stddev, /*accumulate=*/false);
}

absl::Status SecureSampler::AddGaussian(float* values, size_t count, double stddev) {
  return FillGaussian(values, count, stddev, /*accumulate=*/true);
}

absl::Status SecureSampler::FillGaussian(float* out, size_t count, double stddev,
                                         bool accumulate) {
  if (!(stddev >= 0) || !std::isfinite(stddev)) {
    return absl::InvalidArgumentError(absl::StrCat("noise stddev must be finite and >= 0; got ",
                                                   stddev));
  }
  if (count == 0) return absl::OkStatus();
  const size_t chunks = (count + kChunkValues - 1) / kChunkValues;
  const size_t last_pairs = (count - (chunks - 1) * kChunkValues + 1) / 2;
  const uint64_t start = next_block_;
  next_block_ += (chunks - 1) * kChunkBlocks +
                 (3 * last_pairs * sizeof(uint32_t) + kBlockBytes - 1) / kBlockBytes;
  const float sd = static_cast<float>(stddev);
  const size_t workers =
      std::min<size_t>({static_cast<size_t>(threads_), chunks,
                        std::max<size_t>(1, count / kMinValuesPerThread)});
  // Worker w takes chunks [bounds[w], bounds[w + 1]); worker 0 is this thread.
  std::vector<size_t> bounds(workers + 1);
  for (size_t w = 0; w <= workers; ++w) bounds[w] = chunks * w / workers;
  std::vector<char> ok(workers, 0);
  std::vector<std::thread> helpers;
  helpers.reserve(workers - 1);
  for (size_t w = 1; w < workers; ++w) {
    helpers.emplace_back([&, w] {
      ok[w] = GaussianChunks(static_cast<EVP_CIPHER_CTX*>(contexts_[w]), start, bounds[w],
                             bounds[w + 1], out, count, sd, accumulate);
    });
  }
  ok[0] = GaussianChunks(static_cast<EVP_CIPHER_CTX*>(contexts_[0]), start, bounds[0], bounds[1],
                         out, count, sd, accumulate);
  for (std::thread& t : helpers) t.join();
  for (char k : ok) {
    if (!k) return absl::InternalError("AES-256-CTR keystream generation failed");
  }
  return absl::OkStatus();
}

}  // namespace cohort::crypto
