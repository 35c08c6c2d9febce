#ifndef COHORT_COMMON_DATA_SPLIT_H_
#define COHORT_COMMON_DATA_SPLIT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cohort::data {

// How rows are dealt to sites when a data set is partitioned for a simulation or demo.
struct PartitionScheme {
  enum class Kind { kIid, kLabelSkew, kDirichlet, kQuantitySkew };
  Kind kind = Kind::kIid;
  double alpha = 0.5;  // Dirichlet concentration (kDirichlet only).
};

// Parses "iid", "label-skew", "dirichlet:ALPHA" or "quantity-skew".
absl::StatusOr<PartitionScheme> ParsePartitionScheme(const std::string& text);

// Deals row indices 0..labels.size()-1 to `sites` sites. Deterministic for a given seed.
// label-skew: each class is spread over the sites with weights 1, 3, 5, ... rotated per class,
// so every site sees every class but in different proportions. dirichlet: per-class site
// proportions drawn from Dirichlet(alpha). quantity-skew: same label mix, site sizes drawn
// at random. Every site receives at least one row (InvalidArgument if there are too few).
absl::StatusOr<std::vector<std::vector<int64_t>>> PartitionRows(
    const std::vector<int64_t>& labels, int sites, const PartitionScheme& scheme, uint64_t seed);

// Rows set aside as a central test set before the rest is partitioned (cohortctl data split
// --holdout): per class, round(fraction x class size) rows chosen by a seeded shuffle (at
// least one and not all, for classes of two or more rows). Both lists are ascending.
struct Holdout {
  std::vector<int64_t> kept;
  std::vector<int64_t> held_out;
};
Holdout StratifiedHoldout(const std::vector<int64_t>& labels, double fraction, uint64_t seed);

}  // namespace cohort::data

#endif  // COHORT_COMMON_DATA_SPLIT_H_
