#include "server/server_evaluator.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/model/checkpoint.h"
#include "common/state/evaluation_report.h"
#include "common/util/subprocess.h"

namespace cohort::server {
namespace {

// The evaluator's arguments for a built-in model and a test file.
std::vector<std::string> EvaluatorArguments(const config::ServerEvaluationConfig& config,
                                            const config::ModelSpec& model) {
  std::vector<std::string> args = {"evaluate"};
  if (model.arch == "torchscript") {
    args.insert(args.end(), {"--torchscript", model.torchscript});
  } else {
    args.insert(args.end(), {"--arch", model.arch, "--classes", std::to_string(model.classes)});
  }
  if (model.arch == "cnn") {
    args.insert(args.end(), {"--input-shape", absl::StrJoin(model.input_shape, ","),
                             "--channels", absl::StrJoin(model.channels, ",")});
  } else if (model.arch != "torchscript") {
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

absl::StatusOr<std::string> ResolveEvaluator(const std::string& configured) {
  std::string evaluator = configured;
  if (evaluator.empty()) {
    absl::StatusOr<std::string> dir = ExecutableDirectory();
    if (!dir.ok()) return dir.status();
    evaluator = *dir + "/cohort-evaluator";
  }
  std::error_code error;
  if (!std::filesystem::is_regular_file(evaluator, error) ||
      access(evaluator.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the evaluator ", evaluator,
        " is not an executable file (install cohort-evaluator next to cohort-coordinator or "
        "set evaluation.server.evaluator)"));
  }
  return evaluator;
}

absl::StatusOr<TorchScriptParameters> InspectTorchScript(const std::string& evaluator,
                                                         const std::string& path,
                                                         const std::string& scratch,
                                                         absl::Duration timeout) {
  // Removed whatever happens, also when the evaluator is killed at the timeout.
  struct RemoveScratch {
    const std::string& path;
    ~RemoveScratch() {
      std::error_code ignored;
      std::filesystem::remove(path, ignored);
    }
  } remove_scratch{scratch};
  absl::StatusOr<ProcessResult> run = RunProcess(
      {evaluator, "inspect", "--torchscript", path, "--out", scratch}, timeout);
  if (!run.ok()) return run.status();
  if (run->signal != 0 || run->exit_code != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.torchscript: ", absl::StripTrailingAsciiWhitespace(run->stderr_text)));
  }
  // One line per parameter: "tensor NAME D0,D1,...".
  std::vector<tensor::TensorSpec> tensors;
  for (absl::string_view line : absl::StrSplit(run->stdout_text, '\n', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(line, ' ');
    tensor::TensorSpec spec;
    bool ok = parts.size() == 3 && parts[0] == "tensor" && !parts[1].empty();
    if (ok) {
      spec.name = parts[1];
      for (absl::string_view d : absl::StrSplit(parts[2], ',')) {
        int64_t size = 0;
        ok = ok && absl::SimpleAtoi(d, &size) && size >= 1 && size <= (int64_t{1} << 31);
        spec.shape.push_back(size);
      }
    }
    if (!ok) {
      return absl::InternalError(
          absl::StrCat("cohort-evaluator inspect printed an unexpected line: '", line, "'"));
    }
    tensors.push_back(std::move(spec));
  }
  if (tensors.empty()) return absl::InternalError("cohort-evaluator inspect listed no parameters");
  TorchScriptParameters out;
  out.layout = tensor::ParameterLayout(std::move(tensors));
  absl::StatusOr<std::vector<float>> values = model::ReadCheckpoint(scratch, out.layout);
  if (!values.ok()) return values.status();
  out.values = std::move(*values);
  return out;
}

absl::StatusOr<ServerEvaluator> ServerEvaluator::Create(
    const config::ServerEvaluationConfig& config, const config::ModelSpec& model) {
  absl::StatusOr<std::string> evaluator = ResolveEvaluator(config.evaluator);
  if (!evaluator.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("evaluation.server: ", evaluator.status().message()));
  }
  std::vector<std::string> argv = {*evaluator};
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
