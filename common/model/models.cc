#include "common/model/models.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto/sha256.h"

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

std::string LayoutDigest(const tensor::ParameterLayout& layout) {
  return crypto::HexEncode(crypto::Sha256(layout.Fingerprint())).substr(0, 16);
}

absl::Status CheckSiteArchitecture(const config::ModelSpec& federation_spec,
                                   const tensor::ParameterLayout& federation,
                                   const std::optional<tensor::ParameterLayout>& site) {
  const bool torchscript = federation_spec.arch == "torchscript";
  if (!torchscript) {
    if (!site.has_value()) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "architecture mismatch: this site runs its own TorchScript model (fingerprint ",
        LayoutDigest(*site), ") but the federation trains the built-in ", federation_spec.arch,
        " model (fingerprint ", LayoutDigest(federation),
        "); remove model: from the site's config"));
  }
  if (!site.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "architecture mismatch: the federation trains a TorchScript model (fingerprint ",
        LayoutDigest(federation), ", ", federation.tensors().size(),
        " parameter tensors) but this site has none; set model: {torchscript: FILE} in the "
        "site's config to its copy of the federation's module"));
  }
  const std::vector<tensor::TensorSpec>& a = site->tensors();
  const std::vector<tensor::TensorSpec>& b = federation.tensors();
  auto describe = [](const tensor::TensorSpec& t) {
    return absl::StrCat("'", t.name, "' [", absl::StrJoin(t.shape, ","), "]");
  };
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    const bool same = i < a.size() && i < b.size() && a[i].name == b[i].name &&
                      a[i].shape == b[i].shape;
    if (same) continue;
    return absl::FailedPreconditionError(absl::StrCat(
        "architecture mismatch: the site's TorchScript model (fingerprint ", LayoutDigest(*site),
        ", ", a.size(), " parameter tensors) differs from the federation's (fingerprint ",
        LayoutDigest(federation), ", ", b.size(), "); first difference at parameter ", i,
        ": the site has ", i < a.size() ? describe(a[i]) : "nothing", ", the federation ",
        i < b.size() ? describe(b[i]) : "nothing"));
  }
  return absl::OkStatus();
}

}  // namespace cohort::model
