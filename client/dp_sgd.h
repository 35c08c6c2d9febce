#ifndef COHORT_CLIENT_DP_SGD_H_
#define COHORT_CLIENT_DP_SGD_H_

// Includes LibTorch: DP-SGD runs next to the trainer.
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/crypto/secure_sampler.h"

namespace cohort::client {

// The sum over a batch of per-example gradients, each clipped to a maximum L2 norm (flat over
// all parameters), the per-example norms before clipping and the batch's summed loss.
struct ClippedGradients {
  std::vector<torch::Tensor> sum;  // one per parameter, in registration order
  torch::Tensor norms;             // [batch]
  double loss_sum = 0;             // summed cross-entropy of the batch, at the current weights
};

// How ClippedGradientComputer gets the per-example norms for a module.
enum class ClippingMethod {
  // A Sequential of Linear (with bias) and ReLU layers on [batch, features] inputs: no
  // autograd. The output gradient of summed softmax cross-entropy is softmax - onehot in
  // closed form, the other layers' output gradients come from one hand-written backward
  // (G W, masked by the ReLUs). A Linear layer's per-example weight gradient is the rank-one
  // g_i a_i^T, so its squared norm with the bias is ||g_i||^2 (||a_i||^2 + 1), and the
  // clipped sums are (c G)^T A and sum_i c_i g_i for the clip factors
  // c_i = min(1, C / ||grad_i||). Per-example gradients are never materialised.
  kLinear,
  // A Sequential of Conv2d (bias, zero padding, groups 1), ReLU, MaxPool2d, Flatten and
  // Linear layers: one autograd pass (down to the first layer's bias only, so no weight
  // gradients) during which backward hooks see each layer's output gradient G. A
  // convolution's per-example weight gradient is G_i U_i^T with U_i the unfolded input; the
  // hook forms them all at once as the weight gradient of a convolution with one group per
  // example (patches of >= 16 values), or from a strided-window unfold and a batched matrix
  // product in slices of the batch (smaller patches, e.g. a first layer on one channel), then
  // lets G go as a plain backward would. The bias gradient is G_i summed over positions;
  // Linear layers as above. The clipped sums are the per-example gradients weighted by c.
  kConv,
  // Anything else: one forward and backward per example (correct for any model, slow).
  kPerExampleLoop,
};

// A model as the per-example loop sees it: its forward function and its parameters (in
// registration order), e.g. a TorchScript module's.
struct DifferentiableModel {
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  std::vector<torch::Tensor> parameters;
};

// Computes ClippedGradients for a Sequential under summed cross-entropy, reusing its buffers
// across calls (the tensors of the returned struct are overwritten by the next call). Works in
// the module's dtype (float32 or float64); x must have that dtype, y int64 labels.
// Not thread-safe.
class ClippedGradientComputer {
 public:
  explicit ClippedGradientComputer(torch::nn::Sequential module);
  // Any other model: always kPerExampleLoop.
  explicit ClippedGradientComputer(DifferentiableModel model);

  ClippingMethod method() const { return method_; }

  absl::StatusOr<const ClippedGradients*> Compute(const torch::Tensor& x, const torch::Tensor& y,
                                                  double max_grad_norm);

  // The clipped sums as one flat buffer (parameters in registration order), which the
  // tensors of ClippedGradients::sum view.
  torch::Tensor& flat_sum() { return flat_sum_; }

 private:
  absl::Status ComputeLinear(const torch::Tensor& x, const torch::Tensor& y, double clip);
  absl::Status ComputeConv(const torch::Tensor& x, const torch::Tensor& y, double clip);
  absl::Status ComputeLoop(const torch::Tensor& x, const torch::Tensor& y, double clip);

  torch::nn::Sequential module_;
  std::function<torch::Tensor(const torch::Tensor&)> forward_;  // module_'s, or the model's
  ClippingMethod method_ = ClippingMethod::kPerExampleLoop;
  std::vector<torch::Tensor> params_;
  torch::Tensor flat_sum_;
  ClippedGradients result_;
  // kLinear scratch, per Linear layer: its output (then its output gradient).
  std::vector<torch::Tensor> outputs_;
  std::vector<torch::Tensor> input_grads_;  // gradient w.r.t. each Linear's input
  std::vector<double> row_norms_;           // double accumulators, [batch]
};

// ClippedGradientComputer(module).Compute(...), with fresh tensors.
absl::StatusOr<ClippedGradients> ClippedGradientSum(torch::nn::Sequential& module,
                                                    const torch::Tensor& x,
                                                    const torch::Tensor& y,
                                                    double max_grad_norm);

// The per-example loop for any model given as a forward function and its parameters (e.g. a
// TorchScript module: [&](const torch::Tensor& t) { return m.forward({t}).toTensor(); } and
// its parameters()): one forward and one autograd pass per example, so it costs about a
// batch's worth of single-example steps. Summed cross-entropy, flat clipping as above.
absl::StatusOr<ClippedGradients> ClippedGradientSumPerExample(
    const std::function<torch::Tensor(const torch::Tensor&)>& forward,
    const std::vector<torch::Tensor>& params, const torch::Tensor& x, const torch::Tensor& y,
    double max_grad_norm);

// One DP-SGD run (Abadi et al. 2016) with Poisson sampling.
struct DpSgdConfig {
  double noise_multiplier = 1.0;  // sigma
  double max_grad_norm = 1.0;     // C
  double sample_rate = 0.01;      // q: each example joins a batch with this probability
  double learning_rate = 0.1;
  int64_t steps = 1;
  // FedProx: mu of (mu / 2) ||w - w_start||^2, w_start the parameters when the run starts
  // (the global model). Its gradient does not depend on the data, so it is added outside the
  // clipped and noised sum: it costs no privacy and is not clipped (see DpSgdStepper).
  double proximal_mu = 0;
};

struct DpSgdStats {
  int64_t steps = 0;
  int64_t examples_seen = 0;       // sum of the (random) batch sizes
  double mean_loss = 0;            // over examples seen, before each step
  double clipped_fraction = 0;     // share of examples whose gradient was clipped
};

// The DP-SGD step on a given batch, with its buffers kept across steps: clipped sum, plus
// N(0, (sigma C)^2) noise on every coordinate (also for an empty batch) added in place, then
// params -= learning_rate * (sum + noise) / expected_batch, in place.
class DpSgdStepper {
 public:
  DpSgdStepper(torch::nn::Sequential module, double max_grad_norm, double noise_multiplier,
               double learning_rate, double expected_batch);
  DpSgdStepper(DifferentiableModel model, double max_grad_norm, double noise_multiplier,
               double learning_rate, double expected_batch);

  ClippingMethod method() const { return clipper_.method(); }

  // Adds FedProx's proximal term to every following step, anchored at the parameters'
  // current values: params -= learning_rate * mu * (params - anchor), applied with the
  // DP update to the same (pre-step) parameters. The term is a function of the parameters
  // only, never of the data, so by post-processing it changes neither the sensitivity nor
  // the privacy cost of the step. mu = 0 leaves Step exactly as without it.
  void SetProximal(double mu);

  // The gradients of the last step (before the noise), for statistics.
  absl::StatusOr<const ClippedGradients*> Step(const torch::Tensor& x, const torch::Tensor& y,
                                               crypto::SecureSampler& sampler);

 private:
  ClippedGradientComputer clipper_;
  std::vector<torch::Tensor> params_;
  double max_grad_norm_;
  double noise_stddev_;
  double scale_;  // -learning_rate / expected_batch
  double learning_rate_;
  double proximal_mu_ = 0;
  std::vector<torch::Tensor> anchors_;  // the parameters at SetProximal (mu > 0 only)
  std::vector<float> noise_;  // float64 models: the noise before conversion
};

// Runs `config.steps` steps: each batch is a Poisson sample of the rows of (x, y); the
// clipped gradient sum gets N(0, (sigma C)^2) noise on every coordinate (also for an empty
// batch) and is divided by the expected batch size q * n before the SGD update.
absl::StatusOr<DpSgdStats> RunDpSgd(torch::nn::Sequential& module, const torch::Tensor& x,
                                    const torch::Tensor& y, const DpSgdConfig& config,
                                    crypto::SecureSampler& sampler);
// The same for any model (a TorchScript module), clipped by the per-example loop.
absl::StatusOr<DpSgdStats> RunDpSgd(const DifferentiableModel& model, const torch::Tensor& x,
                                    const torch::Tensor& y, const DpSgdConfig& config,
                                    crypto::SecureSampler& sampler);

}  // namespace cohort::client

#endif  // COHORT_CLIENT_DP_SGD_H_
