#ifndef COHORT_COMMON_TENSOR_LAYOUT_H_
#define COHORT_COMMON_TENSOR_LAYOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

// The wire encoding of every model and update is the parameters' float32 values, little-endian,
// concatenated in layout order. This code assumes a little-endian host.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "cohort assumes a little-endian host");

namespace cohort::tensor {

// Name and shape of one parameter tensor.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  int64_t NumValues() const;
};

// The ordered list of a model's parameter tensors; the flat vector of a model is their values
// concatenated in this order.
class ParameterLayout {
 public:
  ParameterLayout() = default;
  explicit ParameterLayout(std::vector<TensorSpec> tensors);

  const std::vector<TensorSpec>& tensors() const { return tensors_; }
  int64_t TotalValues() const { return total_values_; }
  // A stable description such as "fc0.weight[32,30];fc0.bias[32];..." used to check that two
  // parties hold the same architecture.
  std::string Fingerprint() const;

 private:
  std::vector<TensorSpec> tensors_;
  int64_t total_values_ = 0;
};

// Views a float vector as its wire bytes.
inline absl::string_view AsBytes(const std::vector<float>& values) {
  return absl::string_view(reinterpret_cast<const char*>(values.data()),
                           values.size() * sizeof(float));
}

// Returns OK when every value is finite, else InvalidArgument naming the first bad index
// (offset by `first_index`).
absl::Status CheckFinite(const float* values, size_t count, uint64_t first_index = 0);

}  // namespace cohort::tensor

#endif  // COHORT_COMMON_TENSOR_LAYOUT_H_
