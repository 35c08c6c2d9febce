#ifndef COHORT_COMMON_DP_CALIBRATION_H_
#define COHORT_COMMON_DP_CALIBRATION_H_

#include <cstdint>

#include "absl/status/statusor.h"

namespace cohort::dp {

// The result of CalibrateNoise.
struct Calibration {
  double noise_multiplier = 0;
  double epsilon = 0;  // epsilon reached with noise_multiplier, <= the target
};

// The smallest noise multiplier sigma (to 1e-4 relative: sigma * (1 - 1e-4) misses the
// target) such that `steps` steps at sample rate `q` are (epsilon, delta)-DP with
// epsilon <= `target_epsilon`, by the accountant of accountant.h. Epsilon decreases with
// sigma, so this brackets sigma by doubling / halving from 1 and then bisects.
//
// InvalidArgument for q, steps or delta out of range (see ComputeEpsilon), for a target
// that is not positive and finite, and for a target at or below the floor that no sigma
// reaches (even with no RDP cost the conversion to (epsilon, delta) leaves about
// 0.1 at delta = 1e-5 over the default orders). OutOfRange when the target needs a sigma
// above 1e6, or every sigma down to 1e-3 already meets it.
absl::StatusOr<Calibration> CalibrateNoise(double target_epsilon, double q, int64_t steps,
                                           double delta);

}  // namespace cohort::dp

#endif  // COHORT_COMMON_DP_CALIBRATION_H_
