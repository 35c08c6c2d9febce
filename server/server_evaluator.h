#ifndef COHORT_SERVER_SERVER_EVALUATOR_H_
#define COHORT_SERVER_SERVER_EVALUATOR_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/config/coordinator_config.h"
#include "common/state/state_store.h"

namespace cohort::server {

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
