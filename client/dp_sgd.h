#ifndef COHORT_CLIENT_DP_SGD_H_
#define COHORT_CLIENT_DP_SGD_H_

// Includes LibTorch: DP-SGD runs next to the trainer.
#include <torch/torch.h>

#include <vector>

#include "absl/status/statusor.h"
#include "common/crypto/secure_sampler.h"

namespace cohort::client {

// The sum over a batch of per-example gradients, each clipped to a maximum L2 norm (flat over
// all parameters), and the per-example norms before clipping.
struct ClippedGradients {
  std::vector<torch::Tensor> sum;  // one per parameter, in registration order
  torch::Tensor norms;             // [batch]
};

// Computes ClippedGradients for a built-in model (a Sequential of Linear and ReLU layers) under
// summed cross-entropy, without materialising per-example gradients. One backward pass gives
// each Linear layer's output gradient g_i; its per-example weight gradient is the rank-one
// g_i x_i^T, whose norm is ||g_i|| * ||x_i||, and the bias gradient is g_i. With the clip
// factors c_i = min(1, C / ||grad_i||), the clipped sums are (c * G)^T X and sum_i c_i g_i.
// Works in the module's dtype (float32 or float64). Unimplemented for other layer types.
absl::StatusOr<ClippedGradients> ClippedGradientSum(torch::nn::Sequential& module,
                                                    const torch::Tensor& x,
                                                    const torch::Tensor& y,
                                                    double max_grad_norm);

// One DP-SGD run (Abadi et al. 2016) with Poisson sampling.
struct DpSgdConfig {
  double noise_multiplier = 1.0;  // sigma
  double max_grad_norm = 1.0;     // C
  double sample_rate = 0.01;      // q: each example joins a batch with this probability
  double learning_rate = 0.1;
  int64_t steps = 1;
};

struct DpSgdStats {
  int64_t steps = 0;
  int64_t examples_seen = 0;       // sum of the (random) batch sizes
  double mean_loss = 0;            // over examples seen, before each step
  double clipped_fraction = 0;     // share of examples whose gradient was clipped
};

// Runs `config.steps` steps: each batch is a Poisson sample of the rows of (x, y); the
// clipped gradient sum gets N(0, (sigma C)^2) noise on every coordinate (also for an empty
// batch) and is divided by the expected batch size q * n before the SGD update.
absl::StatusOr<DpSgdStats> RunDpSgd(torch::nn::Sequential& module, const torch::Tensor& x,
                                    const torch::Tensor& y, const DpSgdConfig& config,
                                    crypto::SecureSampler& sampler);

}  // namespace cohort::client

#endif  // COHORT_CLIENT_DP_SGD_H_
