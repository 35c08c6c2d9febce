#include "common/model/torch_model.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace cohort::model {

torch::nn::Sequential BuildModule(const config::ModelSpec& spec) {
  torch::nn::Sequential seq;
  int64_t in = spec.inputs;
  for (size_t i = 0; i < spec.hidden.size(); ++i) {
    seq->push_back(absl::StrCat("fc", i), torch::nn::Linear(in, spec.hidden[i]));
    seq->push_back(absl::StrCat("relu", i), torch::nn::ReLU());
    in = spec.hidden[i];
  }
  seq->push_back(absl::StrCat("fc", spec.hidden.size()), torch::nn::Linear(in, spec.classes));
  return seq;
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

}  // namespace cohort::model
