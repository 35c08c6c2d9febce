#include "server/aggregator.h"

namespace cohort::server {

void FedAvgAggregator::Add(double weight, const std::vector<float>& delta) {
  const size_t n = sum_.size();
  double* sum = sum_.data();
  const float* d = delta.data();
  for (size_t i = 0; i < n; ++i) sum[i] += weight * static_cast<double>(d[i]);
  total_weight_ += weight;
  ++count_;
}

std::vector<float> FedAvgAggregator::Apply(const std::vector<float>& base) const {
  std::vector<float> out(base.size());
  const double scale = 1.0 / total_weight_;
  for (size_t i = 0; i < base.size(); ++i) {
    out[i] = static_cast<float>(static_cast<double>(base[i]) + sum_[i] * scale);
  }
  return out;
}

}  // namespace cohort::server
