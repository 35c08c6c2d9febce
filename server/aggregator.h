#ifndef COHORT_SERVER_AGGREGATOR_H_
#define COHORT_SERVER_AGGREGATOR_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cohort::server {

// Weighted FedAvg over site deltas, kept as a running sum: memory is one float32 vector of
// the model's size, whatever the number of sites (no per-site copy is held).
// new_model = base + sum_i(w_i * delta_i) / sum_i(w_i).
// The sum is float32 to keep the coordinator at about three model copies (global, sum, one
// staged upload); each term is computed in float64 before it is added, so the error is that
// of n float32 additions (relative ~n * 6e-8), far below the noise of SGD.
class FedAvgAggregator {
 public:
  // The sum is allocated by the first Add, so an idle round costs no model-sized memory.
  explicit FedAvgAggregator(size_t num_values) : num_values_(num_values) {}

  // Folds one validated delta in. The caller guarantees delta.size() == num_values, every
  // value finite and weight > 0.
  void Add(double weight, const std::vector<float>& delta);
  // The aggregated model; `base` must have num_values entries and count() must be > 0.
  std::vector<float> Apply(const std::vector<float>& base) const;
  // Frees the sum once the aggregated model exists (count and weight stay readable).
  void Release() { std::vector<float>().swap(sum_); }

  size_t num_values() const { return num_values_; }
  double total_weight() const { return total_weight_; }
  int count() const { return count_; }

 private:
  size_t num_values_;
  std::vector<float> sum_;
  double total_weight_ = 0;
  int count_ = 0;
};

}  // namespace cohort::server

#endif  // COHORT_SERVER_AGGREGATOR_H_
