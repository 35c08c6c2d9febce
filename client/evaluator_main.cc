// cohort-evaluator: the coordinator's LibTorch side-car. The coordinator holds models as flat
// float32 vectors and never loads LibTorch; it runs this program next to it:
// - `evaluate`: scores a checkpoint on a test file for server-side evaluation
//   (evaluation.server), once per evaluated round, printing the report the coordinator parses
//   (common/state/evaluation_report.h);
// - `inspect`: lists a TorchScript module's parameters ("tensor NAME D0,D1,..." per line) and
//   writes their values as a checkpoint, from which the coordinator starts a federation with
//   model: {torchscript: FILE}.
//
//   cohort-evaluator evaluate --checkpoint round-5.pt --arch mlp --inputs 30 --hidden 32
//       --classes 2 --format csv --path test.csv --label diagnosis
//
//   cohort-evaluator inspect --torchscript model.pt --out initial.pt
//
// Exit status: 0 with the report (or the parameter list) on stdout; 2 for bad arguments, an unreadable or mismatched
// checkpoint or data file (the reason on stderr); 1 when evaluation itself fails.
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/torch_trainer.h"
#include "common/config/coordinator_config.h"
#include "common/data/site_data.h"
#include "common/model/checkpoint.h"
#include "common/model/models.h"
#include "common/model/torch_model.h"
#include "common/state/evaluation_report.h"

namespace {

int Fail(int code, const std::string& what) {
  std::cerr << "cohort-evaluator: " << what << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cohort-evaluator: evaluates a cohort checkpoint on a test file (LibTorch)"};
  app.set_version_flag("--version", std::string("cohort-evaluator ") + COHORT_VERSION);
  app.require_subcommand(1);
  CLI::App* evaluate = app.add_subcommand(
      "evaluate", "Score a checkpoint of a built-in model on a whole test file; print the report");
  std::string checkpoint;
  cohort::config::ModelSpec spec;
  cohort::config::DataConfig data;
  int64_t threads = 1;
  evaluate->add_option("--checkpoint", checkpoint, "Checkpoint (.pt) to score")->required();
  spec.arch.clear();
  evaluate->add_option("--arch", spec.arch, "logreg, mlp or cnn");
  evaluate->add_option("--inputs", spec.inputs, "Input features (cnn: product of input shape)");
  evaluate->add_option("--hidden", spec.hidden, "Hidden layer sizes")->delimiter(',');
  evaluate->add_option("--classes", spec.classes, "Classes");
  evaluate->add_option("--input-shape", spec.input_shape, "cnn: channels,height,width")
      ->delimiter(',');
  evaluate->add_option("--channels", spec.channels, "cnn: channels of each block")
      ->delimiter(',');
  evaluate->add_option("--format", data.format, "csv or idx")
      ->check(CLI::IsMember({"csv", "idx"}))
      ->required();
  evaluate->add_option("--path", data.path, "csv: the test table");
  evaluate->add_option("--label", data.label, "csv: the label column");
  evaluate->add_option("--images", data.images, "idx: IDX3 images");
  evaluate->add_option("--labels", data.labels, "idx: IDX1 labels");
  evaluate->add_flag("--normalize", data.normalize,
                     "idx: standardize pixels with the file's own mean and deviation");
  evaluate->add_option("--threads", threads, "LibTorch threads")->check(CLI::Range(1, 256));
  std::string torchscript;
  evaluate->add_option("--torchscript", torchscript,
                       "A TorchScript module (instead of --arch and its options)");
  CLI::App* inspect = app.add_subcommand(
      "inspect", "List a TorchScript module's parameters and write their values as a checkpoint");
  std::string inspect_out;
  inspect->add_option("--torchscript", torchscript, "TorchScript module (torch.jit.save)")
      ->required();
  inspect->add_option("--out", inspect_out, "Checkpoint to write the parameter values to")
      ->required();
  CLI11_PARSE(app, argc, argv);

  if (inspect->parsed()) {
    absl::StatusOr<cohort::model::TrainableModel> module =
        cohort::model::TrainableModel::LoadTorchScript(torchscript);
    if (!module.ok()) return Fail(2, std::string(module.status().message()));
    const cohort::tensor::ParameterLayout layout = module->Layout();
    if (absl::Status s = cohort::model::WriteCheckpoint(inspect_out, layout, module->Flatten());
        !s.ok()) {
      return Fail(1, std::string(s.message()));
    }
    for (const cohort::tensor::TensorSpec& t : layout.tensors()) {
      std::cout << "tensor " << t.name << " " << absl::StrJoin(t.shape, ",") << "\n";
    }
    std::cout << std::flush;
    return 0;
  }
  if (torchscript.empty() == spec.arch.empty()) {
    return Fail(2, "evaluate needs either --arch (a built-in model) or --torchscript FILE");
  }

  if (data.format == "csv" && (data.path.empty() || data.label.empty())) {
    return Fail(2, "--format csv needs --path and --label");
  }
  if (data.format == "idx" && (data.images.empty() || data.labels.empty())) {
    return Fail(2, "--format idx needs --images and --labels");
  }
  if (spec.arch == "cnn") {
    spec.inputs = 1;
    for (int64_t d : spec.input_shape) spec.inputs *= d;
  }
  cohort::tensor::ParameterLayout layout;
  if (!torchscript.empty()) {
    spec.arch = "torchscript";
    absl::StatusOr<cohort::model::TrainableModel> module =
        cohort::model::TrainableModel::LoadTorchScript(torchscript);
    if (!module.ok()) return Fail(2, std::string(module.status().message()));
    layout = module->Layout();
  } else {
    if (absl::Status s = cohort::config::CheckModelSpec(spec); !s.ok()) {
      return Fail(2, std::string(s.message()));
    }
    layout = cohort::model::LayoutFor(spec);
  }
  absl::StatusOr<std::vector<float>> values = cohort::model::ReadCheckpoint(checkpoint, layout);
  if (!values.ok()) return Fail(2, std::string(values.status().message()));
  absl::StatusOr<cohort::data::Dataset> test = cohort::data::LoadEvaluationData(data);
  if (!test.ok()) return Fail(2, std::string(test.status().message()));

  // The trainer wants a training part too; only Evaluate is called, on the test part.
  cohort::data::TrainTestSplit split;
  split.train = *test;
  split.test = std::move(*test);
  cohort::client::SetTorchThreads(threads);
  absl::StatusOr<std::unique_ptr<cohort::client::Trainer>> made =
      torchscript.empty()
          ? absl::StatusOr<std::unique_ptr<cohort::client::Trainer>>(
                cohort::client::MakeTorchTrainerFromSplit(std::move(split), /*seed=*/0))
          : cohort::client::MakeTorchTrainerFromSplit(std::move(split), /*seed=*/0,
                                                      std::nullopt, torchscript);
  if (!made.ok()) return Fail(2, std::string(made.status().message()));
  std::unique_ptr<cohort::client::Trainer> trainer = std::move(*made);
  if (absl::Status s = trainer->CheckModel(spec, layout); !s.ok()) {
    return Fail(2, absl::StrCat(data.format == "csv" ? data.path : data.images, ": ",
                                s.message()));
  }
  absl::StatusOr<cohort::client::EvalResult> result = trainer->Evaluate(spec, layout, *values);
  if (!result.ok()) return Fail(1, std::string(result.status().message()));

  cohort::state::SiteEvaluation report;
  report.examples = result->examples;
  report.loss = result->loss;
  report.correct = result->correct;
  if (result->binary.has_value()) {
    report.binary = true;
    report.true_positives = result->binary->true_positives;
    report.false_positives = result->binary->false_positives;
    report.true_negatives = result->binary->true_negatives;
    report.false_negatives = result->binary->false_negatives;
    report.auc = result->binary->auc;
  }
  std::cout << cohort::state::FormatEvaluationReport(report) << std::flush;
  return 0;
}
