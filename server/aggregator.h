#ifndef COHORT_SERVER_AGGREGATOR_H_
#define COHORT_SERVER_AGGREGATOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "common/config/coordinator_config.h"
#include "server/exact_weighted_sum.h"

namespace cohort::server {

// Combines the validated deltas of one round's sites into one aggregated delta, which the
// server optimizer then folds into the global model. The round holds it under its lock; the
// caller guarantees that every delta has num_values() finite values and weight > 0, and adds
// an upload only once it was received whole (see Round).
//
// The aggregated delta and total_weight() depend only on the set of deltas and weights
// added, never on the order of the Add calls (the order in which uploads arrive), so that a
// seeded run repeats bit for bit.
class Aggregator {
 public:
  explicit Aggregator(size_t num_values) : num_values_(num_values) {}
  virtual ~Aggregator() = default;

  // Folds one validated delta in. An error (InvalidArgument when the aggregator cannot
  // represent the delta) leaves the aggregate as it was.
  virtual absl::Status Add(double weight, const std::vector<float>& delta) = 0;
  // The aggregated delta; count() must be > 0.
  virtual std::vector<float> Delta() const = 0;
  // Frees the model-sized buffers once the delta was taken (count and weight stay readable).
  virtual void Release() = 0;

  // base + Delta(), for tests.
  std::vector<float> Apply(const std::vector<float>& base) const;

  size_t num_values() const { return num_values_; }
  // The sum of the weights added, in ascending order (so independent of the order of Adds).
  double total_weight() const { return total_weight_; }
  int count() const { return static_cast<int>(weights_.size()); }

 protected:
  // Records an added delta's weight.
  void Count(double weight);

 private:
  size_t num_values_;
  std::vector<double> weights_;  // ascending
  double total_weight_ = 0;
};

// Weighted FedAvg over site deltas, kept as a running sum: memory is one vector of the
// model's size, whatever the number of sites (no per-site copy is held).
// delta = sum_i(w_i * delta_i) / sum_i(w_i).
// The sum is exact on a fixed-point grid (ExactWeightedSum), so it does not depend on the
// order in which uploads arrive: 8 bytes per value (16 once some |sum_i(w_i * delta_i)|
// exceeds about 8.4e6), against 4 for a float32 sum, whose result depended on that order.
// The error of the delta is below 5e-13 absolute (with example-count weights), plus float64
// rounding, far below the noise of SGD. Add refuses a delta with |w * value| >= 2^64.
class FedAvgAggregator final : public Aggregator {
 public:
  // The sum is allocated by the first Add, so an idle round costs no model-sized memory.
  explicit FedAvgAggregator(size_t num_values) : Aggregator(num_values), sum_(num_values) {}

  absl::Status Add(double weight, const std::vector<float>& delta) override;
  std::vector<float> Delta() const override;
  void Release() override { sum_.Release(); }

 private:
  ExactWeightedSum sum_;
};

// Robust statistics per coordinate over the sites' deltas, unweighted (every site counts
// once, whatever its example count: weighting by a count the site reports itself would let
// one site buy the majority):
//   kMedian:       the median (the mean of the two middle values for an even count);
//   kTrimmedMean:  the mean after dropping floor(trim_fraction * n) values from each end.
// Needs every delta at once, so memory is O(sites x model): each accepted upload is kept
// (float32) until Release(). Only for rounds without secure aggregation, which hides the
// individual deltas; the config validator refuses the combination.
// Both statistics depend only on each coordinate's multiset of values, not on the order of
// the sites: order statistics pick a value, and the trimmed mean sums the sorted values. The
// only distinct floats that compare equal are -0 and +0, so a zero result is always +0.
class RobustAggregator final : public Aggregator {
 public:
  enum class Statistic { kMedian, kTrimmedMean };

  // trim_fraction in [0, 0.5) (kTrimmedMean only).
  RobustAggregator(size_t num_values, Statistic statistic, double trim_fraction = 0);

  absl::Status Add(double weight, const std::vector<float>& delta) override;
  std::vector<float> Delta() const override;
  void Release() override { std::vector<std::vector<float>>().swap(deltas_); }

 private:
  Statistic statistic_;
  double trim_fraction_;
  std::vector<std::vector<float>> deltas_;
};

// The aggregator `config.strategy` asks for: RobustAggregator for coordinate_median and
// trimmed_mean, FedAvgAggregator for every other strategy.
std::unique_ptr<Aggregator> MakeAggregator(const config::AggregationConfig& config,
                                           size_t num_values);

}  // namespace cohort::server

#endif  // COHORT_SERVER_AGGREGATOR_H_
