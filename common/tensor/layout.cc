#include "common/tensor/layout.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cohort::tensor {

int64_t TensorSpec::NumValues() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

ParameterLayout::ParameterLayout(std::vector<TensorSpec> tensors) : tensors_(std::move(tensors)) {
  for (const TensorSpec& t : tensors_) total_values_ += t.NumValues();
}

std::string ParameterLayout::Fingerprint() const {
  std::vector<std::string> parts;
  parts.reserve(tensors_.size());
  for (const TensorSpec& t : tensors_) {
    parts.push_back(absl::StrCat(t.name, "[", absl::StrJoin(t.shape, ","), "]"));
  }
  return absl::StrJoin(parts, ";");
}

absl::Status CheckFinite(const float* values, size_t count, uint64_t first_index) {
  for (size_t i = 0; i < count; ++i) {
    if (!std::isfinite(values[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "value ", first_index + i, " is ", std::isnan(values[i]) ? "NaN" : "infinite"));
    }
  }
  return absl::OkStatus();
}

}  // namespace cohort::tensor
