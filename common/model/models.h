#ifndef COHORT_COMMON_MODEL_MODELS_H_
#define COHORT_COMMON_MODEL_MODELS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config/coordinator_config.h"
#include "common/tensor/layout.h"

// The built-in models without LibTorch: the coordinator needs only their layout and an
// initialisation (checkpoints: common/model/checkpoint.h).
namespace cohort::model {

// Parameter names and shapes of a built-in model, in this order: for cnn, convolutions conv0,
// conv1, ... with weight [out, in, 3, 3] and bias [out]; then Linear layers fc0, fc1, ... with
// weight [out, in] and bias [out]. `spec` must pass config::CheckModelSpec.
tensor::ParameterLayout LayoutFor(const config::ModelSpec& spec);

// Freshly initialised parameters for `spec`, flattened in layout order, drawn like LibTorch's
// default Linear and Conv2d initialisation (uniform in +-1/sqrt(fan_in)). Deterministic for a seed.
std::vector<float> InitialParameters(const config::ModelSpec& spec, uint64_t seed);

// A short digest of a layout (the first 16 hex digits of SHA-256 of its Fingerprint()): the
// architecture fingerprint sites and coordinator compare, in messages and logs.
std::string LayoutDigest(const tensor::ParameterLayout& layout);

// Why a site's model may not join the federation's: OK when `site` (the parameter layout of
// the site's own TorchScript module, if it has one) matches what `federation` runs.
// FailedPrecondition otherwise, naming both fingerprints and the first differing tensor: a
// TorchScript federation needs every site to have a module with exactly the federation's
// parameter names and shapes in the same order; a built-in federation needs sites without
// one (they build the built-in model from the spec the coordinator sends).
absl::Status CheckSiteArchitecture(const config::ModelSpec& federation_spec,
                                   const tensor::ParameterLayout& federation,
                                   const std::optional<tensor::ParameterLayout>& site);

}  // namespace cohort::model

#endif  // COHORT_COMMON_MODEL_MODELS_H_
