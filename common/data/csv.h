#ifndef COHORT_COMMON_DATA_CSV_H_
#define COHORT_COMMON_DATA_CSV_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cohort::data {

// A numeric table with one integer class label per row. Features are row-major.
struct Dataset {
  std::vector<std::string> feature_names;
  std::vector<float> features;
  std::vector<int64_t> labels;
  // The shape of one row when rows are images ({channels, height, width}, whose product is
  // cols()); empty for tables.
  std::vector<int64_t> shape;

  int64_t rows() const { return static_cast<int64_t>(labels.size()); }
  int64_t cols() const { return static_cast<int64_t>(feature_names.size()); }
  // The rows at `indices`, in that order.
  Dataset Subset(const std::vector<int64_t>& indices) const;
};

// Parses a CSV file with a header row. Every cell must be a number; `label_column` names the
// column holding the class (a non-negative integer). Errors name the file, line and column.
absl::StatusOr<Dataset> ParseCsv(const std::string& text, const std::string& source,
                                 const std::string& label_column);
absl::StatusOr<Dataset> LoadCsv(const std::string& path, const std::string& label_column);

// Held-out split: a seeded shuffle, stratified by label so that small sites keep every class
// in both parts where they can.
struct TrainTestSplit {
  Dataset train;
  Dataset test;
};
TrainTestSplit SplitTrainTest(const Dataset& all, double test_fraction, uint64_t seed);

// Per-feature standardization fitted on the site's own training rows (statistics never
// leave the site). The statistics are class-balanced: the centre is the mean of the
// per-class means and the scale the square root of the within-class variance averaged over
// classes (each class weighted equally).
// Sites with different label mixes (the usual non-IID case between hospitals) then agree on
// the centre and scale, whereas a plain mean would shift with each site's prevalence and
// hide the signal from the shared model. Constant features get a scale of 1.
class Standardizer {
 public:
  static Standardizer Fit(const Dataset& train);
  void Apply(Dataset* data) const;

 private:
  std::vector<double> mean_;
  std::vector<double> scale_;
};

}  // namespace cohort::data

#endif  // COHORT_COMMON_DATA_CSV_H_
