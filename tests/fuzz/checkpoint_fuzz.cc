// Fuzzes checkpoint decoding (model::DecodeCheckpoint: a zip archive holding a pickle and raw
// float32 records) against a fixed layout, fc0.weight [2, 3] and fc0.bias [2], the layout of
// tests/data/torch_save_linear_3x2.pt. Decoded values must number the layout's total and
// survive EncodeCheckpoint/DecodeCheckpoint bit for bit.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/model/checkpoint.h"
#include "common/tensor/layout.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* const layout =
      new cohort::tensor::ParameterLayout({{"fc0.weight", {2, 3}}, {"fc0.bias", {2}}});
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<std::vector<float>> values = cohort::model::DecodeCheckpoint(bytes, *layout);
  if (!values.ok()) {
    if (!absl::IsInvalidArgument(values.status())) std::abort();
    return 0;
  }
  if (static_cast<int64_t>(values->size()) != layout->TotalValues()) std::abort();
  absl::StatusOr<std::string> encoded = cohort::model::EncodeCheckpoint(*layout, *values);
  if (!encoded.ok()) std::abort();
  absl::StatusOr<std::vector<float>> again = cohort::model::DecodeCheckpoint(*encoded, *layout);
  if (!again.ok() || again->size() != values->size() ||
      std::memcmp(again->data(), values->data(), values->size() * sizeof(float)) != 0) {
    std::abort();
  }
  return 0;
}
