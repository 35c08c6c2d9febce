// aggregation.strategy and its hyperparameters (server optimizers, robust aggregation), and
// training.proximal_mu (FedProx).
#include <string>

#include <catch2/catch.hpp>

#include "common/config/coordinator_config.h"
#include "tests/support/coordinator_config_fixture.h"
#include "tests/support/status_assertions.h"

namespace cohort::config {
namespace {

using ::cohort::testing::RequireInvalid;

// Three sites, min_clients 2 (secure aggregation needs them).
class StrategyConfig : public ::cohort::testing::CoordinatorConfigFixture {
 public:
  StrategyConfig()
      : CoordinatorConfigFixture("[hospital-a, hospital-b, hospital-c]",
                                 "{count: 1, min_clients: 2}") {}
};

}  // namespace

TEST_CASE("Without aggregation settings the strategy is FedAvg with server learning rate 1",
          "[config]") {
  absl::StatusOr<CoordinatorConfig> config = StrategyConfig().Parse("");
  REQUIRE(config.ok());
  CHECK(config->aggregation.strategy == "fedavg");
  CHECK(config->aggregation.server_learning_rate == 1.0);
  CHECK(config->training.proximal_mu == 0.0);
}

TEST_CASE("FedAdam reads its hyperparameters", "[config]") {
  absl::StatusOr<CoordinatorConfig> config = StrategyConfig().Parse(
      "aggregation: {strategy: fedadam, server_learning_rate: 0.05, beta1: 0.8, beta2: 0.999, "
      "tau: 0.0001}\n");
  REQUIRE(config.ok());
  CHECK(config->aggregation.strategy == "fedadam");
  CHECK(config->aggregation.server_learning_rate == 0.05);
  CHECK(config->aggregation.beta1 == 0.8);
  CHECK(config->aggregation.beta2 == 0.999);
  CHECK(config->aggregation.tau == 0.0001);
}

TEST_CASE("The adaptive strategies default to eta 0.01, beta1 0.9, beta2 0.99, tau 0.001",
          "[config]") {
  for (const char* strategy : {"fedadagrad", "fedadam", "fedyogi"}) {
    INFO(strategy);
    absl::StatusOr<CoordinatorConfig> config =
        StrategyConfig().Parse(std::string("aggregation: {strategy: ") + strategy + "}\n");
    REQUIRE(config.ok());
    CHECK(config->aggregation.server_learning_rate == 0.01);
    CHECK(config->aggregation.beta1 == 0.9);
    CHECK(config->aggregation.beta2 == 0.99);
    CHECK(config->aggregation.tau == 0.001);
  }
}

TEST_CASE("FedAvgM reads momentum, and the robust strategies parse with secure aggregation off",
          "[config]") {
  absl::StatusOr<CoordinatorConfig> momentum = StrategyConfig().Parse(
      "aggregation: {strategy: fedavgm, momentum: 0.5, server_learning_rate: 2}\n");
  REQUIRE(momentum.ok());
  CHECK(momentum->aggregation.momentum == 0.5);
  CHECK(momentum->aggregation.server_learning_rate == 2.0);
  absl::StatusOr<CoordinatorConfig> median =
      StrategyConfig().Parse("aggregation: {strategy: coordinate_median}\n");
  REQUIRE(median.ok());
  CHECK(median->aggregation.strategy == "coordinate_median");
  absl::StatusOr<CoordinatorConfig> trimmed = StrategyConfig().Parse(
      "aggregation: {strategy: trimmed_mean, trim_fraction: 0.2, secure: {enabled: false}}\n");
  REQUIRE(trimmed.ok());
  CHECK(trimmed->aggregation.trim_fraction == 0.2);
}

TEST_CASE("Server optimizers run with secure aggregation on", "[config]") {
  absl::StatusOr<CoordinatorConfig> config = StrategyConfig().Parse(
      "aggregation: {strategy: fedyogi, secure: {enabled: true}}\n");
  REQUIRE(config.ok());
  CHECK(config->aggregation.secure.enabled);
}

TEST_CASE("Robust aggregation with secure aggregation on is refused with the reason",
          "[config]") {
  for (const char* strategy : {"coordinate_median", "trimmed_mean"}) {
    INFO(strategy);
    RequireInvalid(StrategyConfig()
                       .Parse(std::string("aggregation:\n  strategy: ") + strategy +
                              "\n  secure: {enabled: true}\n")
                       .status(),
                   {"coord.yaml:9:", "aggregation.strategy",
                    "needs each site's update, which secure aggregation hides"});
  }
}

TEST_CASE("A hyperparameter of another strategy is refused, naming the strategies it is for",
          "[config]") {
  RequireInvalid(StrategyConfig().Parse("aggregation:\n  strategy: fedavg\n  beta1: 0.9\n").status(),
                 {"coord.yaml:10:", "aggregation.beta1", "applies only to fedadagrad, fedadam "
                                                         "and fedyogi, not to strategy fedavg"});
  RequireInvalid(StrategyConfig().Parse("aggregation: {strategy: fedadagrad, beta2: 0.9}\n").status(),
                 {"aggregation.beta2", "applies only to fedadam and fedyogi"});
  RequireInvalid(StrategyConfig().Parse("aggregation: {strategy: fedadam, momentum: 0.9}\n").status(),
                 {"aggregation.momentum", "applies only to fedavgm"});
  RequireInvalid(StrategyConfig().Parse("aggregation: {strategy: coordinate_median, "
                                        "trim_fraction: 0.1}\n").status(),
                 {"aggregation.trim_fraction", "applies only to trimmed_mean"});
  RequireInvalid(StrategyConfig().Parse("aggregation: {tau: 0.1}\n").status(),
                 {"aggregation.tau", "not to strategy fedavg"});
}

TEST_CASE("Out-of-range strategy hyperparameters are refused", "[config]") {
  StrategyConfig config;
  RequireInvalid(config.Parse("aggregation: {strategy: fedadam, beta1: 1.0}\n").status(),
                 {"aggregation.beta1", "must be below 1"});
  RequireInvalid(config.Parse("aggregation: {strategy: fedyogi, beta2: -0.1}\n").status(),
                 {"aggregation.beta2", "at least 0"});
  RequireInvalid(config.Parse("aggregation: {strategy: fedadam, tau: 0}\n").status(),
                 {"aggregation.tau", "greater than 0"});
  RequireInvalid(config.Parse("aggregation: {strategy: fedavg, server_learning_rate: 0}\n").status(),
                 {"aggregation.server_learning_rate", "greater than 0"});
  RequireInvalid(config.Parse("aggregation: {strategy: fedavgm, momentum: 1}\n").status(),
                 {"aggregation.momentum", "must be below 1"});
  RequireInvalid(config.Parse("aggregation: {strategy: trimmed_mean, trim_fraction: 0.5}\n").status(),
                 {"aggregation.trim_fraction", "must be below 0.5"});
  RequireInvalid(config.Parse("aggregation: {strategy: krum}\n").status(),
                 {"aggregation.strategy", "krum"});
}

TEST_CASE("training.proximal_mu sets FedProx's mu and must not be negative", "[config]") {
  absl::StatusOr<CoordinatorConfig> config =
      StrategyConfig().Parse("training: {proximal_mu: 0.01}\n");
  REQUIRE(config.ok());
  CHECK(config->training.proximal_mu == 0.01);
  RequireInvalid(StrategyConfig().Parse("training: {proximal_mu: -1}\n").status(),
                 {"training.proximal_mu", "at least 0"});
}

}  // namespace cohort::config
