#ifndef COHORT_SERVER_AGGREGATOR_H_
#define COHORT_SERVER_AGGREGATOR_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cohort::server {

// Weighted FedAvg over site deltas, kept as a running sum: memory is one float64 vector of
// the model's size, whatever the number of sites (no per-site copy is held).
// new_model = base + sum_i(w_i * delta_i) / sum_i(w_i).
class FedAvgAggregator {
 public:
  explicit FedAvgAggregator(size_t num_values) : sum_(num_values, 0.0) {}

  // Folds one validated delta in. The caller guarantees delta.size() == num_values, every
  // value finite and weight > 0.
  void Add(double weight, const std::vector<float>& delta);
  // The aggregated model; `base` must have num_values entries and count() must be > 0.
  std::vector<float> Apply(const std::vector<float>& base) const;

  size_t num_values() const { return sum_.size(); }
  double total_weight() const { return total_weight_; }
  int count() const { return count_; }

 private:
  std::vector<double> sum_;
  double total_weight_ = 0;
  int count_ = 0;
};

}  // namespace cohort::server

#endif  // COHORT_SERVER_AGGREGATOR_H_
