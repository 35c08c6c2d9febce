// Whole rounds over real gRPC and mutual TLS on 127.0.0.1, coordinator and sites in-process.
#include <filesystem>

#include <catch2/catch.hpp>

#include "client/torch_trainer.h"
#include "common/data/csv.h"
#include "common/data/split.h"
#include "common/model/checkpoint.h"
#include "common/state/state_store.h"
#include "tests/integration/harness.h"

namespace cohort::testing {
namespace {

std::unique_ptr<ScriptedTrainer> Scripted(float delta, uint64_t examples) {
  return std::make_unique<ScriptedTrainer>(delta, examples);
}

}  // namespace

TEST_CASE("FedAvg weights each site's delta by its example count", "[federation]") {
  Federation fed({"site-a", "site-b"});
  fed.config().rounds.count = 1;
  fed.Start();
  const std::vector<float> initial = fed.coordinator().GlobalModel();
  ClientRunner a(fed.ClientConfigFor("site-a"), Scripted(1.0f, 10));
  ClientRunner b(fed.ClientConfigFor("site-b"), Scripted(4.0f, 30));
  REQUIRE(fed.coordinator().Wait().ok());
  REQUIRE(a.Join().ok());
  REQUIRE(b.Join().ok());

  const std::vector<float> model = fed.coordinator().GlobalModel();
  REQUIRE(model.size() == initial.size());
  // (10 * 1 + 30 * 4) / 40 = 3.25 added to every parameter.
  for (size_t i = 0; i < model.size(); ++i) {
    REQUIRE(model[i] == Approx(initial[i] + 3.25f).epsilon(1e-6));
  }
  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
  REQUIRE(rounds.size() == 1);
  CHECK(rounds[0].round == 1);
  CHECK(rounds[0].participants == std::vector<std::string>{"site-a", "site-b"});
  CHECK(rounds[0].examples == 40);
  REQUIRE(rounds[0].train_loss.has_value());
  CHECK(*rounds[0].train_loss == Approx(0.25));
  // Both scripted sites report 7 of 10 correct.
  REQUIRE(rounds[0].test_accuracy.has_value());
  CHECK(*rounds[0].test_accuracy == Approx(0.7));
  CHECK(rounds[0].test_examples == 20);

  // The checkpoint on disk is the committed model.
  auto restored = model::ReadCheckpoint(fed.state_dir() + "/" + rounds[0].checkpoint,
                                        fed.coordinator().layout());
  REQUIRE(restored.ok());
  CHECK(*restored == model);
}

TEST_CASE("A site that misses the training deadline is dropped from that round only",
          "[federation]") {
  Federation fed({"site-a", "site-b", "site-c"});
  fed.config().rounds.count = 2;
  fed.config().rounds.min_clients = 2;
  fed.config().rounds.stage_timeout = absl::Seconds(3);
  fed.Start();
  auto slow = Scripted(1.0f, 10);
  // Stalls past the deadline in its first task only.
  slow->before_train = [](int task) {
    if (task == 0) absl::SleepFor(absl::Seconds(5));
  };
  ClientRunner a(fed.ClientConfigFor("site-a"), Scripted(1.0f, 10));
  ClientRunner b(fed.ClientConfigFor("site-b"), Scripted(1.0f, 10));
  ClientRunner c(fed.ClientConfigFor("site-c"), std::move(slow));
  REQUIRE(fed.coordinator().Wait().ok());
  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
  REQUIRE(rounds.size() == 2);
  // The first round that committed ran without the stalled site; it was dropped, not banned.
  bool saw_drop = false;
  for (const auto& r : rounds) {
    if (r.dropped == std::vector<std::string>{"site-c"}) {
      saw_drop = true;
      CHECK(r.participants == std::vector<std::string>{"site-a", "site-b"});
    }
  }
  CHECK(saw_drop);
  CHECK(rounds.back().participants ==
        std::vector<std::string>{"site-a", "site-b", "site-c"});
}

TEST_CASE("A round below min_clients aborts and its number is never reused", "[federation]") {
  Federation fed({"site-a", "site-b"});
  fed.config().rounds.count = 1;
  fed.config().rounds.min_clients = 2;
  fed.Start();
  const std::vector<float> initial = fed.coordinator().GlobalModel();
  auto failing = Scripted(100.0f, 10);
  failing->fail_train = [](int task) {
    return task == 0 ? absl::FailedPreconditionError("local policy refuses this round")
                     : absl::OkStatus();
  };
  ClientRunner a(fed.ClientConfigFor("site-a"), Scripted(1.0f, 10));
  ClientRunner b(fed.ClientConfigFor("site-b"), std::move(failing));
  REQUIRE(fed.coordinator().Wait().ok());
  std::vector<state::RoundRecord> all = ReadRounds(fed.state_dir(), false);
  REQUIRE(all.size() == 2);
  CHECK(all[0].round == 1);
  CHECK(all[0].status == "aborted");
  CHECK_THAT(all[0].reason, Catch::Contains("only 1 of 2"));
  CHECK(all[1].round == 2);
  CHECK(all[1].status == "committed");
  // The aborted round left no trace in the model: one round of (1 + 100) / 2.
  const std::vector<float> model = fed.coordinator().GlobalModel();
  CHECK(model[0] == Approx(initial[0] + 50.5f).epsilon(1e-6));
}

TEST_CASE("A restarted coordinator resumes from the last committed round", "[federation]") {
  TempDir keep;
  std::string state_dir;
  std::vector<float> after_first_run;
  Federation fed({"site-a"});
  fed.config().rounds.count = 2;
  fed.config().rounds.min_clients = 1;
  fed.Start();
  {
    ClientRunner a(fed.ClientConfigFor("site-a"), Scripted(1.0f, 10));
    REQUIRE(fed.coordinator().Wait().ok());
    REQUIRE(a.Join().ok());
  }
  after_first_run = fed.coordinator().GlobalModel();
  fed.StopCoordinator();

  // Same state_dir, more rounds: continues at round 3 from the round-2 checkpoint.
  config::CoordinatorConfig second = fed.config();
  second.rounds.count = 4;
  auto coordinator = server::Coordinator::Create(second);
  REQUIRE(coordinator.ok());
  CHECK((*coordinator)->GlobalModel() == after_first_run);
  REQUIRE((*coordinator)->Start().ok());
  config::ClientConfig client_config = fed.ClientConfigFor("site-a");
  client_config.coordinator = "127.0.0.1:" + std::to_string((*coordinator)->port());
  ClientRunner a(client_config, Scripted(2.0f, 10));
  REQUIRE((*coordinator)->Wait().ok());
  REQUIRE(a.Join().ok());
  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
  REQUIRE(rounds.size() == 4);
  CHECK(rounds[2].round == 3);
  CHECK(rounds[3].round == 4);
  const std::vector<float> model = (*coordinator)->GlobalModel();
  CHECK(model[0] == Approx(after_first_run[0] + 4.0f).epsilon(1e-6));
  (*coordinator)->Shutdown();
}

// Starts hospital-a/b/c on a label-skewed split of the breast cancer data, each with the
// LibTorch trainer over its own class-balanced standardised split.
std::vector<std::unique_ptr<ClientRunner>> StartWdbcSites(Federation& fed) {
  auto all = data::LoadCsv(SourcePath("data/wdbc.csv"), "malignant");
  REQUIRE(all.ok());
  auto scheme = data::ParsePartitionScheme("label-skew");
  REQUIRE(scheme.ok());
  auto parts = data::PartitionRows(all->labels, 3, *scheme, 42);
  REQUIRE(parts.ok());
  std::vector<std::unique_ptr<ClientRunner>> clients;
  const std::vector<std::string> sites = {"hospital-a", "hospital-b", "hospital-c"};
  for (int s = 0; s < 3; ++s) {
    data::TrainTestSplit split = data::SplitTrainTest(all->Subset((*parts)[s]), 0.2, 1);
    data::Standardizer standardizer = data::Standardizer::Fit(split.train);
    standardizer.Apply(&split.train);
    standardizer.Apply(&split.test);
    clients.push_back(std::make_unique<ClientRunner>(
        fed.ClientConfigFor(sites[s]), client::MakeTorchTrainerFromSplit(std::move(split), s)));
  }
  return clients;
}

void UseWdbcMlp(Federation& fed, int64_t rounds) {
  fed.config().model.arch = "mlp";
  fed.config().model.inputs = 30;
  fed.config().model.hidden = {16};
  fed.config().rounds.count = rounds;
  fed.config().training.epochs = 2;
  fed.config().training.batch_size = 16;
  fed.config().training.learning_rate = 0.1;
}

TEST_CASE("Three sites learn the breast cancer data with LibTorch", "[federation][torch]") {
  Federation fed({"hospital-a", "hospital-b", "hospital-c"});
  UseWdbcMlp(fed, 5);
  fed.Start();
  std::vector<std::unique_ptr<ClientRunner>> clients = StartWdbcSites(fed);
  REQUIRE(fed.coordinator().Wait().ok());
  for (auto& c : clients) REQUIRE(c->Join().ok());
  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
  REQUIRE(rounds.size() == 5);
  for (const auto& r : rounds) {
    CHECK(r.participants.size() == 3);
    CHECK(r.examples > 400);
    REQUIRE(r.test_accuracy.has_value());
  }
  // Training makes progress: the loss falls and the final model classifies well.
  CHECK(*rounds.back().train_loss < *rounds.front().train_loss);
  CHECK(*rounds.back().test_accuracy >= 0.93);
  for (const auto& r : rounds) {
    CHECK(std::filesystem::exists(fed.state_dir() + "/" + r.checkpoint));
  }
  // Federated evaluation of a binary task: every site reports its confusion counts and AUC,
  // consistent with the pooled accuracy; the pooled AUC of a good model is high.
  const state::RoundRecord& last = rounds.back();
  REQUIRE(last.site_evaluations.size() == 3);
  uint64_t correct = 0, examples = 0;
  for (const auto& [site, e] : last.site_evaluations) {
    INFO(site);
    CHECK(e.binary);
    CHECK(e.true_positives + e.true_negatives == e.correct);
    CHECK(e.true_positives + e.true_negatives + e.false_positives + e.false_negatives ==
          e.examples);
    correct += e.correct;
    examples += e.examples;
  }
  CHECK(static_cast<double>(correct) / examples == Approx(*last.test_accuracy));
  const state::PooledBinaryMetrics pooled = state::PoolBinaryMetrics(last.site_evaluations);
  REQUIRE(pooled.auc.has_value());
  CHECK(*pooled.auc >= 0.95);
  CHECK(*pooled.precision > 0.8);
  CHECK(*pooled.recall > 0.8);
}

TEST_CASE("With privacy on, the sites train with DP-SGD and the model still learns",
          "[federation][torch][dp]") {
  Federation fed({"hospital-a", "hospital-b", "hospital-c"});
  UseWdbcMlp(fed, 8);
  fed.config().privacy.enabled = true;
  fed.config().privacy.noise_multiplier = 1.0;
  fed.config().privacy.max_grad_norm = 1.0;
  fed.Start();
  const std::vector<float> initial = fed.coordinator().GlobalModel();
  std::vector<std::unique_ptr<ClientRunner>> clients = StartWdbcSites(fed);
  REQUIRE(fed.coordinator().Wait().ok());
  for (auto& c : clients) REQUIRE(c->Join().ok());
  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
  REQUIRE(rounds.size() == 8);
  CHECK(fed.coordinator().GlobalModel() != initial);
  // Noisy, but far better than the 60 % a constant guess gets on the pooled test splits.
  CHECK(*rounds.back().test_accuracy >= 0.8);
}

}  // namespace cohort::testing

namespace cohort::testing {

TEST_CASE("A site started before the coordinator connects once it is up, and rides "
          "through a coordinator restart",
          "[federation][reconnect]") {
  Federation fed({"site-a"});
  fed.config().rounds.count = 1;
  fed.config().rounds.min_clients = 1;
  // Reserve a port: start once, note the port, stop, and reuse it for both runs below.
  fed.Start();
  const int port = fed.coordinator().port();
  fed.StopCoordinator();
  fed.config().listen = "127.0.0.1:" + std::to_string(port);

  config::ClientConfig site_config = fed.ClientConfigFor("site-a");
  site_config.coordinator = "127.0.0.1:" + std::to_string(port);
  site_config.exit_when_done = false;  // a daemon that outlives one federation run
  auto trainer = std::make_unique<ScriptedTrainer>(1.0f, 10);
  ScriptedTrainer* trainer_view = trainer.get();
  ClientRunner site(site_config, std::move(trainer));
  absl::SleepFor(absl::Milliseconds(300));  // the site is already dialling, and failing

  {
    auto first = server::Coordinator::Create(fed.config());
    REQUIRE(first.ok());
    REQUIRE((*first)->Start().ok());
    REQUIRE((*first)->Wait().ok());
    (*first)->Shutdown();
  }
  CHECK(trainer_view->tasks() == 1);

  // Same port, same state: one more round. The site reconnects on its own.
  config::CoordinatorConfig second_config = fed.config();
  second_config.rounds.count = 2;
  auto second = server::Coordinator::Create(second_config);
  REQUIRE(second.ok());
  REQUIRE((*second)->Start().ok());
  REQUIRE((*second)->Wait().ok());
  (*second)->Shutdown();
  CHECK(trainer_view->tasks() == 2);
  CHECK(site.client().sessions_opened() >= 2);
}

}  // namespace cohort::testing

namespace cohort::testing {

TEST_CASE("Stopping a site cancels its transfer under way, and nothing half-sent is counted",
          "[federation][reconnect]") {
  Federation fed({"site-a"});
  fed.config().rounds.count = 1;
  fed.config().rounds.min_clients = 1;
  fed.config().rounds.stage_timeout = absl::Seconds(2);
  fed.Start();
  auto trainer = std::make_unique<ScriptedTrainer>(1.0f, 10);
  ScriptedTrainer* trainer_view = trainer.get();
  ClientRunner site(fed.ClientConfigFor("site-a"), std::move(trainer));
  // Stop arrives while the site trains: the upload that follows is cancelled at once.
  trainer_view->before_train = [&site](int) { site.client().Stop(); };
  CHECK(absl::IsCancelled(site.Join()));
  CHECK(trainer_view->tasks() == 1);
  fed.StopCoordinator();
  CHECK(ReadRounds(fed.state_dir(), true).empty());
}

}  // namespace cohort::testing

namespace cohort::testing {

TEST_CASE("Every session starts with Welcome, even when its arrival starts a round",
          "[federation]") {
  // SELECT waits for every site, so each time site-b joins, its registration starts a round
  // at once, racing the session's Welcome. Before Welcome moved ahead of registration, a task
  // could be pushed first and the site's session broke; that race was seen under parallel
  // ctest load but is too narrow to hit reliably here, so this pins the behaviour rather than
  // reproducing the old failure every time.
  Federation fed({"site-a", "site-b"});
  fed.config().rounds.count = 100000;
  fed.config().rounds.min_clients = 1;
  fed.config().rounds.select_timeout = absl::Seconds(30);
  fed.config().rounds.stage_timeout = absl::Milliseconds(150);
  fed.Start();
  ClientRunner a(fed.ClientConfigFor("site-a"), std::make_unique<ScriptedTrainer>(0.0f, 10));
  int welcomed = 0;
  for (int attempt = 0; attempt < 30; ++attempt) {
    ManualSite b(fed.ChannelFor("site-b"));
    if (b.Connect()) ++welcomed;  // Connect() requires Welcome as the first message
    cohort::v1::CoordinatorMessage task;
    if (b.Next(&task)) CHECK(task.has_train());
  }
  CHECK(welcomed == 30);
  fed.StopCoordinator();
}

}  // namespace cohort::testing
