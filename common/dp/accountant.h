#ifndef COHORT_COMMON_DP_ACCOUNTANT_H_
#define COHORT_COMMON_DP_ACCOUNTANT_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cohort::dp {

// An (epsilon, delta)-DP guarantee together with the RDP order that gave it.
struct EpsilonAtOrder {
  double epsilon = 0;
  double order = 0;  // 0 when nothing with a privacy cost has been composed
};

// Argument checks shared by the accountant, the calibration and cohortctl. Each returns
// InvalidArgument naming the parameter and the offending value.
absl::Status CheckSampleRate(double q);           // q in (0, 1]
absl::Status CheckNoiseMultiplier(double sigma);  // finite sigma > 0
absl::Status CheckSteps(int64_t steps);           // steps >= 1
absl::Status CheckDelta(double delta);            // delta in (0, 1)

// The epsilon certified at `delta` by an RDP guarantee `rdp` at order `alpha`, with the
// conversion of Balle et al. 2020 ("Hypothesis testing interpretations and Rényi
// differential privacy", also used by Opacus):
//   eps = rdp - (log(delta) + log(alpha)) / (alpha - 1) + log((alpha - 1) / alpha).
double RdpToEpsilon(double rdp, double alpha, double delta);

// Composes Sampled Gaussian Mechanism steps by adding their RDP order by order (RDP
// composes additively at every order, so steps may differ in q and sigma), then converts
// the total to (epsilon, delta) at the best order.
//
// The per-step RDP vector of each (q, sigma) pair is computed once and cached, so AddSteps
// for a pair seen before costs one pass over the orders. The cache is cleared when it
// holds kMaxCachedPairs pairs, which bounds its memory.
//
// Not thread-safe; copyable.
class RdpAccountant {
 public:
  static constexpr size_t kMaxCachedPairs = 4096;

  // Tracks DefaultOrders().
  RdpAccountant();

  // Adds `steps` steps with sample rate `q` and noise multiplier `sigma`. Besides the
  // ranges of ComputeEpsilon it accepts the cost-free cases q == 0, sigma == +inf and
  // steps == 0. An invalid argument leaves the totals unchanged and is remembered: every
  // later GetEpsilon returns the first such error.
  void AddSteps(double q, double sigma, int64_t steps);

  // The smallest epsilon over the orders at `delta` in (0, 1), and its order. Epsilon is 0
  // when nothing with a privacy cost has been composed.
  absl::StatusOr<EpsilonAtOrder> GetEpsilon(double delta) const;

  const std::vector<double>& orders() const { return orders_; }
  // The composed RDP at each of orders().
  const std::vector<double>& rdp() const { return rdp_; }
  // Steps added so far, including cost-free ones.
  int64_t steps() const { return steps_; }

 private:
  const std::vector<double>& PerStepRdp(double q, double sigma);

  std::vector<double> orders_;
  std::vector<double> rdp_;  // invariant: same size as orders_
  int64_t steps_ = 0;
  bool has_cost_ = false;  // some step with q > 0 and finite sigma was added
  absl::Status status_;    // first invalid AddSteps call
  absl::flat_hash_map<std::pair<double, double>, std::vector<double>> cache_;
};

// Epsilon at `delta` after `steps` identical steps: q in (0, 1], finite sigma > 0,
// steps >= 1, delta in (0, 1); InvalidArgument naming the parameter otherwise.
absl::StatusOr<EpsilonAtOrder> ComputeEpsilon(double q, double sigma, int64_t steps, double delta);

}  // namespace cohort::dp

#endif  // COHORT_COMMON_DP_ACCOUNTANT_H_
