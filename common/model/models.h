#ifndef COHORT_COMMON_MODEL_MODELS_H_
#define COHORT_COMMON_MODEL_MODELS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config/coordinator_config.h"
#include "common/tensor/layout.h"

// LibTorch-free interface to the built-in models, so that callers compile fast.
namespace cohort::model {

// Parameter names and shapes of a built-in model: Linear layers fc0, fc1, ... with
// weight [out, in] and bias [out], in that order.
tensor::ParameterLayout LayoutFor(const config::ModelSpec& spec);

// Freshly initialised parameters (LibTorch's default Linear initialisation) for `spec`,
// flattened in layout order. Deterministic for a given seed.
std::vector<float> InitialParameters(const config::ModelSpec& spec, uint64_t seed);

// Writes a checkpoint that Python's torch.load reads as {parameter name: tensor}
// (a LibTorch pickle), atomically: temp file, fsync, rename.
absl::Status WriteCheckpoint(const std::string& path, const tensor::ParameterLayout& layout,
                             const std::vector<float>& values);

// Reads a checkpoint written by WriteCheckpoint and checks it matches `layout`.
absl::StatusOr<std::vector<float>> ReadCheckpoint(const std::string& path,
                                                  const tensor::ParameterLayout& layout);

}  // namespace cohort::model

#endif  // COHORT_COMMON_MODEL_MODELS_H_
