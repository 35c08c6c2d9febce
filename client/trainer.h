#ifndef COHORT_CLIENT_TRAINER_H_
#define COHORT_CLIENT_TRAINER_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/binary_metrics.h"
#include "common/config/coordinator_config.h"
#include "common/dp/ledger.h"
#include "common/tensor/layout.h"

namespace cohort::client {

using dp::DpRoundPlan;
using dp::PlanDpRound;

// Hyperparameters of one local training task, as sent by the coordinator.
struct TrainingParams {
  int64_t epochs = 1;
  int64_t batch_size = 32;  // with DP: the expected batch size of Poisson sampling
  double learning_rate = 0.1;
  // DP-SGD (Poisson sampling, per-example clipping, Gaussian noise) when set.
  bool dp = false;
  double noise_multiplier = 0;
  double max_grad_norm = 0;
  // FedProx: mu of the proximal term (mu / 2) ||w - w_global||^2 added to the local loss;
  // each step adds its gradient mu (w - w_global). 0: plain local training.
  double proximal_mu = 0;
};

// What local training produced: the parameter delta (trained minus global) and its metrics.
struct TrainResult {
  std::vector<float> delta;
  double train_loss = 0;  // mean loss over the last epoch
  uint64_t examples = 0;  // training examples behind the update (its FedAvg weight)
  double seconds = 0;
  // With DP: steps taken and their sampling rate q (all steps of a round share q and sigma).
  int64_t dp_steps = 0;
  double dp_sample_rate = 0;
};

// A model's score on the site's held-out split.
struct EvalResult {
  uint64_t examples = 0;
  double loss = 0;  // mean
  uint64_t correct = 0;
  // Two-class models: confusion counts and AUC (data/binary_metrics.h).
  std::optional<data::BinaryMetrics> binary = std::nullopt;
};

// Local training and evaluation at a site. The client daemon drives it; LibTorch stays
// behind this interface so that the connection code compiles without it.
class Trainer {
 public:
  virtual ~Trainer() = default;
  virtual uint64_t train_examples() const = 0;
  virtual uint64_t test_examples() const = 0;
  virtual int64_t num_features() const = 0;
  // The parameter layout of the site's own model file (a TorchScript module), sent in Hello
  // so that the coordinator can refuse a mismatched architecture; nullopt for built-ins.
  virtual std::optional<tensor::ParameterLayout> LocalModelLayout() const { return std::nullopt; }
  // Refuses an architecture that cannot run on this site's data (InvalidArgument, with why).
  virtual absl::Status CheckModel(const config::ModelSpec& spec,
                                  const tensor::ParameterLayout& layout) const = 0;
  virtual absl::StatusOr<TrainResult> Train(const config::ModelSpec& spec,
                                            const tensor::ParameterLayout& layout,
                                            const std::vector<float>& global,
                                            const TrainingParams& params) = 0;
  virtual absl::StatusOr<EvalResult> Evaluate(const config::ModelSpec& spec,
                                              const tensor::ParameterLayout& layout,
                                              const std::vector<float>& model) = 0;
};

}  // namespace cohort::client

#endif  // COHORT_CLIENT_TRAINER_H_
