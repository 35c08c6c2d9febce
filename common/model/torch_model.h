#ifndef COHORT_COMMON_MODEL_TORCH_MODEL_H_
#define COHORT_COMMON_MODEL_TORCH_MODEL_H_

// Includes LibTorch: only for the few translation units that train or hold models.
#include <torch/torch.h>

#include <vector>

#include "absl/status/status.h"
#include "common/config/coordinator_config.h"
#include "common/tensor/layout.h"

namespace cohort::model {

// Builds the module for a built-in architecture: for cnn, blocks of Conv2d (conv0, conv1, ...;
// 3x3, padding 1), ReLU and 2x2 MaxPool2d, then a Flatten, on [batch, channels, height, width]
// inputs; then Linear layers named fc0, fc1, ... with ReLU between them. The output is class
// logits. Parameters are registered in model::LayoutFor's order, under its names.
torch::nn::Sequential BuildModule(const config::ModelSpec& spec);

// The model's view of a batch of rows [batch, inputs]: [batch, channels, height, width] for
// cnn, the rows themselves otherwise.
torch::Tensor ModelInput(const config::ModelSpec& spec, const torch::Tensor& rows);

// Copies flat float32 values (layout order) into the module's parameters. InvalidArgument
// when the module's parameters do not match `layout`.
absl::Status LoadFlatParameters(torch::nn::Sequential& module,
                                const tensor::ParameterLayout& layout,
                                const std::vector<float>& values);

// The module's parameters flattened in registration order.
std::vector<float> FlattenParameters(torch::nn::Sequential& module);

// The module's parameter names and shapes in registration order.
tensor::ParameterLayout ModuleLayout(torch::nn::Sequential& module);

}  // namespace cohort::model

#endif  // COHORT_COMMON_MODEL_TORCH_MODEL_H_
