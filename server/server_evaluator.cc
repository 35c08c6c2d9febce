#include "server/server_evaluator.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/state/evaluation_report.h"
#include "common/util/subprocess.h"

namespace cohort::server {
namespace {

// The evaluator's arguments for a built-in model and a test file.
std::vector<std::string> EvaluatorArguments(const config::ServerEvaluationConfig& config,
                                            const config::ModelSpec& model) {
  std::vector<std::string> args = {"evaluate", "--arch", model.arch, "--classes",
                                   std::to_string(model.classes)};
  if (model.arch == "cnn") {
    args.insert(args.end(), {"--input-shape", absl::StrJoin(model.input_shape, ","),
                             "--channels", absl::StrJoin(model.channels, ",")});
  } else {
    args.insert(args.end(), {"--inputs", std::to_string(model.inputs)});
  }
  if (!model.hidden.empty()) {
    args.insert(args.end(), {"--hidden", absl::StrJoin(model.hidden, ",")});
  }
  const config::DataConfig& data = config.data;
  args.insert(args.end(), {"--format", data.format});
  if (data.format == "csv") {
    args.insert(args.end(), {"--path", data.path, "--label", data.label});
  } else {
    args.insert(args.end(), {"--images", data.images, "--labels", data.labels});
    if (data.normalize) args.push_back("--normalize");
  }
  return args;
}

}  // namespace

absl::StatusOr<ServerEvaluator> ServerEvaluator::Create(
    const config::ServerEvaluationConfig& config, const config::ModelSpec& model) {
  std::string evaluator = config.evaluator;
  if (evaluator.empty()) {
    absl::StatusOr<std::string> dir = ExecutableDirectory();
    if (!dir.ok()) return dir.status();
    evaluator = *dir + "/cohort-evaluator";
  }
  std::error_code error;
  if (!std::filesystem::is_regular_file(evaluator, error) ||
      access(evaluator.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "evaluation.server: the evaluator ", evaluator,
        " is not an executable file (install cohort-evaluator next to cohort-coordinator or "
        "set evaluation.server.evaluator)"));
  }
  std::vector<std::string> argv = {evaluator};
  for (std::string& arg : EvaluatorArguments(config, model)) argv.push_back(std::move(arg));
  return ServerEvaluator(std::move(argv), config.timeout);
}

absl::StatusOr<state::SiteEvaluation> ServerEvaluator::Evaluate(
    const std::string& checkpoint_path) const {
  std::vector<std::string> argv = argv_;
  argv.insert(argv.end(), {"--checkpoint", checkpoint_path});
  absl::StatusOr<ProcessResult> run = RunProcess(argv, timeout_);
  if (!run.ok()) return run.status();
  if (run->signal != 0 || run->exit_code != 0) {
    const std::string how = run->signal != 0 ? absl::StrCat("was killed by signal ", run->signal)
                                             : absl::StrCat("exited with ", run->exit_code);
    return absl::InternalError(
        absl::StrCat("the evaluator ", how, ": ",
                     absl::StripTrailingAsciiWhitespace(run->stderr_text)));
  }
  return state::ParseEvaluationReport(run->stdout_text);
}

}  // namespace cohort::server
