#include "common/model/models.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"

namespace cohort::model {

tensor::ParameterLayout LayoutFor(const config::ModelSpec& spec) {
  std::vector<tensor::TensorSpec> tensors;
  int64_t in = spec.inputs;
  if (spec.arch == "cnn") {
    int64_t channels_in = spec.input_shape.at(0);
    for (size_t i = 0; i < spec.channels.size(); ++i) {
      std::string name = absl::StrCat("conv", i);
      tensors.push_back({name + ".weight", {spec.channels[i], channels_in, 3, 3}});
      tensors.push_back({name + ".bias", {spec.channels[i]}});
      channels_in = spec.channels[i];
    }
    in = config::CnnFlatFeatures(spec);
  }
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

std::vector<float> InitialParameters(const config::ModelSpec& spec, uint64_t seed) {
  // LibTorch's default Linear and Conv2d initialisation: weight and bias uniform in
  // [-1/sqrt(fan_in), 1/sqrt(fan_in)] (Kaiming-uniform with a = sqrt(5) gives this bound),
  // fan_in being the weight's values per output (in, or in_channels x kh x kw).
  tensor::ParameterLayout layout = LayoutFor(spec);
  std::vector<float> values;
  values.reserve(layout.TotalValues());
  std::mt19937_64 rng(seed);
  int64_t fan_in = 1;
  for (const tensor::TensorSpec& t : layout.tensors()) {
    // Weights are [out, in] or [out, in, kh, kw]; a bias follows its weight and shares its
    // fan_in.
    if (t.shape.size() >= 2) fan_in = t.NumValues() / t.shape[0];
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    std::uniform_real_distribution<double> uniform(-bound, bound);
    for (int64_t i = 0; i < t.NumValues(); ++i) values.push_back(static_cast<float>(uniform(rng)));
  }
  return values;
}

}  // namespace cohort::model
