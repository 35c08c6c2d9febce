// Server optimizers (Reddi et al. 2021, Algorithm 2) against hand-computed trajectories, their
// persisted state, and the robust aggregators (coordinate median, trimmed mean).
#include "server/server_optimizer.h"

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "server/aggregator.h"
#include "tests/support/temp_dir.h"

namespace cohort::server {
namespace {

config::AggregationConfig Strategy(const std::string& strategy, double eta) {
  config::AggregationConfig config;
  config.strategy = strategy;
  config.server_learning_rate = eta;
  config.momentum = 0.9;
  config.beta1 = 0.9;
  config.beta2 = 0.99;
  config.tau = 0.1;
  return config;
}

// Runs `deltas` through a fresh optimizer from x = {0, 0}: coordinate 0 gets each delta,
// coordinate 1 its negation (so the trajectory must be mirrored). Returns the model, m and v
// after every step.
struct Trajectory {
  std::vector<float> x, m, v;  // coordinate 0 after each step
};
Trajectory Run(const std::string& strategy, double eta, const std::vector<float>& deltas) {
  ServerOptimizer optimizer(Strategy(strategy, eta), 2);
  std::vector<float> x = {0.0f, 0.0f};
  Trajectory out;
  uint64_t round = 0;
  for (float d : deltas) {
    ServerOptimizer::Step step = optimizer.Propose(++round, x, {d, -d});
    CHECK(step.model[1] == -step.model[0]);
    CHECK(step.state.round == round);
    CHECK(step.state.steps == round);
    x = step.model;
    out.x.push_back(x[0]);
    out.m.push_back(step.state.m.empty() ? 0.0f : step.state.m[0]);
    out.v.push_back(step.state.v.empty() ? 0.0f : step.state.v[0]);
    optimizer.Commit(std::move(step.state));
  }
  return out;
}

}  // namespace

TEST_CASE("FedAvg on the server adds eta times the aggregated delta", "[server][optimizer]") {
  ServerOptimizer optimizer(Strategy("fedavg", 0.5), 2);
  CHECK_FALSE(optimizer.stateful());
  ServerOptimizer::Step step = optimizer.Propose(1, {1.0f, 2.0f}, {2.0f, -4.0f});
  CHECK(step.model == std::vector<float>{2.0f, 0.0f});
  CHECK(step.state.rule == "fedavg");
  CHECK(step.state.m.empty());
  CHECK(step.state.v.empty());
}

TEST_CASE("The robust strategies fold their delta in with the FedAvg rule",
          "[server][optimizer]") {
  CHECK(ServerOptimizer::RuleFor("coordinate_median") == "fedavg");
  CHECK(ServerOptimizer::RuleFor("trimmed_mean") == "fedavg");
  CHECK(ServerOptimizer::RuleFor("fedadam") == "fedadam");
}

TEST_CASE("FedAvgM follows m = beta m + delta, x += eta m", "[server][optimizer]") {
  // beta 0.9, eta 1: m = 1, 1.9, 1.71 - 2 = -0.29; x = 1, 2.9, 2.61.
  Trajectory t = Run("fedavgm", 1.0, {1.0f, 1.0f, -2.0f});
  CHECK(t.m[0] == Approx(1.0));
  CHECK(t.m[1] == Approx(1.9));
  CHECK(t.m[2] == Approx(-0.29));
  CHECK(t.x[0] == Approx(1.0));
  CHECK(t.x[1] == Approx(2.9));
  CHECK(t.x[2] == Approx(2.61));
}

TEST_CASE("FedAdagrad sums squared deltas into v, starting from tau squared",
          "[server][optimizer]") {
  // beta1 0.9, tau 0.1, eta 0.5; v0 = 0.01, m0 = 0.
  // step 1: m = 0.1, v = 1.01, x = 0.5 * 0.1 / (sqrt(1.01) + 0.1) = 0.045249378
  // step 2: m = 0.19, v = 2.01, x += 0.5 * 0.19 / (sqrt(2.01) + 0.1) -> 0.107842251
  // step 3: m = 0.171 - 0.2 = -0.029, v = 6.01, x -> 0.102159386
  Trajectory t = Run("fedadagrad", 0.5, {1.0f, 1.0f, -2.0f});
  CHECK(t.v[0] == Approx(1.01));
  CHECK(t.v[1] == Approx(2.01));
  CHECK(t.v[2] == Approx(6.01));
  CHECK(t.m[2] == Approx(-0.029));
  CHECK(t.x[0] == Approx(0.0452493781));
  CHECK(t.x[1] == Approx(0.1078422508));
  CHECK(t.x[2] == Approx(0.1021593863));
}

TEST_CASE("FedAdam keeps an exponential average of squared deltas in v",
          "[server][optimizer]") {
  // beta2 0.99: v = 0.99 * 0.01 + 0.01 * 1 = 0.0199, then 0.029701, then 0.06940399.
  // x = 0.5 * 0.1 / (sqrt(0.0199) + 0.1) = 0.207410908, then 0.556239859, 0.516344014.
  Trajectory t = Run("fedadam", 0.5, {1.0f, 1.0f, -2.0f});
  CHECK(t.v[0] == Approx(0.0199));
  CHECK(t.v[1] == Approx(0.029701));
  CHECK(t.v[2] == Approx(0.06940399));
  CHECK(t.m[1] == Approx(0.19));
  CHECK(t.x[0] == Approx(0.2074109081));
  CHECK(t.x[1] == Approx(0.5562398590));
  CHECK(t.x[2] == Approx(0.5163440142));
}

TEST_CASE("FedYogi moves v additively toward the squared delta", "[server][optimizer]") {
  SECTION("v below delta squared grows by (1 - beta2) delta^2") {
    // v = 0.01 + 0.01 * 1 = 0.02, then 0.03, then 0.03 + 0.01 * 4 = 0.07.
    Trajectory t = Run("fedyogi", 0.5, {1.0f, 1.0f, -2.0f});
    CHECK(t.v[0] == Approx(0.02));
    CHECK(t.v[1] == Approx(0.03));
    CHECK(t.v[2] == Approx(0.07));
    CHECK(t.x[0] == Approx(0.2071067812));  // 0.05 / (sqrt(0.02) + 0.1)
    CHECK(t.x[1] == Approx(0.5548309148));
    CHECK(t.x[2] == Approx(0.5150585914));
  }
  SECTION("v above delta squared shrinks by (1 - beta2) delta^2") {
    // After 0.02, a delta of 0.05: v - d^2 = 0.0175 > 0, v = 0.02 - 0.01 * 0.0025 = 0.019975.
    Trajectory t = Run("fedyogi", 0.5, {1.0f, 0.05f, 0.05f});
    CHECK(t.v[1] == Approx(0.019975));
    CHECK(t.v[2] == Approx(0.01995));
    CHECK(t.m[1] == Approx(0.095));
    CHECK(t.x[1] == Approx(0.4039303062));
    CHECK(t.x[2] == Approx(0.5914993734));
  }
}

TEST_CASE("Propose leaves the optimizer unchanged until Commit", "[server][optimizer]") {
  ServerOptimizer optimizer(Strategy("fedadam", 0.5), 1);
  ServerOptimizer::Step first = optimizer.Propose(1, {0.0f}, {1.0f});
  ServerOptimizer::Step again = optimizer.Propose(2, {0.0f}, {1.0f});
  CHECK(again.model == first.model);  // the first proposal (an aborted round) left no trace
  CHECK(optimizer.state().steps == 0);
  optimizer.Commit(std::move(first.state));
  CHECK(optimizer.state().steps == 1);
  CHECK(optimizer.Propose(2, {0.0f}, {1.0f}).model != again.model);
}

TEST_CASE("Server optimizer state survives an encode and decode exactly",
          "[server][optimizer]") {
  ServerOptimizerState state;
  state.rule = "fedyogi";
  state.round = 17;
  state.steps = 9;
  state.m = {0.5f, -1.25f, 3e-8f};
  state.v = {0.01f, 2.0f, 1e30f};
  const std::string bytes = EncodeServerOptimizerState(state);
  absl::StatusOr<ServerOptimizerState> decoded = DecodeServerOptimizerState(bytes);
  REQUIRE(decoded.ok());
  CHECK(decoded->rule == "fedyogi");
  CHECK(decoded->round == 17);
  CHECK(decoded->steps == 9);
  CHECK(decoded->m == state.m);
  CHECK(decoded->v == state.v);

  testing::TempDir dir;
  REQUIRE(WriteServerOptimizerState(dir.File("round-000017.opt"), state).ok());
  absl::StatusOr<ServerOptimizerState> read = ReadServerOptimizerState(dir.File("round-000017.opt"));
  REQUIRE(read.ok());
  CHECK(read->v == state.v);
  CHECK(EncodeServerOptimizerState(*read) == bytes);  // the streamed write is the same bytes
}

TEST_CASE("A damaged or truncated server optimizer state is refused", "[server][optimizer]") {
  ServerOptimizerState state;
  state.rule = "fedadam";
  state.m = {1.0f, 2.0f};
  state.v = {3.0f, 4.0f};
  const std::string bytes = EncodeServerOptimizerState(state);
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x01;
  CHECK(absl::IsDataLoss(DecodeServerOptimizerState(flipped).status()));
  CHECK(absl::IsDataLoss(DecodeServerOptimizerState(bytes.substr(0, bytes.size() - 5)).status()));
  CHECK(absl::IsDataLoss(DecodeServerOptimizerState("").status()));
  CHECK(absl::IsDataLoss(DecodeServerOptimizerState("not a state file at all, really not").status()));
  testing::TempDir dir;
  CHECK(absl::IsNotFound(ReadServerOptimizerState(dir.File("missing.opt")).status()));
}

TEST_CASE("Resume continues the same rule, starts afresh after a stateless one and refuses "
          "another stateful rule's state",
          "[server][optimizer]") {
  ServerOptimizerState adam;
  adam.rule = "fedadam";
  adam.round = 4;
  adam.steps = 4;
  adam.m = {0.5f, 0.5f};
  adam.v = {0.25f, 0.25f};

  ServerOptimizer same(Strategy("fedadam", 0.5), 2);
  REQUIRE(same.Resume(adam).ok());
  CHECK(same.state().steps == 4);
  CHECK(same.state().m == adam.m);

  ServerOptimizer yogi(Strategy("fedyogi", 0.5), 2);
  absl::Status refused = yogi.Resume(adam);
  CHECK(absl::IsFailedPrecondition(refused));
  CHECK_THAT(std::string(refused.message()), Catch::Contains("fedadam") && Catch::Contains("fedyogi"));

  ServerOptimizerState stateless;
  stateless.rule = "fedavg";
  stateless.round = 4;
  stateless.steps = 4;
  ServerOptimizer fresh(Strategy("fedadam", 0.5), 2);
  REQUIRE(fresh.Resume(stateless).ok());
  CHECK(fresh.state().steps == 0);
  CHECK(fresh.state().m.empty());

  ServerOptimizer to_fedavg(Strategy("fedavg", 1.0), 2);
  REQUIRE(to_fedavg.Resume(adam).ok());
  CHECK(to_fedavg.state().m.empty());

  ServerOptimizer wrong_size(Strategy("fedadam", 0.5), 3);
  CHECK(absl::IsDataLoss(wrong_size.Resume(adam)));
}

// --- Robust aggregation ------------------------------------------------------------------

TEST_CASE("Coordinate median: the middle value per coordinate, unweighted",
          "[server][robust]") {
  RobustAggregator median(3, RobustAggregator::Statistic::kMedian);
  REQUIRE(median.Add(1, {1.0f, -5.0f, 0.0f}).ok());
  REQUIRE(median.Add(1000, {100.0f, 2.0f, 0.0f}).ok());  // weights are ignored
  REQUIRE(median.Add(1, {2.0f, 3.0f, 7.0f}).ok());
  CHECK(median.count() == 3);
  CHECK(median.Delta() == std::vector<float>{2.0f, 2.0f, 0.0f});
}

TEST_CASE("Coordinate median of an even count averages the two middle values, ties included",
          "[server][robust]") {
  RobustAggregator median(2, RobustAggregator::Statistic::kMedian);
  REQUIRE(median.Add(1, {1.0f, 5.0f}).ok());
  REQUIRE(median.Add(1, {2.0f, 5.0f}).ok());
  REQUIRE(median.Add(1, {3.0f, 5.0f}).ok());
  REQUIRE(median.Add(1, {1e9f, 1.0f}).ok());
  CHECK(median.Delta() == std::vector<float>{2.5f, 5.0f});
}

TEST_CASE("Trimmed mean drops floor(fraction x n) values from each end",
          "[server][robust]") {
  SECTION("one outlier at each end of five") {
    RobustAggregator trimmed(1, RobustAggregator::Statistic::kTrimmedMean, 0.2);
    for (float v : {-50.0f, 1.0f, 2.0f, 3.0f, 100.0f}) REQUIRE(trimmed.Add(1, {v}).ok());
    CHECK(trimmed.Delta() == std::vector<float>{2.0f});
  }
  SECTION("a fraction that trims nothing of four is the plain mean") {
    RobustAggregator trimmed(1, RobustAggregator::Statistic::kTrimmedMean, 0.2);
    for (float v : {1.0f, 2.0f, 3.0f, 102.0f}) REQUIRE(trimmed.Add(1, {v}).ok());
    CHECK(trimmed.Delta() == std::vector<float>{27.0f});
  }
  SECTION("ties survive trimming") {
    RobustAggregator trimmed(1, RobustAggregator::Statistic::kTrimmedMean, 0.25);
    for (float v : {4.0f, 4.0f, 4.0f, -1000.0f}) REQUIRE(trimmed.Add(1, {v}).ok());
    CHECK(trimmed.Delta() == std::vector<float>{4.0f});
  }
  SECTION("one site alone is its own delta") {
    RobustAggregator trimmed(2, RobustAggregator::Statistic::kTrimmedMean, 0.4);
    REQUIRE(trimmed.Add(3, {0.5f, -0.5f}).ok());
    CHECK(trimmed.Delta() == std::vector<float>{0.5f, -0.5f});
  }
}

TEST_CASE("MakeAggregator picks the aggregator of the strategy", "[server][robust]") {
  config::AggregationConfig config;
  config.strategy = "trimmed_mean";
  config.trim_fraction = 0.25;
  std::unique_ptr<Aggregator> trimmed = MakeAggregator(config, 1);
  for (float v : {0.0f, 1.0f, 2.0f, 1e6f}) REQUIRE(trimmed->Add(1, {v}).ok());
  CHECK(trimmed->Delta() == std::vector<float>{1.5f});
  config.strategy = "fedadam";
  std::unique_ptr<Aggregator> mean = MakeAggregator(config, 1);
  REQUIRE(mean->Add(1, {1.0f}).ok());
  REQUIRE(mean->Add(3, {5.0f}).ok());
  CHECK(mean->Delta() == std::vector<float>{4.0f});
}

}  // namespace cohort::server
