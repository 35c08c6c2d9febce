#include "client/dp_sgd.h"

#include "absl/strings/str_cat.h"

namespace cohort::client {

absl::StatusOr<ClippedGradients> ClippedGradientSum(torch::nn::Sequential& module,
                                                    const torch::Tensor& x,
                                                    const torch::Tensor& y,
                                                    double max_grad_norm) {
  if (!(max_grad_norm > 0)) return absl::InvalidArgumentError("max_grad_norm must be > 0");
  std::vector<torch::Tensor> inputs;   // each Linear's input, [B, in]
  std::vector<torch::Tensor> outputs;  // each Linear's output, [B, out]
  torch::Tensor h = x;
  for (const auto& child : module->named_children()) {
    if (auto* linear = child.value()->as<torch::nn::Linear>()) {
      if (!linear->options.bias()) {
        return absl::UnimplementedError("DP-SGD fast path needs Linear layers with a bias");
      }
      inputs.push_back(h);
      h = linear->forward(h);
      outputs.push_back(h);
    } else if (child.value()->as<torch::nn::ReLU>() != nullptr) {
      h = torch::relu(h);
    } else {
      return absl::UnimplementedError(
          absl::StrCat("DP-SGD fast path has no rule for layer ", child.key()));
    }
  }
  ClippedGradients result;
  const int64_t batch = x.size(0);
  const auto options = x.options();
  if (batch == 0) {
    for (const torch::Tensor& p : module->parameters()) {
      result.sum.push_back(torch::zeros_like(p));
    }
    result.norms = torch::zeros({0}, options);
    return result;
  }
  torch::Tensor loss = torch::nn::functional::cross_entropy(
      h, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  // Row i of each output gradient is dL_i/dy_i, since the loss is a sum over examples.
  std::vector<torch::Tensor> output_grads = torch::autograd::grad({loss}, outputs);
  torch::NoGradGuard no_grad;
  torch::Tensor norms_squared = torch::zeros({batch}, options);
  for (size_t l = 0; l < output_grads.size(); ++l) {
    torch::Tensor a = inputs[l].detach();
    norms_squared += output_grads[l].pow(2).sum(1) * (a.pow(2).sum(1) + 1.0);
  }
  result.norms = norms_squared.sqrt();
  torch::Tensor factor = (max_grad_norm / (result.norms + 1e-12)).clamp_max(1.0);
  for (size_t l = 0; l < output_grads.size(); ++l) {
    torch::Tensor scaled = output_grads[l] * factor.unsqueeze(1);
    result.sum.push_back(scaled.t().mm(inputs[l].detach()));  // weight [out, in]
    result.sum.push_back(scaled.sum(0));                      // bias [out]
  }
  return result;
}

absl::StatusOr<DpSgdStats> RunDpSgd(torch::nn::Sequential& module, const torch::Tensor& x,
                                    const torch::Tensor& y, const DpSgdConfig& config,
                                    crypto::SecureSampler& sampler) {
  if (!(config.sample_rate > 0 && config.sample_rate <= 1) || !(config.noise_multiplier >= 0) ||
      config.steps < 0) {
    return absl::InvalidArgumentError("DP-SGD needs 0 < q <= 1, sigma >= 0 and steps >= 0");
  }
  const int64_t n = x.size(0);
  const double expected_batch = config.sample_rate * static_cast<double>(n);
  if (!(expected_batch > 0)) return absl::InvalidArgumentError("DP-SGD needs training data");
  const double noise_stddev = config.noise_multiplier * config.max_grad_norm;
  std::vector<torch::Tensor> params = module->parameters();
  DpSgdStats stats;
  double loss_sum = 0;
  int64_t clipped = 0;
  for (int64_t step = 0; step < config.steps; ++step) {
    absl::StatusOr<std::vector<int64_t>> rows = sampler.Subsample(n, config.sample_rate);
    if (!rows.ok()) return rows.status();
    torch::Tensor index = torch::tensor(*rows, torch::kInt64);
    torch::Tensor bx = x.index_select(0, index);
    torch::Tensor by = y.index_select(0, index);
    if (!rows->empty()) {
      torch::NoGradGuard no_grad;
      loss_sum += torch::nn::functional::cross_entropy(
                      module->forward(bx), by,
                      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                      .item<double>();
    }
    absl::StatusOr<ClippedGradients> grads =
        ClippedGradientSum(module, bx, by, config.max_grad_norm);
    if (!grads.ok()) return grads.status();
    clipped += (grads->norms > config.max_grad_norm).sum().item<int64_t>();
    torch::NoGradGuard no_grad;
    for (size_t k = 0; k < params.size(); ++k) {
      torch::Tensor noise = torch::empty_like(params[k], torch::kFloat32);
      if (absl::Status s = sampler.Gaussian(noise.data_ptr<float>(), noise.numel(), noise_stddev);
          !s.ok()) {
        return s;
      }
      torch::Tensor update = (grads->sum[k] + noise.to(params[k].dtype())) / expected_batch;
      params[k].sub_(update * config.learning_rate);
    }
    stats.examples_seen += static_cast<int64_t>(rows->size());
    ++stats.steps;
  }
  if (stats.examples_seen > 0) {
    stats.mean_loss = loss_sum / static_cast<double>(stats.examples_seen);
    stats.clipped_fraction = static_cast<double>(clipped) / static_cast<double>(stats.examples_seen);
  }
  return stats;
}

}  // namespace cohort::client
