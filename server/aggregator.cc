#include "server/aggregator.h"

namespace cohort::server {

void FedAvgAggregator::Add(double weight, const std::vector<float>& delta) {
  const size_t n = num_values_;
  if (sum_.empty()) sum_.assign(n, 0.0f);
  float* sum = sum_.data();
  const float* d = delta.data();
  for (size_t i = 0; i < n; ++i) {
    sum[i] = static_cast<float>(sum[i] + weight * static_cast<double>(d[i]));
  }
  total_weight_ += weight;
  ++count_;
}

std::vector<float> FedAvgAggregator::Apply(const std::vector<float>& base) const {
  std::vector<float> out(base.size());
  const double scale = 1.0 / total_weight_;
  for (size_t i = 0; i < base.size(); ++i) {
    const double sum = sum_.empty() ? 0.0 : static_cast<double>(sum_[i]);
    out[i] = static_cast<float>(static_cast<double>(base[i]) + sum * scale);
  }
  return out;
}

}  // namespace cohort::server
