#ifndef COHORT_COMMON_MODEL_TORCH_MODEL_H_
#define COHORT_COMMON_MODEL_TORCH_MODEL_H_

// Includes LibTorch: only for the few translation units that train or hold models.
#include <torch/script.h>
#include <torch/torch.h>

#include <optional>
#include <string>

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

// The model a site trains or evaluates: a built-in Sequential, or a TorchScript module (the
// site's own copy of the federation's file). Only parameters are federated; a TorchScript
// module's buffers (e.g. batch-norm statistics) stay with the site.
class TrainableModel {
 public:
  // Loads a TorchScript file (torch.jit.save). InvalidArgument when it cannot be loaded, has
  // no parameters, or has a parameter that is not float32.
  static absl::StatusOr<TrainableModel> LoadTorchScript(const std::string& path);
  // A fresh built-in model for `spec`.
  static TrainableModel Builtin(const config::ModelSpec& spec);

  // Class logits for a batch; the input is [batch, features] for tables and [batch, channels,
  // height, width] for images (for cnn and TorchScript models alike).
  torch::Tensor Forward(const torch::Tensor& x);
  std::vector<torch::Tensor> Parameters();
  tensor::ParameterLayout Layout();
  void SetTraining(bool training);
  // Copies flat values (layout order) into the parameters; InvalidArgument on any mismatch
  // of names or shapes.
  absl::Status LoadFlat(const tensor::ParameterLayout& layout, const std::vector<float>& values);
  std::vector<float> Flatten();
  // The built-in module (DP-SGD's fast clipping paths need its layers); null for TorchScript.
  torch::nn::Sequential* sequential() { return sequential_ ? &*sequential_ : nullptr; }

 private:
  std::vector<std::pair<std::string, torch::Tensor>> NamedParameters();

  std::optional<torch::nn::Sequential> sequential_;
  std::optional<torch::jit::Module> script_;
};

}  // namespace cohort::model

#endif  // COHORT_COMMON_MODEL_TORCH_MODEL_H_
