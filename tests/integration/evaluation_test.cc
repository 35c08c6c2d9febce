// Federated evaluation schedule, best-model tracking and early stopping, over real gRPC and
// mutual TLS on 127.0.0.1 with scripted site evaluations.
#include <filesystem>
#include <memory>
#include <vector>

#include <catch2/catch.hpp>

#include "common/model/checkpoint.h"
#include "common/util/files.h"
#include "tests/integration/harness.h"

namespace cohort::testing {
namespace {

// A site whose index-th evaluation reports `correct[index]` of 10 (the last value repeats).
std::unique_ptr<ScriptedTrainer> Evaluating(std::vector<uint64_t> correct) {
  auto trainer = std::make_unique<ScriptedTrainer>(1.0f, 10);
  trainer->evaluate_result = [correct](int index) {
    const uint64_t c = correct[std::min<size_t>(index, correct.size() - 1)];
    return client::EvalResult{10, 1.0 - c / 10.0, c};
  };
  return trainer;
}

}  // namespace

TEST_CASE("evaluation.every evaluates every k-th round and always the last", "[evaluation]") {
  Federation fed({"site-a", "site-b"});
  fed.config().rounds.count = 5;
  fed.config().evaluation.every = 2;
  fed.Start();
  ClientRunner a(fed.ClientConfigFor("site-a"), Evaluating({5, 6, 7}));
  ClientRunner b(fed.ClientConfigFor("site-b"), Evaluating({5, 6, 7}));
  REQUIRE(fed.coordinator().Wait().ok());
  REQUIRE(a.Join().ok());
  REQUIRE(b.Join().ok());
  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
  REQUIRE(rounds.size() == 5);
  std::vector<bool> evaluated;
  for (const auto& r : rounds) evaluated.push_back(r.test_accuracy.has_value());
  CHECK(evaluated == std::vector<bool>{false, true, false, true, true});
  CHECK(rounds[1].site_evaluations.size() == 2);
  CHECK(rounds[0].site_evaluations.empty());
  // Three evaluations in all: rounds 2 and 4, and the last. The best (0.7) is round 5's.
  CHECK(*rounds[4].test_accuracy == Approx(0.7));
  REQUIRE(std::filesystem::exists(fed.state_dir() + "/checkpoints/best.pt"));
  auto best = ReadFileToString(fed.state_dir() + "/checkpoints/best.pt");
  auto last = ReadFileToString(fed.state_dir() + "/" + rounds[4].checkpoint);
  REQUIRE(best.ok());
  CHECK(*best == *last);
}

TEST_CASE("Early stopping ends the run after patience evaluations without improvement and "
          "keeps the best round's model as best.pt",
          "[evaluation]") {
  Federation fed({"site-a", "site-b"});
  fed.config().rounds.count = 20;
  fed.config().evaluation.early_stopping_metric = "accuracy";
  fed.config().evaluation.patience = 2;
  fed.config().evaluation.min_delta = 0.01;
  fed.Start();
  // Accuracy by round: 0.5, 0.7, 0.705 (within min_delta: no improvement), 0.6: stop after 4.
  ClientRunner a(fed.ClientConfigFor("site-a"), Evaluating({5, 7, 7, 6}));
  auto b_trainer = Evaluating({5, 7, 7, 6});
  b_trainer->evaluate_result = [](int index) {
    const uint64_t correct[] = {50, 70, 71, 60};
    const uint64_t c = correct[std::min(index, 3)];
    return client::EvalResult{100, 1.0 - c / 100.0, c};
  };
  ClientRunner b(fed.ClientConfigFor("site-b"), std::move(b_trainer));
  REQUIRE(fed.coordinator().Wait().ok());  // early stopping is a successful end
  REQUIRE(a.Join().ok());                  // the sites are told the federation is done
  REQUIRE(b.Join().ok());
  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
  REQUIRE(rounds.size() == 4);
  CHECK(*rounds[1].test_accuracy == Approx(77.0 / 110));
  CHECK(*rounds[2].test_accuracy == Approx(78.0 / 110));  // +0.009: below min_delta
  auto best = ReadFileToString(fed.state_dir() + "/checkpoints/best.pt");
  auto round2 = ReadFileToString(fed.state_dir() + "/" + rounds[1].checkpoint);
  REQUIRE(best.ok());
  CHECK(*best == *round2);
  CHECK(*best != *ReadFileToString(fed.state_dir() + "/" + rounds[3].checkpoint));

  SECTION("a restarted coordinator rebuilds the best round and stops again at once") {
    fed.StopCoordinator();
    std::filesystem::remove(fed.state_dir() + "/checkpoints/best.pt");
    fed.config().listen = "127.0.0.1:0";
    auto restarted = server::Coordinator::Create(fed.config());
    REQUIRE(restarted.ok());
    REQUIRE((*restarted)->Start().ok());
    REQUIRE((*restarted)->Wait().ok());  // no new round: the history already says stop
    CHECK(ReadRounds(fed.state_dir(), false).size() == 4);
    auto rebuilt = ReadFileToString(fed.state_dir() + "/checkpoints/best.pt");
    REQUIRE(rebuilt.ok());
    CHECK(*rebuilt == *round2);
    (*restarted)->Shutdown();
  }
}

}  // namespace cohort::testing
