// Server-side evaluation's LibTorch-free parts: the evaluation.server config, the evaluator's
// report format, its record in state.db, the subprocess runner, and the central test set that
// cohortctl data split --holdout sets aside.
#include <signal.h>
#include <sys/stat.h>

#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "common/config/coordinator_config.h"
#include "common/data/split.h"
#include "common/model/models.h"
#include "common/state/evaluation_report.h"
#include "common/state/state_store.h"
#include "common/util/files.h"
#include "common/util/subprocess.h"
#include "tests/support/coordinator_config_fixture.h"
#include "tests/support/status_assertions.h"
#include "tests/support/temp_dir.h"

namespace cohort {
namespace {

using ::cohort::testing::CoordinatorConfigFixture;
using ::cohort::testing::RequireInvalid;
using ::cohort::testing::TempDir;
using ::cohort::testing::WriteTextFile;

state::SiteEvaluation BinaryEvaluation() {
  state::SiteEvaluation e;
  e.examples = 10;
  e.correct = 7;
  e.loss = 0.1 + 0.2;  // not exact in decimal: the report must carry every bit
  e.binary = true;
  e.true_positives = 3;
  e.false_positives = 2;
  e.true_negatives = 4;
  e.false_negatives = 1;
  e.auc = 2.0 / 3.0;
  return e;
}

}  // namespace

TEST_CASE("evaluation.server reads a csv test file, the evaluator and the timeout", "[config]") {
  CoordinatorConfigFixture fixture;
  WriteTextFile(fixture.File("test.csv"), "a,b,c,d,y\n1,2,3,4,0\n");
  absl::StatusOr<config::CoordinatorConfig> config = fixture.Parse(
      "evaluation:\n  server:\n    data: {format: csv, path: test.csv, label: y}\n"
      "    timeout: 90s\n");
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  REQUIRE(config->evaluation.server.has_value());
  CHECK(config->evaluation.server->data.path == fixture.File("test.csv"));
  CHECK(config->evaluation.server->data.label == "y");
  CHECK(config->evaluation.server->evaluator.empty());
  CHECK(config->evaluation.server->timeout == absl::Seconds(90));
  CHECK_FALSE(fixture.Parse("").value().evaluation.server.has_value());
}

TEST_CASE("evaluation.server refuses split keys, a missing file and a missing data section",
          "[config]") {
  CoordinatorConfigFixture fixture;
  WriteTextFile(fixture.File("test.csv"), "a,b,c,d,y\n1,2,3,4,0\n");
  RequireInvalid(fixture.Parse("evaluation: {server: {data: {path: test.csv, label: y, "
                               "test_fraction: 0.5}}}\n").status(),
                 {"coord.yaml", "evaluation.server.data.test_fraction", "whole file"});
  RequireInvalid(fixture.Parse("evaluation: {server: {data: {format: idx, images: test.csv, "
                               "labels: test.csv, test_images: test.csv}}}\n").status(),
                 {"evaluation.server.data.test_images", "test set"});
  RequireInvalid(fixture.Parse("evaluation: {server: {data: {path: nowhere.csv, label: y}}}\n")
                     .status(),
                 {"evaluation.server.data.path", "nowhere.csv"});
  RequireInvalid(fixture.Parse("evaluation: {server: {timeout: 5s}}\n").status(),
                 {"evaluation.server.data", "central test file"});
  RequireInvalid(fixture.Parse("evaluation: {server: {data: {path: test.csv, label: y}, "
                               "evaluator: /no/such/evaluator}}\n").status(),
                 {"evaluation.server.evaluator"});
}

TEST_CASE("An evaluation report round-trips every bit and parses what the evaluator prints",
          "[state]") {
  const state::SiteEvaluation e = BinaryEvaluation();
  const std::string text = state::FormatEvaluationReport(e);
  CHECK(absl::StartsWith(text, "cohort-evaluation 1\n"));
  absl::StatusOr<state::SiteEvaluation> parsed = state::ParseEvaluationReport(text);
  INFO(parsed.status().ToString());
  REQUIRE(parsed.ok());
  CHECK(parsed->examples == 10);
  CHECK(parsed->correct == 7);
  CHECK(parsed->loss == e.loss);
  CHECK(parsed->auc == e.auc);
  CHECK(parsed->false_negatives == 1);

  state::SiteEvaluation multiclass;
  multiclass.examples = 4;
  multiclass.correct = 4;
  multiclass.loss = 0.25;
  absl::StatusOr<state::SiteEvaluation> plain =
      state::ParseEvaluationReport(state::FormatEvaluationReport(multiclass));
  REQUIRE(plain.ok());
  CHECK_FALSE(plain->binary);
  CHECK_FALSE(plain->auc.has_value());
}

TEST_CASE("A malformed or inconsistent evaluation report is refused with the reason", "[state]") {
  const std::string good = state::FormatEvaluationReport(BinaryEvaluation());
  struct Case {
    std::string text;
    std::string fragment;
  };
  auto replace = [&good](const std::string& from, const std::string& to) {
    std::string out = good;
    out.replace(out.find(from), from.size(), to);
    return out;
  };
  const std::vector<Case> cases = {
      {"", "expected 'cohort-evaluation 1'"},
      {"Traceback (most recent call last)\n", "line 1"},
      {replace("cohort-evaluation 1", "cohort-evaluation 2"), "line 1"},
      {replace("examples 10", "examples ten"), "examples is not"},
      {replace("examples 10", "examples -10"), "examples is not"},
      {replace("correct 7", "correct 11"), "more correct than examples"},
      {replace("true_positives 3", "true_positives 4"), "do not add up to examples"},
      {replace("true_negatives 4", "true_negatives 3\nfalse_extra 1"), "unknown key"},
      {replace("examples 10", "examples 10\nexamples 10"), "given twice"},
      {replace("loss ", "loss nan #"), "expected 'key value'"},
      {replace("loss ", "loss inf"), "loss is not a number"},
      {good + "auc2 1\n", "unknown key"},
      {replace("binary 1", "binary 2"), "binary is 0 or 1"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    absl::StatusOr<state::SiteEvaluation> parsed = state::ParseEvaluationReport(c.text);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(absl::StrContains(parsed.status().message(), c.fragment));
  }
}

TEST_CASE("Confusion counts whose sums wrap around uint64 are refused", "[state]") {
  // Found with evaluation_report_fuzz's invariants: 2^64 - 1 true positives and 2 true
  // negatives add up to correct (1) and with no false ones to examples (1) modulo 2^64.
  const std::string text =
      "cohort-evaluation 1\nexamples 1\nloss 0x1p-1\ncorrect 1\nbinary 1\n"
      "true_positives 18446744073709551615\nfalse_positives 0\ntrue_negatives 2\n"
      "false_negatives 0\n";
  absl::StatusOr<state::SiteEvaluation> parsed = state::ParseEvaluationReport(text);
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(absl::StrContains(parsed.status().message(), "a confusion count exceeds examples"));
}

TEST_CASE("A server evaluation is recorded once, only for a committed round", "[state]") {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<state::StateStore>> opened =
      state::StateStore::Open(dir.File("state.db"));
  REQUIRE(opened.ok());
  state::StateStore& store = **opened;
  REQUIRE(store.BeginRound(1, absl::Now()).ok());
  const state::SiteEvaluation e = BinaryEvaluation();
  CHECK(store.RecordServerEvaluation(1, e).code() == absl::StatusCode::kFailedPrecondition);
  CHECK(store.RecordServerEvaluation(7, e).code() == absl::StatusCode::kFailedPrecondition);
  state::RoundRecord record;
  record.round = 1;
  record.checkpoint = "checkpoints/round-000001.pt";
  REQUIRE(store.CommitRound(record).ok());
  REQUIRE(store.RecordServerEvaluation(1, e).ok());
  CHECK(store.RecordServerEvaluation(1, e).code() == absl::StatusCode::kAlreadyExists);

  // Survives a reopen, next to the round's other figures.
  opened->reset();
  absl::StatusOr<std::unique_ptr<state::StateStore>> reopened =
      state::StateStore::Open(dir.File("state.db"));
  REQUIRE(reopened.ok());
  absl::StatusOr<std::vector<state::RoundRecord>> rounds = (*reopened)->ListRounds(true);
  REQUIRE(rounds.ok());
  REQUIRE(rounds->size() == 1);
  REQUIRE(rounds->front().server_evaluation.has_value());
  CHECK(rounds->front().server_evaluation->correct == 7);
  CHECK(rounds->front().server_evaluation->auc == e.auc);
  CHECK(rounds->front().site_evaluations.empty());
}

TEST_CASE("RunProcess returns the exit status and both outputs", "[util]") {
  absl::StatusOr<ProcessResult> run = RunProcess(
      {"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, absl::Seconds(30));
  REQUIRE(run.ok());
  CHECK(run->exit_code == 3);
  CHECK(run->signal == 0);
  CHECK(run->stdout_text == "out\n");
  CHECK(run->stderr_text == "err\n");

  absl::StatusOr<ProcessResult> killed =
      RunProcess({"/bin/sh", "-c", "kill -9 $$"}, absl::Seconds(30));
  REQUIRE(killed.ok());
  CHECK(killed->signal == 9);
}

TEST_CASE("RunProcess kills a child that outlives its timeout", "[util]") {
  TempDir dir;
  // The child records its pid, then sleeps far longer than the timeout.
  const std::string pid_file = dir.File("pid");
  absl::StatusOr<ProcessResult> run = RunProcess(
      {"/bin/sh", "-c", "echo $$ > " + pid_file + "; exec sleep 600"}, absl::Milliseconds(500));
  REQUIRE(run.status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK(absl::StrContains(run.status().message(), "was killed"));
  absl::StatusOr<std::string> pid = ReadFileToString(pid_file);
  REQUIRE(pid.ok());
  // Reaped: no such process any more.
  CHECK(kill(std::stoi(*pid), 0) != 0);
}

TEST_CASE("RunProcess caps the output it keeps and reports a missing program", "[util]") {
  absl::StatusOr<ProcessResult> run =
      RunProcess({"/bin/sh", "-c", "head -c 100000 /dev/zero"}, absl::Seconds(30), 1000);
  REQUIRE(run.ok());
  CHECK(run->exit_code == 0);
  CHECK(run->stdout_text.size() == 1000);
  CHECK(RunProcess({"/no/such/program"}, absl::Seconds(5)).status().code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE("A stratified holdout keeps every class on both sides and is seeded", "[data]") {
  std::vector<int64_t> labels;
  for (int i = 0; i < 100; ++i) labels.push_back(i % 10 == 0 ? 1 : 0);  // 10 of class 1
  const data::Holdout a = data::StratifiedHoldout(labels, 0.2, 3);
  CHECK(a.held_out.size() == 20);
  CHECK(a.kept.size() == 80);
  int positives = 0;
  for (int64_t row : a.held_out) positives += labels[row] == 1;
  CHECK(positives == 2);
  std::set<int64_t> all(a.kept.begin(), a.kept.end());
  all.insert(a.held_out.begin(), a.held_out.end());
  CHECK(all.size() == 100);
  CHECK(data::StratifiedHoldout(labels, 0.2, 3).held_out == a.held_out);
  CHECK(data::StratifiedHoldout(labels, 0.2, 4).held_out != a.held_out);
}

}  // namespace cohort

namespace cohort {

TEST_CASE("A TorchScript model config takes only the module file", "[config]") {
  CoordinatorConfigFixture fixture;
  WriteTextFile(fixture.File("net.pt"), "not read by the config loader");
  // The fixture's Parse adds a built-in model; this config has only the TorchScript one.
  const std::string base =
      "federation: demo\nlisten: 127.0.0.1:7443\n"
      "tls: {ca: tls/ca.pem, cert: tls/coordinator.pem, key: tls/coordinator.key}\n"
      "sites: [hospital-a]\nstate_dir: state\nrounds: {count: 1}\n";
  absl::StatusOr<config::CoordinatorConfig> config = config::ParseCoordinatorConfig(
      base + "model: {torchscript: net.pt}\n", "coord.yaml", fixture.File(""));
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->model.arch == "torchscript");
  CHECK(config->model.torchscript == fixture.File("net.pt"));
  RequireInvalid(config::ParseCoordinatorConfig(base + "model: {torchscript: net.pt, classes: 2}\n",
                                                "coord.yaml", fixture.File(""))
                     .status(),
                 {"model.classes", "not with torchscript"});
  RequireInvalid(config::ParseCoordinatorConfig(base + "model: {torchscript: missing.pt}\n",
                                                "coord.yaml", fixture.File(""))
                     .status(),
                 {"model.torchscript", "missing.pt"});
}

TEST_CASE("The join-time architecture check names both fingerprints and the first difference",
          "[model]") {
  config::ModelSpec script;
  script.arch = "torchscript";
  const tensor::ParameterLayout federation({{"hidden.weight", {16, 63}}, {"hidden.bias", {16}},
                                            {"out.weight", {2, 16}}, {"out.bias", {2}}});
  CHECK(model::CheckSiteArchitecture(script, federation, federation).ok());
  CHECK(model::LayoutDigest(federation).size() == 16);

  const tensor::ParameterLayout wider({{"hidden.weight", {16, 63}}, {"hidden.bias", {16}},
                                       {"out.weight", {3, 16}}, {"out.bias", {3}}});
  absl::Status mismatch = model::CheckSiteArchitecture(script, federation, wider);
  CHECK(mismatch.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(mismatch.message()),
             Catch::Contains(model::LayoutDigest(wider)) &&
                 Catch::Contains(model::LayoutDigest(federation)) &&
                 Catch::Contains("first difference at parameter 2: the site has 'out.weight' "
                                 "[3,16], the federation 'out.weight' [2,16]"));

  // Same shapes, other names; one tensor fewer.
  const tensor::ParameterLayout renamed({{"fc.weight", {16, 63}}, {"hidden.bias", {16}},
                                         {"out.weight", {2, 16}}, {"out.bias", {2}}});
  CHECK_FALSE(model::CheckSiteArchitecture(script, federation, renamed).ok());
  const tensor::ParameterLayout shorter({{"hidden.weight", {16, 63}}, {"hidden.bias", {16}},
                                         {"out.weight", {2, 16}}});
  CHECK_THAT(std::string(model::CheckSiteArchitecture(script, federation, shorter).message()),
             Catch::Contains("the site has nothing, the federation 'out.bias' [2]"));

  // A TorchScript federation needs the site's module; a built-in one refuses it.
  CHECK_THAT(std::string(model::CheckSiteArchitecture(script, federation, std::nullopt).message()),
             Catch::Contains("this site has none"));
  config::ModelSpec mlp;
  mlp.arch = "mlp";
  CHECK(model::CheckSiteArchitecture(mlp, federation, std::nullopt).ok());
  CHECK_THAT(std::string(model::CheckSiteArchitecture(mlp, federation, federation).message()),
             Catch::Contains("built-in mlp"));
}

}  // namespace cohort
