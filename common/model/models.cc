#include "common/model/models.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"

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

std::vector<float> InitialParameters(const config::ModelSpec& spec, uint64_t seed) {
  // LibTorch's default Linear initialisation: weight and bias uniform in
  // [-1/sqrt(fan_in), 1/sqrt(fan_in)] (Kaiming-uniform with a = sqrt(5) gives this bound).
  tensor::ParameterLayout layout = LayoutFor(spec);
  std::vector<float> values;
  values.reserve(layout.TotalValues());
  std::mt19937_64 rng(seed);
  int64_t fan_in = 1;
  for (const tensor::TensorSpec& t : layout.tensors()) {
    // Weights are [out, in]; a bias follows its weight and shares its fan_in.
    if (t.shape.size() == 2) fan_in = t.shape[1];
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    std::uniform_real_distribution<double> uniform(-bound, bound);
    for (int64_t i = 0; i < t.NumValues(); ++i) values.push_back(static_cast<float>(uniform(rng)));
  }
  return values;
}

}  // namespace cohort::model
