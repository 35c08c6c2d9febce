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

void Aggregator::Count(double weight) {
  weights_.insert(std::upper_bound(weights_.begin(), weights_.end(), weight), weight);
  // Float addition is not associative: summing in ascending order makes the total a
  // function of the weights alone.
  total_weight_ = 0;
  for (double w : weights_) total_weight_ += w;
}

absl::Status FedAvgAggregator::Add(double weight, const std::vector<float>& delta) {
  if (absl::Status s = sum_.Add(weight, delta); !s.ok()) return s;
  Count(weight);
  return absl::OkStatus();
}

std::vector<float> FedAvgAggregator::Delta() const {
  if (count() == 0) return std::vector<float>(num_values(), 0.0f);
  return sum_.Scaled(1.0 / total_weight());
}

RobustAggregator::RobustAggregator(size_t num_values, Statistic statistic, double trim_fraction)
    : Aggregator(num_values), statistic_(statistic), trim_fraction_(trim_fraction) {}

absl::Status RobustAggregator::Add(double weight, const std::vector<float>& delta) {
  deltas_.push_back(delta);
  Count(weight);
  return absl::OkStatus();
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
      // +0 for -0: which of several equal zeros nth_element picks depends on the order.
      out[i] = median == 0 ? 0.0f : static_cast<float>(median);
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
