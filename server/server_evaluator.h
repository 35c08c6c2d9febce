#ifndef COHORT_SERVER_SERVER_EVALUATOR_H_
#define COHORT_SERVER_SERVER_EVALUATOR_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/config/coordinator_config.h"
#include "common/state/state_store.h"
#include "common/tensor/layout.h"

namespace cohort::server {

// The cohort-evaluator to run: `configured` if set, else the one next to the running binary.
// FailedPrecondition naming the path when it is not an executable file.
absl::StatusOr<std::string> ResolveEvaluator(const std::string& configured);

// A TorchScript model's parameters as the coordinator holds them.
struct TorchScriptParameters {
  tensor::ParameterLayout layout;
  std::vector<float> values;  // the module's own (initial) values, in layout order
};

// Reads the parameter names, shapes and values of the TorchScript file at `path` by running
// `evaluator inspect` (the coordinator itself never loads LibTorch). `scratch` is a file path
// the evaluator may write (removed afterwards). InvalidArgument with the evaluator's reason
// when the file is not a usable module.
absl::StatusOr<TorchScriptParameters> InspectTorchScript(const std::string& evaluator,
                                                         const std::string& path,
                                                         const std::string& scratch,
                                                         absl::Duration timeout);

// Server-side evaluation (evaluation.server): scores a committed checkpoint on the central
// test file by running cohort-evaluator, a separate LibTorch process, and parsing its report.
// The coordinator process itself never loads LibTorch; a crash or hang of the evaluator costs
// one evaluation (killed after the configured timeout), never the federation.
class ServerEvaluator {
 public:
  // Resolves the evaluator (config.evaluator, else cohort-evaluator next to the running
  // binary) and checks it is an executable file; FailedPrecondition naming the path if not.
  static absl::StatusOr<ServerEvaluator> Create(const config::ServerEvaluationConfig& config,
                                                const config::ModelSpec& model);

  // Evaluates the checkpoint file. Errors carry the evaluator's own message (its stderr).
  absl::StatusOr<state::SiteEvaluation> Evaluate(const std::string& checkpoint_path) const;

  // The command line without the checkpoint (for logs and tests).
  const std::vector<std::string>& argv() const { return argv_; }

 private:
  ServerEvaluator(std::vector<std::string> argv, absl::Duration timeout)
      : argv_(std::move(argv)), timeout_(timeout) {}

  std::vector<std::string> argv_;
  absl::Duration timeout_;
};

}  // namespace cohort::server

#endif  // COHORT_SERVER_SERVER_EVALUATOR_H_
