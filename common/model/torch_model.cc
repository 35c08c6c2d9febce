#include "common/model/torch_model.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace cohort::model {

torch::nn::Sequential BuildModule(const config::ModelSpec& spec) {
  torch::nn::Sequential seq;
  int64_t in = spec.inputs;
  if (spec.arch == "cnn") {
    int64_t channels_in = spec.input_shape.at(0);
    for (size_t i = 0; i < spec.channels.size(); ++i) {
      seq->push_back(absl::StrCat("conv", i),
                     torch::nn::Conv2d(torch::nn::Conv2dOptions(channels_in, spec.channels[i], 3)
                                           .padding(1)));
      seq->push_back(absl::StrCat("conv_relu", i), torch::nn::ReLU());
      seq->push_back(absl::StrCat("pool", i),
                     torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)));
      channels_in = spec.channels[i];
    }
    seq->push_back("flatten", torch::nn::Flatten());
    in = config::CnnFlatFeatures(spec);
  }
  for (size_t i = 0; i < spec.hidden.size(); ++i) {
    seq->push_back(absl::StrCat("fc", i), torch::nn::Linear(in, spec.hidden[i]));
    seq->push_back(absl::StrCat("relu", i), torch::nn::ReLU());
    in = spec.hidden[i];
  }
  seq->push_back(absl::StrCat("fc", spec.hidden.size()), torch::nn::Linear(in, spec.classes));
  return seq;
}

torch::Tensor ModelInput(const config::ModelSpec& spec, const torch::Tensor& rows) {
  if (spec.arch != "cnn" || rows.dim() != 2) return rows;
  return rows.view({rows.size(0), spec.input_shape[0], spec.input_shape[1], spec.input_shape[2]});
}

absl::Status LoadFlatParameters(torch::nn::Sequential& module,
                                const tensor::ParameterLayout& layout,
                                const std::vector<float>& values) {
  auto params = module->named_parameters(/*recurse=*/true);
  if (params.size() != layout.tensors().size() ||
      static_cast<int64_t>(values.size()) != layout.TotalValues()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model has ", params.size(), " parameter tensors but the layout has ",
        layout.tensors().size(), " (", values.size(), " values for ", layout.TotalValues(), ")"));
  }
  torch::NoGradGuard no_grad;
  size_t offset = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const tensor::TensorSpec& spec = layout.tensors()[i];
    torch::Tensor& p = params[i].value();
    if (params[i].key() != spec.name || p.sizes().vec() != spec.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter ", i, " is ", params[i].key(), " but the layout expects ", spec.name,
          " with ", spec.NumValues(), " values"));
    }
    std::memcpy(p.data_ptr<float>(), values.data() + offset, spec.NumValues() * sizeof(float));
    offset += spec.NumValues();
  }
  return absl::OkStatus();
}

std::vector<float> FlattenParameters(torch::nn::Sequential& module) {
  std::vector<float> out;
  size_t total = 0;
  for (const torch::Tensor& p : module->parameters()) total += p.numel();
  out.reserve(total);
  for (const torch::Tensor& p : module->parameters()) {
    torch::Tensor c = p.detach().contiguous();
    const float* data = c.data_ptr<float>();
    out.insert(out.end(), data, data + c.numel());
  }
  return out;
}

tensor::ParameterLayout ModuleLayout(torch::nn::Sequential& module) {
  std::vector<tensor::TensorSpec> specs;
  for (const auto& p : module->named_parameters(/*recurse=*/true)) {
    specs.push_back({p.key(), p.value().sizes().vec()});
  }
  return tensor::ParameterLayout(std::move(specs));
}

}  // namespace cohort::model
