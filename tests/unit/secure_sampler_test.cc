#include "common/crypto/secure_sampler.h"

#include <cmath>
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

}  // namespace cohort::crypto
