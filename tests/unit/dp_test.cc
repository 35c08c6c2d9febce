// Unit tests for common/dp: the Rényi DP of the Sampled Gaussian Mechanism (both code paths
// against each other and against a brute-force integral), the accountant's composition and
// conversion to (epsilon, delta), noise calibration and argument checks.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "common/dp/accountant.h"
#include "common/dp/calibration.h"
#include "common/dp/rdp.h"
#include "tests/support/status_assertions.h"

namespace cohort::dp {
namespace {

using ::cohort::testing::RequireInvalid;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The RDP at order alpha by brute force: log of the integral over z of
// N(z; 0, sigma^2) ((1 - q) + q exp((2z - 1) / (2 sigma^2)))^alpha, i.e. of
// N(0, sigma^2) (mu(z) / N(z; 0, sigma^2))^alpha with mu = q N(1, sigma^2) + (1 - q)
// N(0, sigma^2), by the trapezoid rule with step sigma / 100 over [-40 sigma - 2,
// alpha + 40 sigma + 2] (the integrand peaks between 0 and alpha and decays like a Gaussian
// of width sigma). Everything in log space, the sum accumulated in long double.
double BruteForceRdp(double q, double sigma, double alpha) {
  const double lo = -40 * sigma - 2;
  const double hi = alpha + 40 * sigma + 2;
  const double h = sigma / 100;
  const int64_t n = static_cast<int64_t>(std::ceil((hi - lo) / h));
  std::vector<double> log_f(n + 1);
  double max = -kInf;
  for (int64_t k = 0; k <= n; ++k) {
    const double z = lo + h * static_cast<double>(k);
    const double log_mix_a = std::log1p(-q);
    const double log_mix_b = std::log(q) + (2 * z - 1) / (2 * sigma * sigma);
    const double log_mix =
        std::max(log_mix_a, log_mix_b) + std::log1p(std::exp(-std::fabs(log_mix_a - log_mix_b)));
    log_f[k] =
        -z * z / (2 * sigma * sigma) - std::log(sigma * std::sqrt(2 * M_PI)) + alpha * log_mix;
    max = std::max(max, log_f[k]);
  }
  long double sum = 0;
  for (int64_t k = 0; k <= n; ++k) {
    const long double weight = (k == 0 || k == n) ? 0.5L : 1.0L;
    sum += weight * std::exp(static_cast<long double>(log_f[k] - max));
  }
  return (max + static_cast<double>(std::log(sum * h))) / (alpha - 1);
}

double Epsilon(double q, double sigma, int64_t steps, double delta = 1e-5) {
  absl::StatusOr<EpsilonAtOrder> result = ComputeEpsilon(q, sigma, steps, delta);
  INFO(result.status().ToString());
  REQUIRE(result.ok());
  return result->epsilon;
}

double Rdp(double q, double sigma, double alpha) {
  absl::StatusOr<double> rdp = SampledGaussianRdp(q, sigma, alpha);
  INFO(rdp.status().ToString());
  REQUIRE(rdp.ok());
  return *rdp;
}

// --- Orders and reference values ----------------------------------------------------------

TEST_CASE("DefaultOrders are 1.1 .. 10.9 in steps of 0.1, then 12 .. 63", "[dp]") {
  const std::vector<double>& orders = DefaultOrders();
  REQUIRE(orders.size() == 99 + 52);
  for (int x = 1; x <= 99; ++x) CHECK(orders[x - 1] == 1.0 + x / 10.0);
  for (int a = 12; a <= 63; ++a) CHECK(orders[99 + a - 12] == a);
  CHECK(orders.front() == 1.1);
  CHECK(orders[98] == 10.9);
  CHECK(orders.back() == 63);
}

TEST_CASE("ComputeEpsilon matches the reference values at delta 1e-5", "[dp]") {
  // q = 0.01, sigma = 1.1: the values Opacus's RDP accountant reports for these settings.
  CHECK(Epsilon(0.01, 1.1, 1000) == Approx(1.7118).margin(0.5e-4));
  CHECK(Epsilon(0.01, 1.1, 10000) == Approx(5.632).margin(0.5e-3));
  // Regression pins (6 digits) of this implementation.
  CHECK(Epsilon(0.01, 1.1, 1000) == Approx(1.711770).margin(1e-6));
  CHECK(Epsilon(0.01, 1.1, 10000) == Approx(5.631992).margin(1e-6));
  absl::StatusOr<EpsilonAtOrder> at = ComputeEpsilon(0.01, 1.1, 1000, 1e-5);
  REQUIRE(at.ok());
  CHECK(at->order == Approx(9.6));
}

// --- RDP of one step ------------------------------------------------------------------------

TEST_CASE("With q = 1 the RDP is exactly alpha / (2 sigma^2)", "[dp]") {
  for (double sigma : {0.3, 1.0, 1.1, 7.5}) {
    absl::StatusOr<std::vector<double>> rdp = RdpCalculator::Default().Compute(1.0, sigma);
    REQUIRE(rdp.ok());
    for (size_t k = 0; k < DefaultOrders().size(); ++k) {
      const double alpha = DefaultOrders()[k];
      INFO("sigma " << sigma << " alpha " << alpha);
      CHECK((*rdp)[k] == alpha / (2 * sigma * sigma));
    }
    CHECK(Rdp(1.0, sigma, 2.5) == 2.5 / (2 * sigma * sigma));
  }
}

TEST_CASE("q = 0 and an infinite sigma cost nothing", "[dp]") {
  CHECK(Rdp(0.0, 1.0, 3.0) == 0);
  CHECK(Rdp(0.0, 1.0, 2.5) == 0);
  CHECK(Rdp(0.3, kInf, 3.0) == 0);
  CHECK(Rdp(0.3, kInf, 2.5) == 0);
}

TEST_CASE("The integer and fractional code paths agree where they overlap", "[dp]") {
  const auto [q, sigma] = GENERATE(table<double, double>(
      {{0.001, 0.8}, {0.01, 1.1}, {0.1, 0.5}, {0.3, 2.0}, {0.5, 1.0}, {0.9, 4.0}}));
  for (int64_t alpha : {2, 3, 7, 12, 40}) {
    const double a = static_cast<double>(alpha);
    INFO("q " << q << " sigma " << sigma << " alpha " << alpha);
    const double exact = internal::IntegerOrderRdp(q, sigma, alpha);
    // The fractional series at an integer order (finite series).
    CHECK(internal::FractionalOrderRdp(q, sigma, a) == Approx(exact).epsilon(1e-12));
    // Just off the integer: infinite series with the accelerated tail. RDP is smooth in
    // alpha, so a 1e-9 shift moves it by about 1e-9 relative.
    CHECK(internal::FractionalOrderRdp(q, sigma, a + 1e-9) == Approx(exact).epsilon(1e-6));
    CHECK(internal::FractionalOrderRdp(q, sigma, a - 1e-9) == Approx(exact).epsilon(1e-6));
    // The public entry point takes the integer path.
    CHECK(Rdp(q, sigma, a) == exact);
  }
}

TEST_CASE("RDP matches a brute-force integral of the Rényi divergence", "[dp]") {
  const auto [q, sigma, alpha] = GENERATE(table<double, double, double>({{0.01, 1.1, 1.5},
                                                                         {0.01, 1.1, 3.0},
                                                                         {0.01, 1.1, 10.9},
                                                                         {0.001, 0.6, 4.5},
                                                                         {0.1, 0.7, 2.5},
                                                                         {0.05, 2.0, 7.3},
                                                                         {0.2, 0.8, 32.0},
                                                                         {0.5, 3.0, 1.1},
                                                                         {0.5, 0.3, 10.5},
                                                                         {0.9, 0.5, 5.75}}));
  INFO("q " << q << " sigma " << sigma << " alpha " << alpha);
  CHECK(Rdp(q, sigma, alpha) == Approx(BruteForceRdp(q, sigma, alpha)).epsilon(1e-6));
}

TEST_CASE("The calculator gives the same values as one order at a time", "[dp]") {
  absl::StatusOr<std::vector<double>> all = RdpCalculator::Default().Compute(0.02, 0.9);
  REQUIRE(all.ok());
  for (size_t k = 0; k < DefaultOrders().size(); k += 7) {
    INFO("alpha " << DefaultOrders()[k]);
    CHECK((*all)[k] == Approx(Rdp(0.02, 0.9, DefaultOrders()[k])).epsilon(1e-13));
  }
}

// --- Accountant -----------------------------------------------------------------------------

TEST_CASE("Epsilon increases with steps and sample rate and decreases with noise", "[dp]") {
  double previous = 0;
  for (int64_t steps : {1, 10, 100, 1000, 10000, 100000}) {
    const double epsilon = Epsilon(0.01, 1.1, steps);
    INFO("steps " << steps);
    CHECK(epsilon > previous);
    previous = epsilon;
  }
  previous = 0;
  for (double q : {0.0005, 0.001, 0.01, 0.05, 0.2, 0.7, 1.0}) {
    const double epsilon = Epsilon(q, 1.1, 1000);
    INFO("q " << q);
    CHECK(epsilon > previous);
    previous = epsilon;
  }
  previous = kInf;
  for (double sigma : {0.5, 0.8, 1.1, 2.0, 5.0, 20.0}) {
    const double epsilon = Epsilon(0.01, sigma, 1000);
    INFO("sigma " << sigma);
    CHECK(epsilon < previous);
    previous = epsilon;
  }
}

TEST_CASE("Heterogeneous composition adds the RDP of the parts at every order", "[dp]") {
  const std::vector<std::tuple<double, double, int64_t>> parts = {
      {0.01, 1.1, 300}, {0.05, 0.9, 20}, {1.0, 4.0, 3}, {0.002, 0.7, 1000}};
  RdpAccountant all;
  std::vector<double> expected(DefaultOrders().size(), 0.0);
  for (const auto& [q, sigma, steps] : parts) {
    all.AddSteps(q, sigma, steps);
    absl::StatusOr<std::vector<double>> one = RdpCalculator::Default().Compute(q, sigma);
    REQUIRE(one.ok());
    for (size_t k = 0; k < expected.size(); ++k) expected[k] += steps * (*one)[k];
  }
  REQUIRE(all.rdp().size() == expected.size());
  for (size_t k = 0; k < expected.size(); ++k) {
    CHECK(all.rdp()[k] == Approx(expected[k]).epsilon(1e-12));
  }
  CHECK(all.steps() == 300 + 20 + 3 + 1000);

  // Epsilon is the best conversion of the summed RDP.
  absl::StatusOr<EpsilonAtOrder> epsilon = all.GetEpsilon(1e-6);
  REQUIRE(epsilon.ok());
  double best = kInf;
  for (size_t k = 0; k < expected.size(); ++k) {
    best = std::min(best, RdpToEpsilon(expected[k], DefaultOrders()[k], 1e-6));
  }
  CHECK(epsilon->epsilon == Approx(best).epsilon(1e-12));

  // Step by step, interleaved, gives the same totals.
  RdpAccountant interleaved;
  for (int64_t round = 0; round < 1000; ++round) {
    for (const auto& [q, sigma, steps] : parts) {
      if (round < steps) interleaved.AddSteps(q, sigma, 1);
    }
  }
  for (size_t k = 0; k < expected.size(); ++k) {
    CHECK(interleaved.rdp()[k] == Approx(expected[k]).epsilon(1e-12));
  }
}

TEST_CASE("Composition stays exact past the cache limit", "[dp]") {
  // More distinct pairs than the cache holds, then the first pairs again.
  const int64_t pairs = RdpAccountant::kMaxCachedPairs + 10;
  auto pair = [](int64_t i) {
    return std::make_pair(0.001 + 1e-7 * static_cast<double>(i),
                          1.0 + 1e-5 * static_cast<double>(i));
  };
  RdpAccountant accountant;
  for (int64_t i = 0; i < pairs; ++i) accountant.AddSteps(pair(i).first, pair(i).second, 1);
  for (int64_t i = 0; i < 20; ++i) accountant.AddSteps(pair(i).first, pair(i).second, 1);
  // Spot-check one order against a direct sum.
  const size_t k = 40;  // alpha = 5.1
  double expected = 0;
  for (int64_t i = 0; i < pairs; ++i) {
    expected += (i < 20 ? 2 : 1) * Rdp(pair(i).first, pair(i).second, DefaultOrders()[k]);
  }
  CHECK(accountant.rdp()[k] == Approx(expected).epsilon(1e-10));
}

TEST_CASE("An accountant with nothing of cost reports epsilon 0", "[dp]") {
  RdpAccountant accountant;
  absl::StatusOr<EpsilonAtOrder> empty = accountant.GetEpsilon(1e-5);
  REQUIRE(empty.ok());
  CHECK(empty->epsilon == 0);
  accountant.AddSteps(0.0, 1.0, 100);
  accountant.AddSteps(0.5, kInf, 100);
  accountant.AddSteps(0.5, 1.0, 0);
  absl::StatusOr<EpsilonAtOrder> free = accountant.GetEpsilon(1e-5);
  REQUIRE(free.ok());
  CHECK(free->epsilon == 0);
  CHECK(accountant.steps() == 200);
  accountant.AddSteps(0.01, 1.1, 1000);
  absl::StatusOr<EpsilonAtOrder> paid = accountant.GetEpsilon(1e-5);
  REQUIRE(paid.ok());
  CHECK(paid->epsilon == Approx(Epsilon(0.01, 1.1, 1000)).epsilon(1e-12));
}

TEST_CASE("An invalid AddSteps is remembered and returned by GetEpsilon", "[dp]") {
  RdpAccountant accountant;
  accountant.AddSteps(0.01, 1.1, 10);
  const std::vector<double> before = accountant.rdp();
  SECTION("sample rate") {
    accountant.AddSteps(1.5, 1.1, 10);
    RequireInvalid(accountant.GetEpsilon(1e-5).status(), {"sample rate", "1.5"});
  }
  SECTION("noise multiplier") {
    accountant.AddSteps(0.01, -1, 10);
    RequireInvalid(accountant.GetEpsilon(1e-5).status(), {"noise multiplier", "-1"});
  }
  SECTION("steps") {
    accountant.AddSteps(0.01, 1.1, -3);
    RequireInvalid(accountant.GetEpsilon(1e-5).status(), {"steps", "-3"});
  }
  CHECK(accountant.rdp() == before);
  // Later valid steps do not clear the error.
  accountant.AddSteps(0.01, 1.1, 10);
  CHECK(accountant.GetEpsilon(1e-5).status().code() == absl::StatusCode::kInvalidArgument);
}

// --- Argument checks ------------------------------------------------------------------------

TEST_CASE("ComputeEpsilon names each invalid argument", "[dp]") {
  for (double q : {0.0, -0.1, 1.5, kNaN, kInf}) {
    INFO("q " << q);
    RequireInvalid(ComputeEpsilon(q, 1.1, 100, 1e-5).status(), {"sample rate", "(0, 1]"});
  }
  for (double sigma : {0.0, -1.0, kInf, kNaN}) {
    INFO("sigma " << sigma);
    RequireInvalid(ComputeEpsilon(0.01, sigma, 100, 1e-5).status(), {"noise multiplier"});
  }
  for (int64_t steps : {0, -5}) {
    INFO("steps " << steps);
    RequireInvalid(ComputeEpsilon(0.01, 1.1, steps, 1e-5).status(), {"steps", "at least 1"});
  }
  for (double delta : {0.0, 1.0, -1e-5, 2.0, kNaN}) {
    INFO("delta " << delta);
    RequireInvalid(ComputeEpsilon(0.01, 1.1, 100, delta).status(), {"delta", "(0, 1)"});
  }
  RdpAccountant accountant;
  RequireInvalid(accountant.GetEpsilon(0).status(), {"delta"});
}

TEST_CASE("SampledGaussianRdp and RdpCalculator name invalid arguments", "[dp]") {
  RequireInvalid(SampledGaussianRdp(0.01, 1.1, 1.0).status(), {"order", "1"});
  RequireInvalid(SampledGaussianRdp(0.01, 1.1, kInf).status(), {"order"});
  RequireInvalid(SampledGaussianRdp(0.01, 1.1, kNaN).status(), {"order"});
  RequireInvalid(SampledGaussianRdp(1.01, 1.1, 2.0).status(), {"sample rate"});
  RequireInvalid(SampledGaussianRdp(-1, 1.1, 2.0).status(), {"sample rate"});
  RequireInvalid(SampledGaussianRdp(0.01, 0, 2.0).status(), {"noise multiplier"});
  RequireInvalid(SampledGaussianRdp(0.01, kNaN, 2.0).status(), {"noise multiplier"});
  RequireInvalid(RdpCalculator::Create({2.0, 0.5}).status(), {"order", "0.5"});
}

// --- Calibration ----------------------------------------------------------------------------

TEST_CASE("CalibrateNoise returns the smallest sigma meeting the target", "[dp]") {
  const auto [target, q, steps, delta] =
      GENERATE(table<double, double, int64_t, double>({{1.0, 0.01, 1000, 1e-5},
                                                       {1.7118, 0.01, 1000, 1e-5},
                                                       {8.0, 0.05, 5000, 1e-6},
                                                       {0.5, 0.001, 100000, 1e-5},
                                                       {30.0, 0.1, 50, 1e-5},
                                                       {3.0, 1.0, 10, 1e-5}}));
  INFO("target " << target << " q " << q << " steps " << steps << " delta " << delta);
  absl::StatusOr<Calibration> calibration = CalibrateNoise(target, q, steps, delta);
  INFO(calibration.status().ToString());
  REQUIRE(calibration.ok());
  const double sigma = calibration->noise_multiplier;
  CHECK(calibration->epsilon == Epsilon(q, sigma, steps, delta));
  CHECK(calibration->epsilon <= target);
  CHECK(Epsilon(q, sigma * (1 - 1e-4), steps, delta) > target);
}

TEST_CASE("CalibrateNoise inverts ComputeEpsilon", "[dp]") {
  absl::StatusOr<Calibration> calibration = CalibrateNoise(1.7118, 0.01, 1000, 1e-5);
  REQUIRE(calibration.ok());
  CHECK(calibration->noise_multiplier == Approx(1.1).epsilon(1e-4));
}

TEST_CASE("CalibrateNoise refuses targets it cannot meet and invalid arguments", "[dp]") {
  for (double target : {0.0, -1.0, kNaN, kInf}) {
    INFO("target " << target);
    RequireInvalid(CalibrateNoise(target, 0.01, 1000, 1e-5).status(), {"target epsilon"});
  }
  // Below what any amount of noise certifies at this delta with these orders (about 0.1).
  RequireInvalid(CalibrateNoise(0.05, 0.01, 1000, 1e-5).status(),
                 {"target epsilon", "cannot be met"});
  RequireInvalid(CalibrateNoise(1.0, 0.0, 1000, 1e-5).status(), {"sample rate"});
  RequireInvalid(CalibrateNoise(1.0, 0.01, 0, 1e-5).status(), {"steps"});
  RequireInvalid(CalibrateNoise(1.0, 0.01, 1000, 1.0).status(), {"delta"});
}

}  // namespace
}  // namespace cohort::dp
