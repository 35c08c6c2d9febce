// The coordinator config's operational keys: http (status page, /metrics), health (the
// plaintext gRPC health port for Kubernetes probes) and admins (who may call the Admin API).
#include <string>

#include <catch2/catch.hpp>

#include "common/config/coordinator_config.h"
#include "tests/support/coordinator_config_fixture.h"
#include "tests/support/status_assertions.h"

namespace cohort::config {
namespace {

using ::cohort::testing::RequireInvalid;
using OperationsConfig = ::cohort::testing::CoordinatorConfigFixture;

}  // namespace

TEST_CASE("Without http, health and admins the coordinator opens no extra port and any "
          "admin certificate of the CA may call the Admin API",
          "[config]") {
  absl::StatusOr<CoordinatorConfig> config = OperationsConfig().Parse("");
  REQUIRE(config.ok());
  CHECK(config->http.listen.empty());
  CHECK(config->health_listen.empty());
  CHECK(config->admins.empty());
}

TEST_CASE("http, health and admins parse to the expected values", "[config]") {
  absl::StatusOr<CoordinatorConfig> config = OperationsConfig().Parse(
      "http: {listen: 127.0.0.1:9464}\n"
      "health: {listen: 0.0.0.0:50052}\n"
      "admins: [ops, oncall.bob]\n");
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->http.listen == "127.0.0.1:9464");
  CHECK(config->health_listen == "0.0.0.0:50052");
  CHECK(config->admins == std::vector<std::string>{"ops", "oncall.bob"});
}

TEST_CASE("A malformed http or health address is refused with the key's path", "[config]") {
  RequireInvalid(OperationsConfig().Parse("http: {listen: localhost}\n").status(),
                 {"coord.yaml", "http.listen"});
  RequireInvalid(OperationsConfig().Parse("health: {listen: 127.0.0.1:70000}\n").status(),
                 {"coord.yaml", "health.listen"});
}

TEST_CASE("An unknown key under http is refused, not ignored", "[config]") {
  RequireInvalid(OperationsConfig().Parse("http: {listen: 127.0.0.1:9464, port: 1}\n").status(),
                 {"http.port"});
}

TEST_CASE("The gRPC, HTTP and health ports must differ", "[config]") {
  RequireInvalid(OperationsConfig().Parse("http: {listen: 127.0.0.1:7443}\n").status(),
                 {"http.listen must differ from listen"});
  RequireInvalid(OperationsConfig()
                     .Parse("http: {listen: 127.0.0.1:9464}\nhealth: {listen: 127.0.0.1:9464}\n")
                     .status(),
                 {"health.listen must differ from http.listen"});
  // Port 0 picks a different free port for each, so it is allowed everywhere.
  OperationsConfig zero;
  absl::StatusOr<CoordinatorConfig> config =
      zero.Parse("http: {listen: 127.0.0.1:0}\nhealth: {listen: 127.0.0.1:0}\n");
  CHECK(config.ok());
}

TEST_CASE("An admin name that is not a valid identity is refused", "[config]") {
  RequireInvalid(OperationsConfig().Parse("admins: [Ops Team]\n").status(),
                 {"admins", "'Ops Team' is not a valid admin name"});
}

}  // namespace cohort::config

namespace cohort::config {

TEST_CASE("evaluation.every and early_stopping parse, with defaults when absent", "[config]") {
  absl::StatusOr<CoordinatorConfig> plain = OperationsConfig().Parse("");
  REQUIRE(plain.ok());
  CHECK(plain->evaluation.every == 1);
  CHECK(plain->evaluation.early_stopping_metric.empty());
  absl::StatusOr<CoordinatorConfig> config = OperationsConfig().Parse(
      "evaluation: {every: 5, early_stopping: {metric: auc, patience: 4, min_delta: 0.001}}\n");
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->evaluation.every == 5);
  CHECK(config->evaluation.early_stopping_metric == "auc");
  CHECK(config->evaluation.patience == 4);
  CHECK(config->evaluation.min_delta == 0.001);
  absl::StatusOr<CoordinatorConfig> defaults =
      OperationsConfig().Parse("evaluation: {early_stopping: {}}\n");
  REQUIRE(defaults.ok());
  CHECK(defaults->evaluation.early_stopping_metric == "accuracy");
  CHECK(defaults->evaluation.patience == 3);
}

TEST_CASE("A bad evaluation schedule or early-stopping metric is refused", "[config]") {
  RequireInvalid(OperationsConfig().Parse("evaluation: {every: 0}\n").status(),
                 {"evaluation.every"});
  RequireInvalid(
      OperationsConfig().Parse("evaluation: {early_stopping: {metric: f1}}\n").status(),
      {"evaluation.early_stopping.metric"});
  RequireInvalid(
      OperationsConfig().Parse("evaluation: {early_stopping: {patience: 0}}\n").status(),
      {"evaluation.early_stopping.patience"});
}

}  // namespace cohort::config

namespace cohort::config {

TEST_CASE("Coordinator keepalive has defaults and reads time and timeout",
          "[config][keepalive]") {
  absl::StatusOr<CoordinatorConfig> plain = OperationsConfig().Parse("");
  REQUIRE(plain.ok());
  CHECK(plain->keepalive.time == absl::Seconds(30));
  CHECK(plain->keepalive.timeout == absl::Seconds(20));
  absl::StatusOr<CoordinatorConfig> set =
      OperationsConfig().Parse("keepalive: {time: 15s, timeout: 5s}\n");
  INFO(set.status().ToString());
  REQUIRE(set.ok());
  CHECK(set->keepalive.time == absl::Seconds(15));
  CHECK(set->keepalive.timeout == absl::Seconds(5));
}

TEST_CASE("Coordinator keepalive refuses out-of-range durations and unknown keys",
          "[config][keepalive]") {
  RequireInvalid(OperationsConfig().Parse("keepalive: {time: 1s}\n").status(),
                 {"coord.yaml", "keepalive.time", "between 10s and 2h"});
  RequireInvalid(OperationsConfig().Parse("keepalive: {timeout: 500ms}\n").status(),
                 {"keepalive.timeout", "between 1s and 10m"});
  RequireInvalid(OperationsConfig().Parse("keepalive: {time: 20s, ping: 1}\n").status(),
                 {"keepalive.ping", "unknown key"});
}

}  // namespace cohort::config
