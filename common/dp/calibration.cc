#include "common/dp/calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/dp/accountant.h"
#include "common/dp/rdp.h"

namespace cohort::dp {
namespace {

constexpr double kMinSigma = 1e-3;
constexpr double kMaxSigma = 1e6;
// Bisection stops when hi / lo <= 1 + 1e-5, ten times tighter than the promised 1e-4, so
// that sigma * (1 - 1e-4) < lo and therefore misses the target.
constexpr double kBisectionRatio = 1 + 1e-5;

// The infimum of epsilon over all sigma: the conversion of a zero RDP, at the best order.
double EpsilonFloor(double delta) {
  double floor = std::numeric_limits<double>::infinity();
  for (double alpha : DefaultOrders()) floor = std::min(floor, RdpToEpsilon(0, alpha, delta));
  return std::max(floor, 0.0);
}

}  // namespace

absl::StatusOr<Calibration> CalibrateNoise(double target_epsilon, double q, int64_t steps,
                                           double delta) {
  if (!(target_epsilon > 0) || !std::isfinite(target_epsilon)) {
    return absl::InvalidArgumentError(
        absl::StrCat("target epsilon must be positive and finite; got ", target_epsilon));
  }
  for (const absl::Status& s : {CheckSampleRate(q), CheckSteps(steps), CheckDelta(delta)}) {
    if (!s.ok()) return s;
  }
  const double floor = EpsilonFloor(delta);
  if (target_epsilon <= floor) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target epsilon ", target_epsilon, " cannot be met at delta ", delta,
        ": even unbounded noise only gives epsilon ", floor, " with the RDP orders tracked"));
  }

  // All arguments are valid and sigma stays in [kMinSigma, kMaxSigma], so this cannot fail.
  auto epsilon = [&](double sigma) { return ComputeEpsilon(q, sigma, steps, delta)->epsilon; };

  // Bracket: epsilon(lo) > target >= epsilon(hi) = eps_hi.
  double lo = 1;
  double hi = 1;
  double eps_hi = epsilon(1);
  if (eps_hi <= target_epsilon) {
    for (lo = 0.5;; lo /= 2) {
      if (lo < kMinSigma) {
        return absl::OutOfRangeError(absl::StrCat("target epsilon ", target_epsilon,
                                                  " is met by every noise multiplier "
                                                  "down to ",
                                                  kMinSigma, " (sample rate ", q, ", ", steps,
                                                  " steps)"));
      }
      const double e = epsilon(lo);
      if (e > target_epsilon) break;
      hi = lo;
      eps_hi = e;
    }
  } else {
    for (hi = 2;; hi *= 2) {
      if (hi > kMaxSigma) {
        return absl::OutOfRangeError(absl::StrCat("target epsilon ", target_epsilon,
                                                  " needs a noise multiplier above ", kMaxSigma));
      }
      eps_hi = epsilon(hi);
      if (eps_hi <= target_epsilon) break;
      lo = hi;
    }
  }

  // Bisect in log space, keeping the bracket invariant.
  while (hi > lo * kBisectionRatio) {
    const double mid = std::sqrt(lo * hi);
    const double e = epsilon(mid);
    if (e <= target_epsilon) {
      hi = mid;
      eps_hi = e;
    } else {
      lo = mid;
    }
  }
  return Calibration{hi, eps_hi};
}

}  // namespace cohort::dp
