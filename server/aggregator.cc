#include "server/aggregator.h"

#include <algorithm>
#include <cmath>

namespace cohort::server {

std::vector<float> Aggregator::Apply(const std::vector<float>& base) const {
  std::vector<float> out = Delta();
  for (size_t i = 0; i < base.size(); ++i) {
    out[i] = static_cast<float>(static_cast<double>(base[i]) + out[i]);
  }
  return out;
}

void FedAvgAggregator::Add(double weight, const std::vector<float>& delta) {
  const size_t n = num_values();
  if (sum_.empty()) sum_.assign(n, 0.0f);
  float* sum = sum_.data();
  const float* d = delta.data();
  for (size_t i = 0; i < n; ++i) {
    sum[i] = static_cast<float>(sum[i] + weight * static_cast<double>(d[i]));
  }
  Count(weight);
}

std::vector<float> FedAvgAggregator::Delta() const {
  std::vector<float> out(num_values(), 0.0f);
  if (sum_.empty()) return out;
  const double scale = 1.0 / total_weight();
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<float>(static_cast<double>(sum_[i]) * scale);
  }
  return out;
}

RobustAggregator::RobustAggregator(size_t num_values, Statistic statistic, double trim_fraction)
    : Aggregator(num_values), statistic_(statistic), trim_fraction_(trim_fraction) {}

void RobustAggregator::Add(double weight, const std::vector<float>& delta) {
  deltas_.push_back(delta);
  Count(weight);
}

std::vector<float> RobustAggregator::Delta() const {
  const size_t n = num_values();
  const size_t sites = deltas_.size();
  std::vector<float> out(n, 0.0f);
  if (sites == 0) return out;
  // Values dropped from each end; trim_fraction < 0.5 leaves at least one.
  const size_t trim = statistic_ == Statistic::kTrimmedMean
                          ? static_cast<size_t>(std::floor(trim_fraction_ * sites))
                          : 0;
  std::vector<float> column(sites);
  for (size_t i = 0; i < n; ++i) {
    for (size_t s = 0; s < sites; ++s) column[s] = deltas_[s][i];
    if (statistic_ == Statistic::kMedian) {
      const size_t mid = sites / 2;
      std::nth_element(column.begin(), column.begin() + mid, column.end());
      double median = column[mid];
      if (sites % 2 == 0) {
        // The lower middle value is the largest of the lower half.
        const float lower = *std::max_element(column.begin(), column.begin() + mid);
        median = (static_cast<double>(lower) + median) / 2;
      }
      out[i] = static_cast<float>(median);
    } else {
      std::sort(column.begin(), column.end());
      double sum = 0;
      for (size_t s = trim; s < sites - trim; ++s) sum += column[s];
      out[i] = static_cast<float>(sum / static_cast<double>(sites - 2 * trim));
    }
  }
  return out;
}

std::unique_ptr<Aggregator> MakeAggregator(const config::AggregationConfig& config,
                                           size_t num_values) {
  if (config.strategy == "coordinate_median") {
    return std::make_unique<RobustAggregator>(num_values, RobustAggregator::Statistic::kMedian);
  }
  if (config.strategy == "trimmed_mean") {
    return std::make_unique<RobustAggregator>(
        num_values, RobustAggregator::Statistic::kTrimmedMean, config.trim_fraction);
  }
  return std::make_unique<FedAvgAggregator>(num_values);
}

}  // namespace cohort::server
