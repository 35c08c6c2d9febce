#include "common/data/binary_metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace cohort::data {

std::optional<double> BinaryMetrics::precision() const {
  const uint64_t predicted = true_positives + false_positives;
  if (predicted == 0) return std::nullopt;
  return static_cast<double>(true_positives) / static_cast<double>(predicted);
}

std::optional<double> BinaryMetrics::recall() const {
  const uint64_t positives = true_positives + false_negatives;
  if (positives == 0) return std::nullopt;
  return static_cast<double>(true_positives) / static_cast<double>(positives);
}

absl::StatusOr<BinaryMetrics> ComputeBinaryMetrics(absl::Span<const float> scores,
                                                   absl::Span<const int64_t> labels,
                                                   const std::vector<bool>& predicted_positive) {
  const size_t n = scores.size();
  if (labels.size() != n || predicted_positive.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("binary metrics: ", n, " scores, ",
                                                   labels.size(), " labels, ",
                                                   predicted_positive.size(), " decisions"));
  }
  BinaryMetrics metrics;
  uint64_t positives = 0;
  for (size_t i = 0; i < n; ++i) {
    if (labels[i] != 0 && labels[i] != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("binary metrics: label ", labels[i], " at row ", i, " is not 0 or 1"));
    }
    if (!std::isfinite(scores[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("binary metrics: score at row ", i, " is not finite"));
    }
    const bool positive = labels[i] == 1;
    positives += positive ? 1 : 0;
    if (predicted_positive[i]) {
      (positive ? metrics.true_positives : metrics.false_positives)++;
    } else {
      (positive ? metrics.false_negatives : metrics.true_negatives)++;
    }
  }
  const uint64_t negatives = n - positives;
  if (positives == 0 || negatives == 0) return metrics;
  // Rank-sum: AUC = (sum of the positives' ranks - P(P+1)/2) / (P N), ties sharing their
  // average rank (1-based).
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double positive_rank_sum = 0;
  for (size_t begin = 0; begin < n;) {
    size_t end = begin + 1;
    while (end < n && scores[order[end]] == scores[order[begin]]) ++end;
    const double average_rank = (static_cast<double>(begin + 1) + static_cast<double>(end)) / 2;
    for (size_t k = begin; k < end; ++k) {
      if (labels[order[k]] == 1) positive_rank_sum += average_rank;
    }
    begin = end;
  }
  const double p = static_cast<double>(positives);
  metrics.auc = (positive_rank_sum - p * (p + 1) / 2) / (p * static_cast<double>(negatives));
  return metrics;
}

}  // namespace cohort::data
