#ifndef COHORT_COMMON_DP_RDP_H_
#define COHORT_COMMON_DP_RDP_H_

// Rényi differential privacy (RDP) of the Sampled Gaussian Mechanism (SGM): each example is
// included with probability q and the sum of the (clipped, sensitivity 1) contributions gets
// N(0, sigma^2) noise. Mironov, Talwar and Zhang, "Rényi Differential Privacy of the Sampled
// Gaussian Mechanism" (2019) show that the RDP at order alpha is
//
//   eps(alpha) = log(A_alpha) / (alpha - 1),
//   A_alpha    = E_{z ~ N(0, sigma^2)} [((1 - q) + q exp((2z - 1) / (2 sigma^2)))^alpha],
//
// i.e. the Rényi divergence of the mixture (1 - q) N(0, sigma^2) + q N(1, sigma^2) from
// N(0, sigma^2) (the larger of the two directions). A_alpha is computed in log space: by the
// binomial expansion for integer orders, by the two-series expansion of section 3.3 of the
// paper for fractional orders.

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace cohort::dp {

// The orders tracked by default: 1.1, 1.2, ..., 10.9 (1 + x / 10 for x = 1..99), then
// 12, 13, ..., 63. The same set as Opacus's RDP accountant, so results are comparable.
const std::vector<double>& DefaultOrders();

// Computes the per-step RDP of the SGM at a fixed list of orders. Everything that depends
// only on the orders (binomial coefficients, where the series are cut) is prepared once by
// Create, so each Compute costs only the terms that depend on (q, sigma); within one
// Compute the terms shared by several orders are evaluated once. Immutable after Create:
// Compute may be called concurrently. Cheap to copy (the tables are shared).
class RdpCalculator {
 public:
  // Orders must be finite and in (1, 10000]; InvalidArgument otherwise.
  static absl::StatusOr<RdpCalculator> Create(absl::Span<const double> orders);

  // A calculator for DefaultOrders(), built once per process.
  static const RdpCalculator& Default();

  // RDP at each of orders() of one SGM step with sample rate `q` and noise multiplier
  // `sigma`. Accepts q in [0, 1] (q == 0 costs nothing, q == 1 is the plain Gaussian
  // mechanism: alpha / (2 sigma^2)) and sigma in (0, +inf] (+inf costs nothing);
  // InvalidArgument otherwise.
  absl::StatusOr<std::vector<double>> Compute(double q, double sigma) const;

  const std::vector<double>& orders() const { return orders_; }

  struct Tables;  // defined in rdp.cc

 private:
  RdpCalculator(std::vector<double> orders, std::shared_ptr<const Tables> tables)
      : orders_(std::move(orders)), tables_(std::move(tables)) {}

  std::vector<double> orders_;
  std::shared_ptr<const Tables> tables_;
};

// RDP at order `alpha` of one SGM step; the arguments as for RdpCalculator.
absl::StatusOr<double> SampledGaussianRdp(double q, double sigma, double alpha);

// The same at each of `orders` (RdpCalculator::Create(orders)->Compute(q, sigma)).
absl::StatusOr<std::vector<double>> SampledGaussianRdp(double q, double sigma,
                                                       absl::Span<const double> orders);

// The two code paths, exposed so tests can compare them. Neither validates its arguments.
namespace internal {

// Exact binomial expansion. Requires 0 < q < 1, 0 < sigma < inf, alpha >= 2.
double IntegerOrderRdp(double q, double sigma, int64_t alpha);

// Two-series expansion (section 3.3). Requires 0 < q < 1, 0 < sigma < inf, alpha > 1;
// integer alpha is accepted (its series are finite).
double FractionalOrderRdp(double q, double sigma, double alpha);

}  // namespace internal

}  // namespace cohort::dp

#endif  // COHORT_COMMON_DP_RDP_H_
