#ifndef COHORT_COMMON_DATA_BINARY_METRICS_H_
#define COHORT_COMMON_DATA_BINARY_METRICS_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace cohort::data {

// A binary classifier's figures on one evaluation set: the confusion counts at the decision
// the model makes (the larger logit), and the ROC AUC of its positive-class score.
struct BinaryMetrics {
  uint64_t true_positives = 0;
  uint64_t false_positives = 0;
  uint64_t true_negatives = 0;
  uint64_t false_negatives = 0;
  // Area under the ROC curve (ties count one half); nullopt when the set lacks one of the
  // classes, where it is undefined.
  std::optional<double> auc;

  uint64_t examples() const {
    return true_positives + false_positives + true_negatives + false_negatives;
  }
  // TP / (TP + FP) and TP / (TP + FN); nullopt when the denominator is 0.
  std::optional<double> precision() const;
  std::optional<double> recall() const;
};

// Metrics of positive-class `scores` (any monotone score, e.g. P(y = 1)) against `labels`
// (0 or 1), where `predicted_positive[i]` is the model's decision. AUC by the rank-sum
// (Mann-Whitney) statistic, O(n log n). InvalidArgument for mismatched sizes, a label other
// than 0/1, or a non-finite score.
absl::StatusOr<BinaryMetrics> ComputeBinaryMetrics(absl::Span<const float> scores,
                                                   absl::Span<const int64_t> labels,
                                                   const std::vector<bool>& predicted_positive);

}  // namespace cohort::data

#endif  // COHORT_COMMON_DATA_BINARY_METRICS_H_
