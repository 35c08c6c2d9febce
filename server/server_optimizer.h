#ifndef COHORT_SERVER_SERVER_OPTIMIZER_H_
#define COHORT_SERVER_SERVER_OPTIMIZER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/config/coordinator_config.h"

namespace cohort::server {

// What a server optimizer carries from one committed round to the next. Persisted next to
// each round's checkpoint (checkpoints/round-NNNNNN.opt) and reloaded on resume.
//
// Stored as float32, like the model: two extra model-sized vectors (fedavgm keeps only m),
// so coordinator memory stays O(model). Every update is computed per coordinate in float64
// and rounded once when stored; the rounding (relative 6e-8) is far below the noise of the
// deltas, and float64 state would double the coordinator's optimizer memory for no gain.
struct ServerOptimizerState {
  // The update rule that produced the state: fedavg (stateless) | fedavgm | fedadagrad |
  // fedadam | fedyogi.
  std::string rule = "fedavg";
  uint64_t round = 0;  // the committed round after which this is the state (0: none yet)
  uint64_t steps = 0;  // server steps taken with this rule
  // Empty until the first step of a stateful rule. m: momentum / first moment; v: second
  // moment (adaptive rules only).
  std::vector<float> m;
  std::vector<float> v;
};

// Folds a round's aggregated delta (trained minus global, averaged over the sites) into the
// global model: "Adaptive Federated Optimization" (Reddi et al., ICLR 2021), Algorithm 2,
// with Delta the round's aggregated delta and eta the server learning rate:
//
//   fedavg       x += eta * Delta
//   fedavgm      m = momentum * m + Delta;                      x += eta * m
//   fedadagrad   m = b1 m + (1 - b1) Delta;  v = v + Delta^2;   x += eta * m / (sqrt(v) + tau)
//   fedadam      m as above; v = b2 v + (1 - b2) Delta^2;       x += eta * m / (sqrt(v) + tau)
//   fedyogi      m as above; v = v - (1 - b2) Delta^2 sign(v - Delta^2);  x as above
//
// m starts at 0 and v at tau^2 (the paper requires v_{-1} >= tau^2); there is no bias
// correction, as in the paper. The robust strategies (coordinate_median, trimmed_mean) use
// the fedavg rule on their robust delta.
//
// A step is proposed without changing the optimizer (Propose) and adopted only once its
// round committed (Commit), so an aborted round leaves the state untouched.
class ServerOptimizer {
 public:
  // A proposed step: the candidate model and the state to adopt if the round commits.
  struct Step {
    std::vector<float> model;
    ServerOptimizerState state;
  };

  // `config.strategy` names the rule (see above); the hyperparameters are those of `config`.
  ServerOptimizer(const config::AggregationConfig& config, size_t num_values);

  // The rule for a strategy name: the robust strategies map to fedavg.
  static std::string RuleFor(const std::string& strategy);
  // Whether the rule keeps state between rounds (all but fedavg).
  static bool IsStateful(const std::string& rule) { return rule != "fedavg"; }

  const std::string& rule() const { return state_.rule; }
  bool stateful() const { return IsStateful(state_.rule); }
  const ServerOptimizerState& state() const { return state_; }

  // The candidate model x + update(delta) after `round`, and the state that goes with it.
  // `global` and `delta` must have num_values entries.
  Step Propose(uint64_t round, const std::vector<float>& global,
               const std::vector<float>& delta) const;
  // Adopts a committed step's state.
  void Commit(ServerOptimizerState state) { state_ = std::move(state); }

  // Continues from `saved`, the state persisted after the last committed round.
  // A stateless saved rule (fedavg, or a round committed by a robust strategy) lets any rule
  // start afresh. A stateful saved rule must equal this optimizer's rule when that one is
  // stateful: fedadam's v is an average and fedadagrad's a sum, and reusing either as the
  // other silently changes the step sizes. FailedPrecondition (saying what to do) otherwise;
  // DataLoss when the vectors do not fit the model.
  absl::Status Resume(ServerOptimizerState saved);

 private:
  config::AggregationConfig config_;
  size_t num_values_;
  ServerOptimizerState state_;
};

// checkpoints/round-NNNNNN.opt: the file format of a ServerOptimizerState. A header line
// "cohort-server-optimizer 1\n", then little-endian fields: rule (u32 length + bytes), round
// (u64), steps (u64), m and v (each u64 count + float32 values), and the SHA-256 of all the
// preceding bytes, so a truncated or damaged file is refused rather than resumed from.
std::string EncodeServerOptimizerState(const ServerOptimizerState& state);
absl::StatusOr<ServerOptimizerState> DecodeServerOptimizerState(absl::string_view bytes);
// Written atomically (temp file, fsync, rename, fsync of the directory), like a checkpoint.
absl::Status WriteServerOptimizerState(const std::string& path,
                                       const ServerOptimizerState& state);
absl::StatusOr<ServerOptimizerState> ReadServerOptimizerState(const std::string& path);

}  // namespace cohort::server

#endif  // COHORT_SERVER_SERVER_OPTIMIZER_H_
