// Server optimizers and robust aggregation through the whole stack (real gRPC and mutual TLS
// on 127.0.0.1, coordinator and scripted sites in-process): exact trajectories, resume across
// a coordinator restart from the persisted optimizer state, secure aggregation, outliers.
#include <cmath>
#include <filesystem>

#include <catch2/catch.hpp>

#include "server/server_optimizer.h"
#include "tests/integration/harness.h"

namespace cohort::testing {
namespace {

std::unique_ptr<ScriptedTrainer> Scripted(float delta, uint64_t examples) {
  return std::make_unique<ScriptedTrainer>(delta, examples);
}

void UseFedAdam(config::CoordinatorConfig& config) {
  config.aggregation.strategy = "fedadam";
  config.aggregation.server_learning_rate = 0.1;
  config.aggregation.beta1 = 0.9;
  config.aggregation.beta2 = 0.99;
  config.aggregation.tau = 1e-3;
}

// What `rounds` server steps of `config`'s optimizer make of `initial`, every round's
// aggregated delta being `delta` everywhere; also each step's state.
std::vector<float> Reference(const config::AggregationConfig& config,
                             const std::vector<float>& initial, float delta, int rounds,
                             std::vector<server::ServerOptimizerState>* states = nullptr) {
  server::ServerOptimizer optimizer(config, initial.size());
  std::vector<float> model = initial;
  const std::vector<float> deltas(initial.size(), delta);
  for (int r = 1; r <= rounds; ++r) {
    server::ServerOptimizer::Step step = optimizer.Propose(r, model, deltas);
    model = step.model;
    if (states != nullptr) states->push_back(step.state);
    optimizer.Commit(std::move(step.state));
  }
  return model;
}

std::string OptimizerStatePath(const std::string& state_dir, int round) {
  char name[64];
  std::snprintf(name, sizeof(name), "/checkpoints/round-%06d.opt", round);
  return state_dir + name;
}

}  // namespace

TEST_CASE("FedAdam over three rounds follows the reference trajectory exactly",
          "[federation][strategy]") {
  Federation fed({"site-a", "site-b"});
  fed.config().rounds.count = 3;
  UseFedAdam(fed.config());
  fed.Start();
  const std::vector<float> initial = fed.coordinator().GlobalModel();
  // Equal weights: the aggregated delta is (1 + 3) / 2 = 2 exactly, every round.
  ClientRunner a(fed.ClientConfigFor("site-a"), Scripted(1.0f, 10));
  ClientRunner b(fed.ClientConfigFor("site-b"), Scripted(3.0f, 10));
  REQUIRE(fed.coordinator().Wait().ok());
  REQUIRE(a.Join().ok());
  REQUIRE(b.Join().ok());

  std::vector<server::ServerOptimizerState> states;
  const std::vector<float> want = Reference(fed.config().aggregation, initial, 2.0f, 3, &states);
  CHECK(fed.coordinator().GlobalModel() == want);
  // The same by hand: m = 0.2, 0.38, 0.542; v = 0.99 v + 0.04 from 1e-6: x moves by
  // 0.1 m / (sqrt(v) + 1e-3) per round.
  double m = 0, v = 1e-6, x = initial[0];
  for (int r = 0; r < 3; ++r) {
    m = 0.9 * m + 0.1 * 2.0;
    v = 0.99 * v + 0.01 * 4.0;
    x += 0.1 * m / (std::sqrt(v) + 1e-3);
  }
  CHECK(fed.coordinator().GlobalModel()[0] == Approx(x).epsilon(1e-6));
  // Each committed round left its optimizer state next to its checkpoint.
  for (int r = 1; r <= 3; ++r) {
    auto saved = server::ReadServerOptimizerState(OptimizerStatePath(fed.state_dir(), r));
    REQUIRE(saved.ok());
    CHECK(saved->rule == "fedadam");
    CHECK(saved->round == static_cast<uint64_t>(r));
    CHECK(saved->steps == static_cast<uint64_t>(r));
    CHECK(saved->m == states[r - 1].m);
    CHECK(saved->v == states[r - 1].v);
  }
}

TEST_CASE("A coordinator restarted mid-run resumes FedAdam from its saved state and ends where "
          "an uninterrupted run ends",
          "[federation][strategy]") {
  Federation fed({"site-a"});
  fed.config().rounds.count = 2;
  fed.config().rounds.min_clients = 1;
  UseFedAdam(fed.config());
  fed.Start();
  const std::vector<float> initial = fed.coordinator().GlobalModel();
  {
    ClientRunner a(fed.ClientConfigFor("site-a"), Scripted(0.5f, 10));
    REQUIRE(fed.coordinator().Wait().ok());
    REQUIRE(a.Join().ok());
  }
  fed.StopCoordinator();

  config::CoordinatorConfig second = fed.config();
  second.rounds.count = 3;
  {
    // The state is needed: without it (or with a damaged copy) the coordinator refuses to
    // resume rather than restart the moments silently.
    const std::string path = OptimizerStatePath(fed.state_dir(), 2);
    const std::string aside = path + ".aside";
    std::filesystem::rename(path, aside);
    auto missing = server::Coordinator::Create(second);
    CHECK(absl::IsFailedPrecondition(missing.status()));
    CHECK_THAT(std::string(missing.status().message()),
               Catch::Contains("cannot resume fedadam from round 2") &&
                   Catch::Contains("round-000002.opt"));
    std::filesystem::copy_file(aside, path);
    std::filesystem::resize_file(path, std::filesystem::file_size(path) - 1);
    auto damaged = server::Coordinator::Create(second);
    CHECK(absl::IsFailedPrecondition(damaged.status()));
    std::filesystem::remove(path);
    std::filesystem::rename(aside, path);
    // Another stateful rule cannot continue from FedAdam's moments.
    config::CoordinatorConfig yogi = second;
    yogi.aggregation.strategy = "fedyogi";
    auto refused = server::Coordinator::Create(yogi);
    CHECK(absl::IsFailedPrecondition(refused.status()));
    CHECK_THAT(std::string(refused.status().message()), Catch::Contains("fedyogi cannot continue"));
  }

  auto coordinator = server::Coordinator::Create(second);
  REQUIRE(coordinator.ok());
  REQUIRE((*coordinator)->Start().ok());
  config::ClientConfig client_config = fed.ClientConfigFor("site-a");
  client_config.coordinator = "127.0.0.1:" + std::to_string((*coordinator)->port());
  ClientRunner a(client_config, Scripted(0.5f, 10));
  REQUIRE((*coordinator)->Wait().ok());
  REQUIRE(a.Join().ok());
  REQUIRE(ReadRounds(fed.state_dir(), true).size() == 3);

  const std::vector<float> uninterrupted = Reference(second.aggregation, initial, 0.5f, 3);
  CHECK((*coordinator)->GlobalModel() == uninterrupted);
  // Restarting the moments at the restart would have ended elsewhere.
  const std::vector<float> two = Reference(second.aggregation, initial, 0.5f, 2);
  CHECK(Reference(second.aggregation, two, 0.5f, 1) != uninterrupted);
  (*coordinator)->Shutdown();
}

TEST_CASE("FedAdam under secure aggregation matches the plain run up to quantization error",
          "[secagg_integration][strategy]") {
  Federation fed({"site-a", "site-b", "site-c"});
  auto& secure = fed.config().aggregation.secure;
  secure.enabled = true;
  secure.bits = 20;
  secure.clip_range = 1.0;
  secure.stage_timeout = absl::Seconds(20);
  fed.config().rounds.min_clients = 2;
  fed.config().rounds.count = 2;
  UseFedAdam(fed.config());
  fed.Start();
  const std::vector<float> initial = fed.coordinator().GlobalModel();
  ClientRunner a(fed.ClientConfigFor("site-a"), Scripted(0.5f, 10));
  ClientRunner b(fed.ClientConfigFor("site-b"), Scripted(-0.25f, 20));
  ClientRunner c(fed.ClientConfigFor("site-c"), Scripted(0.125f, 30));
  REQUIRE(fed.coordinator().Wait().ok());
  for (ClientRunner* runner : {&a, &b, &c}) REQUIRE(runner->Join().ok());
  // The plain weighted mean: (5 - 5 + 3.75) / 60 = 0.0625. Quantization (step ~1.9e-6 on
  // (w/cap) delta) moves the decoded mean by a few 1e-6, and Adam's step
  // m / (sqrt(v) + tau) barely depends on it while |delta| >> tau.
  const std::vector<float> want = Reference(fed.config().aggregation, initial, 0.0625f, 2);
  const std::vector<float> got = fed.coordinator().GlobalModel();
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    REQUIRE(got[i] == Approx(want[i]).margin(1e-5));
    REQUIRE(got[i] != Approx(initial[i]).margin(0.05));  // two steps of about eta each
  }
}

TEST_CASE("Coordinate median and trimmed mean end at the honest sites' value despite an "
          "outlier site",
          "[federation][strategy][robust]") {
  for (const std::string strategy : {"coordinate_median", "trimmed_mean"}) {
    INFO(strategy);
    Federation fed({"site-a", "site-b", "site-c"});
    fed.config().rounds.count = 2;
    fed.config().aggregation.strategy = strategy;
    fed.config().aggregation.trim_fraction = 0.34;  // one of three from each end
    fed.Start();
    const std::vector<float> initial = fed.coordinator().GlobalModel();
    // The outlier also claims a huge example count: robust aggregation is unweighted.
    ClientRunner a(fed.ClientConfigFor("site-a"), Scripted(0.25f, 10));
    ClientRunner b(fed.ClientConfigFor("site-b"), Scripted(0.25f, 10));
    ClientRunner c(fed.ClientConfigFor("site-c"), Scripted(1000.0f, 1000000));
    REQUIRE(fed.coordinator().Wait().ok());
    for (ClientRunner* runner : {&a, &b, &c}) REQUIRE(runner->Join().ok());
    const std::vector<float> model = fed.coordinator().GlobalModel();
    for (size_t i = 0; i < model.size(); ++i) {
      REQUIRE(model[i] == Approx(initial[i] + 2 * 0.25f).margin(1e-6));
    }
    std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
    REQUIRE(rounds.size() == 2);
    CHECK(rounds[0].participants.size() == 3);  // the outlier took part, and was outvoted
  }
}

TEST_CASE("The coordinator sends training.proximal_mu with every task",
          "[federation][strategy][fedprox]") {
  Federation fed({"site-a"});
  fed.config().rounds.count = 2;
  fed.config().rounds.min_clients = 1;
  fed.config().training.proximal_mu = 0.25;
  fed.Start();
  auto trainer = Scripted(0.0f, 10);
  std::vector<double> seen;
  trainer->on_params = [&seen](const client::TrainingParams& params) {
    seen.push_back(params.proximal_mu);
  };
  ClientRunner a(fed.ClientConfigFor("site-a"), std::move(trainer));
  REQUIRE(fed.coordinator().Wait().ok());
  REQUIRE(a.Join().ok());
  CHECK(seen == std::vector<double>{0.25, 0.25});
}

}  // namespace cohort::testing
