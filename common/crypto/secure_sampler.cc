#include "common/crypto/secure_sampler.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/crypto/sha256.h"

namespace cohort::crypto {
namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559;
constexpr double kTwoToMinus53 = 1.0 / 9007199254740992.0;

}  // namespace

absl::StatusOr<std::unique_ptr<SecureSampler>> SecureSampler::FromKey(
    const unsigned char key[32]) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  unsigned char iv[16] = {0};
  if (ctx == nullptr || EVP_EncryptInit_ex(ctx, EVP_aes_256_ctr(), nullptr, key, iv) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return absl::InternalError("cannot initialise AES-256-CTR for the noise generator");
  }
  return std::unique_ptr<SecureSampler>(new SecureSampler(ctx));
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
  EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(ctx_));
}

absl::Status SecureSampler::NextWords(uint64_t* out, size_t count) {
  const size_t bytes = count * sizeof(uint64_t);
  if (zeros_.size() < bytes) zeros_.assign(bytes, 0);
  int written = 0;
  // Encrypting zeros yields the raw keystream.
  if (EVP_EncryptUpdate(static_cast<EVP_CIPHER_CTX*>(ctx_), reinterpret_cast<unsigned char*>(out),
                        &written, zeros_.data(), static_cast<int>(bytes)) != 1 ||
      written != static_cast<int>(bytes)) {
    return absl::InternalError("AES-256-CTR keystream generation failed");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> SecureSampler::Subsample(int64_t n, double rate) {
  if (!(rate >= 0.0 && rate <= 1.0) || n < 0) {
    return absl::InvalidArgumentError("subsampling needs 0 <= rate <= 1 and n >= 0");
  }
  constexpr size_t kBatch = 4096;
  uint64_t words[kBatch];
  std::vector<int64_t> kept;
  for (int64_t start = 0; start < n; start += kBatch) {
    const size_t count = static_cast<size_t>(std::min<int64_t>(kBatch, n - start));
    if (absl::Status s = NextWords(words, count); !s.ok()) return s;
    for (size_t i = 0; i < count; ++i) {
      if (static_cast<double>(words[i] >> 11) * kTwoToMinus53 < rate) kept.push_back(start + i);
    }
  }
  return kept;
}

absl::Status SecureSampler::Gaussian(float* out, size_t count, double stddev) {
  constexpr size_t kBatch = 8192;  // values per keystream request (one 64-bit word each)
  uint64_t words[kBatch];
  size_t done = 0;
  while (done < count) {
    const size_t pairs = std::min(kBatch / 2, (count - done + 1) / 2);
    if (absl::Status s = NextWords(words, 2 * pairs); !s.ok()) return s;
    for (size_t i = 0; i < pairs; ++i) {
      // u1 in (0, 1] so that log(u1) is finite; u2 in [0, 1).
      const double u1 = static_cast<double>((words[2 * i] >> 11) + 1) * kTwoToMinus53;
      const double u2 = static_cast<double>(words[2 * i + 1] >> 11) * kTwoToMinus53;
      const double radius = stddev * std::sqrt(-2.0 * std::log(u1));
      const double angle = kTwoPi * u2;
      out[done++] = static_cast<float>(radius * std::cos(angle));
      if (done < count) out[done++] = static_cast<float>(radius * std::sin(angle));
    }
  }
  std::memset(words, 0, sizeof(words));
  return absl::OkStatus();
}

}  // namespace cohort::crypto
