// bench_accountant: milliseconds to compose 10,000 heterogeneous Sampled Gaussian steps in a
// fresh RdpAccountant (cold cache) and convert to epsilon once, median of several runs.
//
// Scenarios: the 10,000 steps interleave P distinct (q, sigma) pairs (10,000 / P steps each)
// for P = 1, 100 (the target: under 10 ms) and 10,000 (every step its own pair: the cost is
// then P times the per-pair RDP computation, also printed).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/strings/str_format.h"
#include "bench/stats.h"
#include "common/dp/accountant.h"
#include "common/dp/rdp.h"

namespace cohort::bench {
namespace {

constexpr int64_t kSteps = 10000;

// The i-th of `count` pairs: q log-spaced over [0.001, 0.05], sigma over [0.6, 3.0],
// interleaved so that neighbouring pairs differ in both.
std::pair<double, double> Pair(int64_t i, int64_t count) {
  const double u = count > 1 ? static_cast<double>(i) / static_cast<double>(count - 1) : 0.5;
  const double v = count > 1 ? static_cast<double>((i * 37) % count) / (count - 1) : 0.5;
  return {0.001 * std::pow(50.0, u), 0.6 + 2.4 * v};
}

template <typename F>
double MedianMillis(int runs, F f) {
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
    const auto start = std::chrono::steady_clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  return Median(ms);
}

}  // namespace
}  // namespace cohort::bench

int main(int argc, char** argv) {
  using namespace cohort;  // NOLINT: a benchmark driver
  CLI::App app{"bench_accountant: time to compose 10,000 heterogeneous DP-SGD steps"};
  int runs = 9;
  app.add_option("--runs", runs, "Runs per scenario (the median is printed)")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  // Built once per process; not part of any timing below.
  (void)dp::RdpCalculator::Default();

  std::printf("%-34s %12s %12s\n", "scenario (10,000 steps)", "median ms", "epsilon");
  for (int64_t pairs : {int64_t{1}, int64_t{100}, bench::kSteps}) {
    double epsilon = 0;
    const double ms = bench::MedianMillis(pairs == bench::kSteps ? std::min(runs, 3) : runs, [&] {
      dp::RdpAccountant accountant;
      for (int64_t step = 0; step < bench::kSteps; ++step) {
        const auto [q, sigma] = bench::Pair(step % pairs, pairs);
        accountant.AddSteps(q, sigma, 1);
      }
      epsilon = accountant.GetEpsilon(1e-5)->epsilon;
    });
    std::printf(
        "%-34s %12.3f %12.6f\n",
        absl::StrFormat("%d distinct pairs x %d steps", pairs, bench::kSteps / pairs).c_str(), ms,
        epsilon);
  }

  // The per-pair cost that bounds the all-distinct scenario: one RDP vector (151 orders).
  constexpr int kPairs = 200;
  const double per_pair_ms = bench::MedianMillis(runs, [&] {
    for (int i = 0; i < kPairs; ++i) {
      const auto [q, sigma] = bench::Pair(i, kPairs);
      (void)dp::RdpCalculator::Default().Compute(q, sigma);
    }
  });
  std::printf("%-34s %12.1f us\n", "RDP of one (q, sigma), 151 orders",
              1000 * per_pair_ms / kPairs);

  // Reference values.
  for (int64_t steps : {1000, 10000}) {
    absl::StatusOr<dp::EpsilonAtOrder> e = dp::ComputeEpsilon(0.01, 1.1, steps, 1e-5);
    std::printf("reference q=0.01 sigma=1.1 steps=%-6ld delta=1e-5: epsilon %.8f at order %g\n",
                static_cast<long>(steps), e->epsilon, e->order);
  }
  return 0;
}
