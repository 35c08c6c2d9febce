// Server-side evaluation (evaluation.server): the coordinator runs the real cohort-evaluator
// (LibTorch, in its own process) on each evaluated round's checkpoint and a central test file,
// over a real federation on 127.0.0.1 with mutual TLS. The recorded figures are checked
// against the model evaluated here by hand (no LibTorch), and an evaluator that fails costs
// only the server evaluation, never the round.
#include <sys/stat.h>

#include <cmath>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "common/data/site_data.h"
#include "common/model/checkpoint.h"
#include "common/model/models.h"
#include "tests/integration/harness.h"
#include "tests/support/http_get.h"

namespace cohort::testing {
namespace {

// 60 rows of 4 features (deterministic, not separable by the scripted models) and a label.
std::string TestTable() {
  std::string csv = "f0,f1,f2,f3,y\n";
  for (int i = 0; i < 60; ++i) {
    const double a = std::sin(i * 1.3), b = std::cos(i * 0.7), c = (i % 7) - 3.0;
    const double d = 0.1 * i;
    const int label = (a + 0.5 * b - 0.2 * c > 0) ? 1 : 0;
    absl::StrAppend(&csv, a, ",", b, ",", c, ",", d, ",", label, "\n");
  }
  return csv;
}

// The logreg's mean cross-entropy and correct count on `data`, computed here in double.
std::pair<double, uint64_t> ScoreLogreg(const std::vector<float>& w, const data::Dataset& data) {
  // Layout fc0.weight [2, 4], fc0.bias [2].
  double loss = 0;
  uint64_t correct = 0;
  for (int64_t r = 0; r < data.rows(); ++r) {
    double logits[2];
    for (int k = 0; k < 2; ++k) {
      logits[k] = w[8 + k];
      for (int j = 0; j < 4; ++j) logits[k] += double{w[k * 4 + j]} * data.features[r * 4 + j];
    }
    const double top = std::max(logits[0], logits[1]);
    const double log_sum = top + std::log(std::exp(logits[0] - top) + std::exp(logits[1] - top));
    loss += log_sum - logits[data.labels[r]];
    const int predicted = logits[1] > logits[0] ? 1 : 0;
    correct += predicted == data.labels[r];
  }
  return {loss / data.rows(), correct};
}

}  // namespace

TEST_CASE("The coordinator scores evaluated rounds on the central test file with "
          "cohort-evaluator, matching the model evaluated by hand",
          "[server_evaluation]") {
  Federation fed({"site-a", "site-b"});
  TempDir files;
  WriteTextFile(files.File("test.csv"), TestTable());
  config::ServerEvaluationConfig server;
  server.data.format = "csv";
  server.data.path = files.File("test.csv");
  server.data.label = "y";
  fed.config().evaluation.server = server;
  fed.config().evaluation.every = 2;
  fed.config().rounds.count = 3;
  fed.Start();
  ClientRunner a(fed.ClientConfigFor("site-a"), std::make_unique<ScriptedTrainer>(0.05f, 10));
  ClientRunner b(fed.ClientConfigFor("site-b"), std::make_unique<ScriptedTrainer>(-0.02f, 30));
  REQUIRE(fed.coordinator().Wait().ok());
  REQUIRE(a.Join().ok());
  REQUIRE(b.Join().ok());

  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
  REQUIRE(rounds.size() == 3);
  // evaluation.every 2: rounds 2 and 3 (the last).
  CHECK_FALSE(rounds[0].server_evaluation.has_value());
  absl::StatusOr<data::Dataset> test = data::LoadEvaluationData(server.data);
  REQUIRE(test.ok());
  for (int i : {1, 2}) {
    INFO("round " << rounds[i].round);
    REQUIRE(rounds[i].server_evaluation.has_value());
    const state::SiteEvaluation& e = *rounds[i].server_evaluation;
    CHECK(e.examples == 60);
    CHECK(e.binary);
    REQUIRE(e.auc.has_value());
    CHECK(*e.auc >= 0.0);
    CHECK(*e.auc <= 1.0);
    absl::StatusOr<std::vector<float>> model = model::ReadCheckpoint(
        fed.state_dir() + "/" + rounds[i].checkpoint, model::LayoutFor(fed.config().model));
    REQUIRE(model.ok());
    const auto [loss, correct] = ScoreLogreg(*model, *test);
    CHECK(e.correct == correct);
    CHECK(e.loss == Approx(loss).epsilon(1e-5));
    CHECK(e.true_positives + e.true_negatives == correct);
  }
}

TEST_CASE("A failing evaluator costs the server evaluation only: rounds commit and the "
          "failure is counted",
          "[server_evaluation]") {
  Federation fed({"site-a"});
  TempDir files;
  WriteTextFile(files.File("test.csv"), TestTable());
  // An "evaluator" that fails the way a broken installation would, and one that prints
  // garbage with exit 0.
  const std::string failing = files.File("failing-evaluator");
  WriteTextFile(failing, "#!/bin/sh\necho 'libtorch.so: cannot open shared object' >&2\nexit 2\n");
  REQUIRE(chmod(failing.c_str(), 0755) == 0);
  config::ServerEvaluationConfig server;
  server.data.path = files.File("test.csv");
  server.data.label = "y";
  server.evaluator = failing;
  fed.config().evaluation.server = server;
  fed.config().rounds.count = 2;
  fed.config().http.listen = "127.0.0.1:0";
  fed.Start();
  ClientRunner a(fed.ClientConfigFor("site-a"), std::make_unique<ScriptedTrainer>(0.05f, 10));
  REQUIRE(fed.coordinator().Wait().ok());
  REQUIRE(a.Join().ok());
  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
  REQUIRE(rounds.size() == 2);
  for (const state::RoundRecord& r : rounds) {
    CHECK_FALSE(r.server_evaluation.has_value());
    CHECK(r.test_accuracy.has_value());  // the sites' evaluation is unaffected
  }
  HttpReply metrics = HttpRequest(fed.coordinator().http_port(), "/metrics");
  REQUIRE(metrics.status == 200);
  CHECK_THAT(metrics.body,
             Catch::Contains("cohort_coordinator_server_evaluation_failures_total 2"));
}

TEST_CASE("A coordinator whose evaluator is not an executable refuses to start, naming it",
          "[server_evaluation]") {
  Federation fed({"site-a"});
  TempDir files;
  WriteTextFile(files.File("test.csv"), TestTable());
  WriteTextFile(files.File("not-executable"), "#!/bin/sh\n");
  config::ServerEvaluationConfig server;
  server.data.path = files.File("test.csv");
  server.data.label = "y";
  server.evaluator = files.File("not-executable");
  fed.config().evaluation.server = server;
  absl::StatusOr<std::unique_ptr<server::Coordinator>> coordinator =
      server::Coordinator::Create(fed.config());
  REQUIRE_FALSE(coordinator.ok());
  CHECK(coordinator.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(coordinator.status().message()),
             Catch::Contains("not-executable") && Catch::Contains("not an executable file"));
}

}  // namespace cohort::testing
