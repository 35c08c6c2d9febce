#include "common/crypto/secure_sampler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <catch2/catch.hpp>

namespace cohort::crypto {

TEST_CASE("Gaussian noise has the requested mean and variance", "[dp][crypto]") {
  auto sampler = SecureSampler::FromOsEntropy();
  REQUIRE(sampler.ok());
  const size_t n = 1'000'001;  // odd: the last Box-Muller pair is cut in half
  std::vector<float> values(n);
  REQUIRE((*sampler)->Gaussian(values.data(), n, 2.5).ok());
  double sum = 0, sum_squares = 0, fourth = 0;
  size_t not_finite = 0;
  for (float v : values) {
    if (!std::isfinite(v)) ++not_finite;
    sum += v;
    sum_squares += static_cast<double>(v) * v;
    fourth += std::pow(static_cast<double>(v), 4);
  }
  CHECK(not_finite == 0);
  const double mean = sum / n;
  const double variance = sum_squares / n - mean * mean;
  // Standard errors: mean 2.5/sqrt(n) = 0.0025; variance sqrt(2) * 6.25 / sqrt(n) = 0.0088.
  CHECK(std::abs(mean) < 5 * 0.0025);
  CHECK(std::abs(variance - 6.25) < 5 * 0.0088);
  // Gaussian kurtosis is 3 (a uniform or a badly transformed stream is far from it).
  CHECK(fourth / n / (variance * variance) == Approx(3.0).epsilon(0.02));
}

TEST_CASE("Seeded samplers repeat, OS-keyed ones do not", "[dp][crypto]") {
  std::vector<float> a(1000), b(1000), c(1000), d(1000);
  auto s1 = SecureSampler::FromSeedForTesting(7);
  auto s2 = SecureSampler::FromSeedForTesting(7);
  auto s3 = SecureSampler::FromOsEntropy();
  auto s4 = SecureSampler::FromOsEntropy();
  REQUIRE((s1.ok() && s2.ok() && s3.ok() && s4.ok()));
  REQUIRE((*s1)->Gaussian(a.data(), a.size(), 1.0).ok());
  REQUIRE((*s2)->Gaussian(b.data(), b.size(), 1.0).ok());
  REQUIRE((*s3)->Gaussian(c.data(), c.size(), 1.0).ok());
  REQUIRE((*s4)->Gaussian(d.data(), d.size(), 1.0).ok());
  CHECK(a == b);
  CHECK(c != d);
  CHECK(a != c);
}

TEST_CASE("Poisson subsampling keeps each index with the given rate", "[dp][crypto]") {
  auto sampler = SecureSampler::FromSeedForTesting(3);
  REQUIRE(sampler.ok());
  const int64_t n = 200000;
  auto kept = (*sampler)->Subsample(n, 0.01);
  REQUIRE(kept.ok());
  // Binomial(200000, 0.01): mean 2000, standard deviation 44.5.
  CHECK(std::abs(static_cast<double>(kept->size()) - 2000.0) < 5 * 44.5);
  for (size_t i = 1; i < kept->size(); ++i) REQUIRE((*kept)[i - 1] < (*kept)[i]);
  auto none = (*sampler)->Subsample(n, 0.0);
  REQUIRE(none.ok());
  CHECK(none->empty());
  auto all = (*sampler)->Subsample(100, 1.0);
  REQUIRE(all.ok());
  CHECK(all->size() == 100);
  CHECK((*sampler)->Subsample(10, 1.5).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("Gaussian noise follows the normal CDF (Kolmogorov-Smirnov) and its tails", "[dp][crypto]") {
  auto sampler = SecureSampler::FromSeedForTesting(21);
  REQUIRE(sampler.ok());
  const size_t n = 4'000'000;
  std::vector<float> values(n);
  REQUIRE((*sampler)->Gaussian(values.data(), n, 1.0).ok());
  size_t beyond_4 = 0;
  size_t beyond_5 = 0;
  for (float v : values) {
    beyond_4 += std::fabs(v) > 4.0f;
    beyond_5 += std::fabs(v) > 5.0f;
  }
  std::sort(values.begin(), values.end());
  double d = 0;
  for (size_t i = 0; i < n; ++i) {
    const double cdf = 0.5 * std::erfc(-values[i] / std::sqrt(2.0));
    d = std::max({d, cdf - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - cdf});
  }
  // sqrt(n) D exceeds 1.95 with probability 0.1% under the null hypothesis.
  CHECK(std::sqrt(static_cast<double>(n)) * d < 1.95);
  // P(|Z| > 4) = 6.334e-5: 253.4 expected, standard deviation 15.9. P(|Z| > 5) = 5.73e-7: 2.3.
  CHECK(std::abs(static_cast<double>(beyond_4) - 253.4) < 5 * 15.9);
  CHECK(beyond_5 <= 12);
}

TEST_CASE("The vectorised Box-Muller paths equal the portable one bit for bit", "[dp][crypto]") {
  const size_t pairs = 4099;  // not a multiple of any vector width
  std::vector<uint32_t> words(3 * pairs);
  auto sampler = SecureSampler::FromSeedForTesting(5);
  REQUIRE(sampler.ok());
  std::vector<float> raw(words.size());
  REQUIRE((*sampler)->Gaussian(raw.data(), raw.size(), 1.0).ok());
  for (size_t i = 0; i < words.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, &raw[i], sizeof(bits));
    words[i] = bits * 2654435761u + static_cast<uint32_t>(i);
  }
  // The extremes of every word: u1 at 2^-63 and 1, the angle at the quadrant edges.
  for (size_t j = 0; j < 8; ++j) {
    words[j] = 0;
    words[pairs + j] = j < 4 ? 0 : 0xffffffffu;
    words[2 * pairs + j] = j % 2 == 0 ? 0 : 0xffffffffu;
    words[8 + j] = 0xffffffffu;
    words[pairs + 8 + j] = 0xffffffffu;
    words[2 * pairs + 8 + j] = static_cast<uint32_t>(j) << 29;
  }
  std::vector<float> want_cos(pairs), want_sin(pairs);
  internal::BoxMuller(words.data(), pairs, 1.5f, want_cos.data(), want_sin.data(), false,
                      internal::SimdLevel::kPortable);
  for (float v : want_cos) REQUIRE(std::isfinite(v));
  for (float v : want_sin) REQUIRE(std::isfinite(v));
  std::vector<internal::SimdLevel> levels = {internal::SimdLevel::kPortable};
  if (internal::BestSimdLevel() != internal::SimdLevel::kPortable) {
    levels.push_back(internal::SimdLevel::kAvx2);
  }
  if (internal::BestSimdLevel() == internal::SimdLevel::kAvx512) {
    levels.push_back(internal::SimdLevel::kAvx512);
  }
  for (internal::SimdLevel level : levels) {
    INFO("level " << static_cast<int>(level));
    std::vector<float> got_cos(pairs), got_sin(pairs);
    internal::BoxMuller(words.data(), pairs, 1.5f, got_cos.data(), got_sin.data(), false, level);
    CHECK(std::memcmp(got_cos.data(), want_cos.data(), pairs * sizeof(float)) == 0);
    CHECK(std::memcmp(got_sin.data(), want_sin.data(), pairs * sizeof(float)) == 0);
    // Accumulating adds the same values.
    std::vector<float> acc_cos(pairs, 2.0f), acc_sin(pairs, -1.0f);
    internal::BoxMuller(words.data(), pairs, 1.5f, acc_cos.data(), acc_sin.data(), true, level);
    for (size_t j = 0; j < pairs; ++j) {
      REQUIRE(acc_cos[j] == 2.0f + want_cos[j]);
      REQUIRE(acc_sin[j] == -1.0f + want_sin[j]);
    }
  }
}

TEST_CASE("The float32 transform matches Box-Muller in double precision", "[dp][crypto]") {
  const size_t pairs = 100000;
  std::vector<uint32_t> words(3 * pairs);
  for (size_t i = 0; i < words.size(); ++i) {
    words[i] = static_cast<uint32_t>((i + 1) * 0x9e3779b97f4a7c15ull >> 32);
  }
  for (size_t j = 0; j < 64; ++j) {  // u1 = 2^-63 at j = 0, about j 2^-31 after
    words[j] = static_cast<uint32_t>(2 * j);
    words[pairs + j] = 0;
  }
  words[2 * pairs] = 0;  // quadrant 0, angle -pi/4
  std::vector<float> c(pairs), s(pairs);
  internal::BoxMuller(words.data(), pairs, 1.0f, c.data(), s.data(), false,
                      internal::BestSimdLevel());
  double worst = 0;
  float largest = 0;
  for (size_t j = 0; j < pairs; ++j) {
    // u1 as the transform rounds it to float32, then everything else in double.
    const float u1 = static_cast<float>(static_cast<int32_t>(words[j] >> 1)) * 0x1p-31f +
                     (static_cast<float>(static_cast<int32_t>(words[pairs + j] >> 1)) + 0.5f) *
                         0x1p-62f;
    const uint32_t a = words[2 * pairs + j];
    const double steps = static_cast<double>(static_cast<int32_t>((a >> 8) & 0x3fffff) - 0x200000);
    const double theta = (static_cast<double>(a >> 30) + steps / 4194304.0) * M_PI / 2;
    const double radius = std::sqrt(-2.0 * std::log(static_cast<double>(u1)));
    const double tolerance = 1e-6 * std::max(1.0, radius);
    worst = std::max({worst, std::abs(c[j] - radius * std::cos(theta)) / tolerance,
                      std::abs(s[j] - radius * std::sin(theta)) / tolerance});
    largest = std::max({largest, std::fabs(c[j]), std::fabs(s[j])});
  }
  CHECK(worst < 1.0);
  // u1 = 2^-63 at j = 0 (the largest radius, 9.34), at an angle of -pi/4.
  CHECK(largest == Approx(std::sqrt(126 * std::log(2.0)) * std::sqrt(0.5)).epsilon(1e-5));
}

TEST_CASE("Gaussian values do not depend on the thread count or on how requests are cut",
          "[dp][crypto]") {
  const std::vector<size_t> sizes = {1, 2047, 2048, 2049, 300001, 1 << 18, 7};
  auto run = [&](int threads) {
    auto sampler = SecureSampler::FromSeedForTesting(99);
    REQUIRE(sampler.ok());
    (*sampler)->set_threads(threads);
    std::vector<std::vector<float>> out;
    for (size_t size : sizes) {
      out.emplace_back(size);
      REQUIRE((*sampler)->Gaussian(out.back().data(), size, 0.5).ok());
      auto kept = (*sampler)->Subsample(1001, 0.5);  // the stream moves on between requests
      REQUIRE(kept.ok());
      out.emplace_back(kept->begin(), kept->end());
    }
    return out;
  };
  const auto one = run(1);
  CHECK(run(2) == one);
  CHECK(run(SecureSampler::kMaxThreads) == one);
  // AddGaussian adds exactly the values Gaussian writes.
  auto a = SecureSampler::FromSeedForTesting(4);
  auto b = SecureSampler::FromSeedForTesting(4);
  REQUIRE((a.ok() && b.ok()));
  std::vector<float> noise(500001), base(500001);
  for (size_t i = 0; i < base.size(); ++i) base[i] = static_cast<float>(i % 97) - 48.0f;
  std::vector<float> sum = base;
  REQUIRE((*a)->Gaussian(noise.data(), noise.size(), 2.0).ok());
  REQUIRE((*b)->AddGaussian(sum.data(), sum.size(), 2.0).ok());
  for (size_t i = 0; i < sum.size(); ++i) REQUIRE(sum[i] == base[i] + noise[i]);
  CHECK((*a)->Gaussian(noise.data(), 1, -1.0).code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace cohort::crypto
