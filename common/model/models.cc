#include "common/model/models.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/model/torch_model.h"
#include "common/util/files.h"

namespace cohort::model {

tensor::ParameterLayout LayoutFor(const config::ModelSpec& spec) {
  std::vector<tensor::TensorSpec> tensors;
  int64_t in = spec.inputs;
  std::vector<int64_t> widths = spec.hidden;
  widths.push_back(spec.classes);
  for (size_t i = 0; i < widths.size(); ++i) {
    std::string name = absl::StrCat("fc", i);
    tensors.push_back({name + ".weight", {widths[i], in}});
    tensors.push_back({name + ".bias", {widths[i]}});
    in = widths[i];
  }
  return tensor::ParameterLayout(std::move(tensors));
}

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
  for (const torch::Tensor& p : module->parameters()) {
    torch::Tensor c = p.detach().contiguous();
    const float* data = c.data_ptr<float>();
    out.insert(out.end(), data, data + c.numel());
  }
  return out;
}

std::vector<float> InitialParameters(const config::ModelSpec& spec, uint64_t seed) {
  torch::manual_seed(seed);
  torch::nn::Sequential module = BuildModule(spec);
  return FlattenParameters(module);
}

absl::Status WriteCheckpoint(const std::string& path, const tensor::ParameterLayout& layout,
                             const std::vector<float>& values) {
  if (static_cast<int64_t>(values.size()) != layout.TotalValues()) {
    return absl::InvalidArgumentError("checkpoint values do not match the layout");
  }
  std::vector<char> bytes;
  try {
    c10::Dict<std::string, at::Tensor> dict;
    size_t offset = 0;
    for (const tensor::TensorSpec& spec : layout.tensors()) {
      at::Tensor t = torch::from_blob(const_cast<float*>(values.data() + offset), spec.shape,
                                      torch::kFloat32)
                         .clone();
      dict.insert(spec.name, t);
      offset += spec.NumValues();
    }
    bytes = torch::pickle_save(c10::IValue(dict));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot serialise checkpoint: ", e.what()));
  }
  return WriteFileDurably(path, absl::string_view(bytes.data(), bytes.size()), 0644);
}

absl::StatusOr<std::vector<float>> ReadCheckpoint(const std::string& path,
                                                  const tensor::ParameterLayout& layout) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  std::vector<float> values;
  values.reserve(layout.TotalValues());
  try {
    c10::IValue loaded = torch::pickle_load(std::vector<char>(bytes->begin(), bytes->end()));
    if (!loaded.isGenericDict()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": checkpoint is not a dict"));
    }
    c10::Dict<c10::IValue, c10::IValue> dict = loaded.toGenericDict();
    for (const tensor::TensorSpec& spec : layout.tensors()) {
      auto it = dict.find(c10::IValue(spec.name));
      if (it == dict.end()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": missing tensor ", spec.name));
      }
      at::Tensor t = it->value().toTensor().to(torch::kFloat32).contiguous();
      if (t.sizes().vec() != spec.shape) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": tensor ", spec.name,
                                                       " has the wrong shape"));
      }
      values.insert(values.end(), t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": unreadable checkpoint: ", e.what()));
  }
  return values;
}

}  // namespace cohort::model
