#ifndef COHORT_COMMON_MODEL_TORCH_MODEL_H_
#define COHORT_COMMON_MODEL_TORCH_MODEL_H_

// Includes LibTorch: only for the few translation units that train or hold models.
#include <torch/torch.h>

#include <vector>

#include "absl/status/status.h"
#include "common/config/coordinator_config.h"
#include "common/tensor/layout.h"

namespace cohort::model {

// Builds the module for a built-in architecture: Linear layers named fc0, fc1, ... with ReLU
// between them; the output is class logits.
torch::nn::Sequential BuildModule(const config::ModelSpec& spec);

// Copies flat float32 values (layout order) into the module's parameters. InvalidArgument
// when the module's parameters do not match `layout`.
absl::Status LoadFlatParameters(torch::nn::Sequential& module,
                                const tensor::ParameterLayout& layout,
                                const std::vector<float>& values);

// The module's parameters flattened in registration order.
std::vector<float> FlattenParameters(torch::nn::Sequential& module);

}  // namespace cohort::model

#endif  // COHORT_COMMON_MODEL_TORCH_MODEL_H_
