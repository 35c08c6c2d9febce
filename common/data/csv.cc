#include "common/data/csv.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/util/files.h"

namespace cohort::data {

Dataset Dataset::Subset(const std::vector<int64_t>& indices) const {
  Dataset out;
  out.feature_names = feature_names;
  out.shape = shape;
  const int64_t n_cols = cols();
  out.features.reserve(indices.size() * n_cols);
  out.labels.reserve(indices.size());
  for (int64_t row : indices) {
    out.features.insert(out.features.end(), features.begin() + row * n_cols,
                        features.begin() + (row + 1) * n_cols);
    out.labels.push_back(labels[row]);
  }
  return out;
}

absl::StatusOr<Dataset> ParseCsv(const std::string& text, const std::string& source,
                                 const std::string& label_column) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  if (lines.empty() || absl::StripAsciiWhitespace(lines[0]).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": empty file (expected a header row)"));
  }
  std::vector<std::string> header;
  for (absl::string_view name : absl::StrSplit(absl::StripSuffix(lines[0], "\r"), ',')) {
    header.emplace_back(absl::StripAsciiWhitespace(name));
  }
  auto label_it = std::find(header.begin(), header.end(), label_column);
  if (label_it == header.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ":1: no column named '", label_column, "' (the label column) in the header"));
  }
  const size_t label_index = label_it - header.begin();
  Dataset data;
  for (size_t i = 0; i < header.size(); ++i) {
    if (i != label_index) data.feature_names.push_back(header[i]);
  }
  for (size_t line_no = 1; line_no < lines.size(); ++line_no) {
    absl::string_view line = absl::StripSuffix(lines[line_no], "\r");
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    std::vector<absl::string_view> cells = absl::StrSplit(line, ',');
    if (cells.size() != header.size()) {
      return absl::InvalidArgumentError(absl::StrCat(source, ":", line_no + 1, ": expected ",
                                                     header.size(), " cells, found ",
                                                     cells.size()));
    }
    for (size_t i = 0; i < cells.size(); ++i) {
      absl::string_view cell = absl::StripAsciiWhitespace(cells[i]);
      double value = 0;
      if (!absl::SimpleAtod(cell, &value) || !std::isfinite(value)) {
        return absl::InvalidArgumentError(absl::StrCat(source, ":", line_no + 1, ": column '",
                                                       header[i], "': '", cell,
                                                       "' is not a finite number"));
      }
      if (i == label_index) {
        if (value < 0 || value != std::floor(value) || value > 1e6) {
          return absl::InvalidArgumentError(absl::StrCat(
              source, ":", line_no + 1, ": label '", header[i], "' must be a class index "
              "(a non-negative integer), got '", cell, "'"));
        }
        data.labels.push_back(static_cast<int64_t>(value));
      } else {
        // Features are float32: a finite double beyond its range would become infinite.
        const float feature = static_cast<float>(value);
        if (!std::isfinite(feature)) {
          return absl::InvalidArgumentError(absl::StrCat(
              source, ":", line_no + 1, ": column '", header[i], "': '", cell,
              "' is outside the float32 range (magnitude at most 3.4e38)"));
        }
        data.features.push_back(feature);
      }
    }
  }
  if (data.labels.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": no data rows after the header"));
  }
  return data;
}

absl::StatusOr<Dataset> LoadCsv(const std::string& path, const std::string& label_column) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  return ParseCsv(*text, path, label_column);
}

TrainTestSplit SplitTrainTest(const Dataset& all, double test_fraction, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::map<int64_t, std::vector<int64_t>> by_label;
  for (int64_t i = 0; i < all.rows(); ++i) by_label[all.labels[i]].push_back(i);
  std::vector<int64_t> train_rows;
  std::vector<int64_t> test_rows;
  for (auto& [label, rows] : by_label) {
    std::shuffle(rows.begin(), rows.end(), rng);
    size_t n_test = static_cast<size_t>(std::llround(test_fraction * rows.size()));
    if (rows.size() >= 2) n_test = std::clamp<size_t>(n_test, 1, rows.size() - 1);
    test_rows.insert(test_rows.end(), rows.begin(), rows.begin() + n_test);
    train_rows.insert(train_rows.end(), rows.begin() + n_test, rows.end());
  }
  std::shuffle(train_rows.begin(), train_rows.end(), rng);
  std::sort(test_rows.begin(), test_rows.end());
  return TrainTestSplit{all.Subset(train_rows), all.Subset(test_rows)};
}

Standardizer Standardizer::Fit(const Dataset& train) {
  Standardizer s;
  const int64_t cols = train.cols();
  s.mean_.assign(cols, 0.0);
  s.scale_.assign(cols, 1.0);
  if (train.rows() == 0) return s;
  // Per-class sums, so that the centre and scale do not depend on the site's label mix.
  std::map<int64_t, std::vector<double>> sums;
  std::map<int64_t, int64_t> counts;
  for (int64_t r = 0; r < train.rows(); ++r) {
    std::vector<double>& sum = sums[train.labels[r]];
    sum.resize(cols, 0.0);
    for (int64_t c = 0; c < cols; ++c) sum[c] += train.features[r * cols + c];
    counts[train.labels[r]]++;
  }
  std::map<int64_t, std::vector<double>> class_means;
  for (auto& [label, sum] : sums) {
    for (double& v : sum) v /= counts[label];
    class_means[label] = sum;
    for (int64_t c = 0; c < cols; ++c) s.mean_[c] += sum[c] / sums.size();
  }
  // Pooled within-class variance, averaged over classes with equal weight.
  std::map<int64_t, std::vector<double>> class_vars;
  for (int64_t r = 0; r < train.rows(); ++r) {
    std::vector<double>& var = class_vars[train.labels[r]];
    var.resize(cols, 0.0);
    const std::vector<double>& mean = class_means[train.labels[r]];
    for (int64_t c = 0; c < cols; ++c) {
      double d = train.features[r * cols + c] - mean[c];
      var[c] += d * d;
    }
  }
  std::vector<double> var(cols, 0.0);
  for (auto& [label, v] : class_vars) {
    for (int64_t c = 0; c < cols; ++c) var[c] += v[c] / counts[label] / class_vars.size();
  }
  for (int64_t c = 0; c < cols; ++c) {
    double sd = std::sqrt(var[c]);
    s.scale_[c] = sd > 1e-12 ? sd : 1.0;
  }
  return s;
}

void Standardizer::Apply(Dataset* data) const {
  const int64_t cols = data->cols();
  for (int64_t r = 0; r < data->rows(); ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      float& v = data->features[r * cols + c];
      v = static_cast<float>((v - mean_[c]) / scale_[c]);
    }
  }
}

}  // namespace cohort::data
