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

namespace {

// Copies flat values (layout order) into `params`, which must match the layout's names and
// shapes one for one; `what` names the model in errors.
absl::Status LoadNamedParameters(std::vector<std::pair<std::string, torch::Tensor>> params,
                                 const tensor::ParameterLayout& layout,
                                 const std::vector<float>& values, absl::string_view what) {
  if (params.size() != layout.tensors().size() ||
      static_cast<int64_t>(values.size()) != layout.TotalValues()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has ", params.size(), " parameter tensors but the layout has ",
        layout.tensors().size(), " (", values.size(), " values for ", layout.TotalValues(), ")"));
  }
  torch::NoGradGuard no_grad;
  size_t offset = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    const tensor::TensorSpec& spec = layout.tensors()[i];
    torch::Tensor& p = params[i].second;
    if (params[i].first != spec.name || p.sizes().vec() != spec.shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "parameter ", i, " is ", params[i].first, " but the layout expects ", spec.name,
          " with ", spec.NumValues(), " values"));
    }
    p.copy_(torch::from_blob(const_cast<float*>(values.data() + offset), p.sizes(),
                             torch::kFloat32));
    offset += spec.NumValues();
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LoadFlatParameters(torch::nn::Sequential& module,
                                const tensor::ParameterLayout& layout,
                                const std::vector<float>& values) {
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& p : module->named_parameters(/*recurse=*/true)) {
    params.emplace_back(p.key(), p.value());
  }
  return LoadNamedParameters(std::move(params), layout, values, "model");
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

absl::StatusOr<TrainableModel> TrainableModel::LoadTorchScript(const std::string& path) {
  TrainableModel model;
  try {
    model.script_ = torch::jit::load(path, torch::kCPU);
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a TorchScript module (torch.jit.save): ", what));
  }
  std::vector<std::pair<std::string, torch::Tensor>> params = model.NamedParameters();
  if (params.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": the module has no parameters"));
  }
  for (const auto& [name, p] : params) {
    if (p.scalar_type() != torch::kFloat32) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": parameter ", name, " is ", c10::toString(p.scalar_type()),
          "; cohort federates float32 parameters only"));
    }
  }
  return model;
}

TrainableModel TrainableModel::Builtin(const config::ModelSpec& spec) {
  TrainableModel model;
  model.sequential_ = BuildModule(spec);
  return model;
}

torch::Tensor TrainableModel::Forward(const torch::Tensor& x) {
  if (sequential_) return (*sequential_)->forward(x);
  return script_->forward({x}).toTensor();
}

std::vector<std::pair<std::string, torch::Tensor>> TrainableModel::NamedParameters() {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  if (sequential_) {
    for (const auto& p : (*sequential_)->named_parameters(/*recurse=*/true)) {
      out.emplace_back(p.key(), p.value());
    }
  } else {
    for (const auto& p : script_->named_parameters(/*recurse=*/true)) {
      out.emplace_back(p.name, p.value);
    }
  }
  return out;
}

std::vector<torch::Tensor> TrainableModel::Parameters() {
  std::vector<torch::Tensor> out;
  for (auto& [name, p] : NamedParameters()) out.push_back(p);
  return out;
}

tensor::ParameterLayout TrainableModel::Layout() {
  std::vector<tensor::TensorSpec> specs;
  for (const auto& [name, p] : NamedParameters()) specs.push_back({name, p.sizes().vec()});
  return tensor::ParameterLayout(std::move(specs));
}

void TrainableModel::SetTraining(bool training) {
  if (sequential_) {
    (*sequential_)->train(training);
  } else {
    script_->train(training);
  }
}

absl::Status TrainableModel::LoadFlat(const tensor::ParameterLayout& layout,
                                      const std::vector<float>& values) {
  return LoadNamedParameters(NamedParameters(), layout, values,
                             sequential_ ? "model" : "the TorchScript module");
}

std::vector<float> TrainableModel::Flatten() {
  std::vector<float> out;
  for (const torch::Tensor& p : Parameters()) {
    torch::Tensor c = p.detach().contiguous();
    const float* data = c.data_ptr<float>();
    out.insert(out.end(), data, data + c.numel());
  }
  return out;
}

}  // namespace cohort::model
