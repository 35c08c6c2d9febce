// Unit tests for common/config: the strict YAML reader and the coordinator / client configs.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "tests/support/status_assertions.h"
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/config/client_config.h"
#include "common/config/coordinator_config.h"
#include "common/config/yaml_reader.h"
#include "tests/support/temp_dir.h"

namespace cohort::config {
namespace {

using ::cohort::testing::RequireInvalid;

using cohort::testing::TempDir;
using cohort::testing::WriteTextFile;

constexpr char kSource[] = "coord.yaml";
constexpr char kClientSource[] = "client.yaml";

// A directory holding every file the configs below refer to (paths relative to it).
class ConfigDir {
 public:
  ConfigDir() {
    WriteTextFile(dir_.File("tls/ca.pem"), "ca\n");
    WriteTextFile(dir_.File("tls/coordinator.pem"), "cert\n");
    WriteTextFile(dir_.File("tls/coordinator.key"), "key\n");
    WriteTextFile(dir_.File("tls/site.pem"), "cert\n");
    WriteTextFile(dir_.File("tls/site.key"), "key\n");
    WriteTextFile(dir_.File("data/site.csv"), "x,malignant\n1,0\n");
    // Private keys must not be readable by others (the configs refuse them otherwise).
    for (const char* key : {"tls/coordinator.key", "tls/site.key"}) {
      REQUIRE(chmod(dir_.File(key).c_str(), 0600) == 0);
    }
  }
  const std::string& path() const { return dir_.path(); }
  std::string File(const std::string& name) const { return dir_.File(name); }

 private:
  TempDir dir_;
};

// Line numbers of this text are referred to by the tests below: keep them in sync.
//  1 federation       5 cert        9 model      13 rounds
//  2 listen           6 key        10 arch       14 count
//  3 tls              7 sites      11 inputs
//  4 ca               8 state_dir  12 classes
constexpr char kMinimalCoordinator[] =
    "federation: demo\n"
    "listen: 0.0.0.0:7443\n"
    "tls:\n"
    "  ca: tls/ca.pem\n"
    "  cert: tls/coordinator.pem\n"
    "  key: tls/coordinator.key\n"
    "sites: [hospital-a, hospital-b]\n"
    "state_dir: state\n"
    "model:\n"
    "  arch: logreg\n"
    "  inputs: 30\n"
    "  classes: 2\n"
    "rounds:\n"
    "  count: 5\n";

constexpr char kFullCoordinator[] =
    "federation: breast-cancer.v1\n"
    "listen: 127.0.0.1:0\n"
    "tls:\n"
    "  ca: tls/ca.pem\n"
    "  cert: tls/coordinator.pem\n"
    "  key: tls/coordinator.key\n"
    "sites:\n"
    "  - hospital-a\n"
    "  - hospital_b\n"
    "  - clinic.3\n"
    "state_dir: /var/lib/cohort\n"
    "model:\n"
    "  arch: mlp\n"
    "  inputs: 30\n"
    "  hidden: [16, 8]\n"
    "  classes: 3\n"
    "rounds:\n"
    "  count: 20\n"
    "  min_clients: 2\n"
    "  stage_timeout: 1m30s\n"
    "  select_timeout: 500ms\n"
    "training:\n"
    "  epochs: 3\n"
    "  batch_size: 64\n"
    "  lr: 0.05\n"
    "  optimizer: sgd\n"
    "aggregation:\n"
    "  strategy: fedavg\n"
    "limits:\n"
    "  max_concurrent_uploads: 4\n"
    "  max_chunk_bytes: 65536\n"
    "logging:\n"
    "  json: true\n"
    "  level: debug\n"
    "seed: 42\n";

constexpr char kMinimalClient[] =
    "site: hospital-a\n"
    "coordinator: coord.example.org:7443\n"
    "tls:\n"
    "  ca: tls/ca.pem\n"
    "  cert: tls/site.pem\n"
    "  key: tls/site.key\n"
    "data:\n"
    "  path: data/site.csv\n"
    "  label: malignant\n";

// Returns `text` with the single occurrence of `from` replaced by `to` (fails the test if
// `from` is missing, so an edit can never silently leave the text valid).
std::string Replace(const std::string& text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  REQUIRE(text.find(from, at + 1) == std::string::npos);
  std::string out = text;
  out.replace(at, from.size(), to);
  return out;
}

absl::Status CoordinatorError(const ConfigDir& dir, const std::string& yaml) {
  absl::StatusOr<CoordinatorConfig> config = ParseCoordinatorConfig(yaml, kSource, dir.path());
  return config.status();
}

absl::Status ClientError(const ConfigDir& dir, const std::string& yaml) {
  absl::StatusOr<ClientConfig> config = ParseClientConfig(yaml, kClientSource, dir.path());
  return config.status();
}

// --- Coordinator: valid configs ---------------------------------------------------------

TEST_CASE("A minimal coordinator config parses with every default filled in", "[config]") {
  ConfigDir dir;
  absl::StatusOr<CoordinatorConfig> config =
      ParseCoordinatorConfig(kMinimalCoordinator, kSource, dir.path());
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->source_file == kSource);
  CHECK(config->federation == "demo");
  CHECK(config->listen == "0.0.0.0:7443");
  CHECK(config->tls.ca == dir.File("tls/ca.pem"));
  CHECK(config->tls.cert == dir.File("tls/coordinator.pem"));
  CHECK(config->tls.key == dir.File("tls/coordinator.key"));
  CHECK(config->sites == std::vector<std::string>{"hospital-a", "hospital-b"});
  CHECK(config->state_dir == dir.File("state"));
  CHECK(config->model.arch == "logreg");
  CHECK(config->model.inputs == 30);
  CHECK(config->model.hidden.empty());
  CHECK(config->model.classes == 2);
  CHECK(config->rounds.count == 5);
  // Defaults.
  CHECK(config->rounds.min_clients == 1);
  CHECK(config->rounds.stage_timeout == absl::Seconds(60));
  // select_timeout: the parser's default is the one the header declares (10s since commit
  // d463771, which moved it from 30s).
  CHECK(config->rounds.select_timeout == RoundsConfig{}.select_timeout);
  CHECK(config->rounds.select_timeout == absl::Seconds(10));
  CHECK(config->training.epochs == 1);
  CHECK(config->training.batch_size == 32);
  CHECK(config->training.learning_rate == 0.1);
  CHECK(config->training.optimizer == "sgd");
  CHECK(config->aggregation.strategy == "fedavg");
  CHECK(config->limits.max_concurrent_uploads == 1);
  CHECK(config->limits.max_chunk_bytes == 4 * 1024 * 1024);
  CHECK(config->logging.json == false);
  CHECK(config->logging.level == "info");
  CHECK(config->has_seed == false);
  CHECK(config->seed == 0);
}

TEST_CASE("A full coordinator config parses every key to the expected value", "[config]") {
  ConfigDir dir;
  absl::StatusOr<CoordinatorConfig> config =
      ParseCoordinatorConfig(kFullCoordinator, kSource, dir.path());
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->federation == "breast-cancer.v1");
  CHECK(config->listen == "127.0.0.1:0");
  CHECK(config->sites == std::vector<std::string>{"hospital-a", "hospital_b", "clinic.3"});
  CHECK(config->state_dir == "/var/lib/cohort");  // absolute: kept as is
  CHECK(config->model.arch == "mlp");
  CHECK(config->model.inputs == 30);
  CHECK(config->model.hidden == std::vector<int64_t>{16, 8});
  CHECK(config->model.classes == 3);
  CHECK(config->rounds.count == 20);
  CHECK(config->rounds.min_clients == 2);
  CHECK(config->rounds.stage_timeout == absl::Seconds(90));
  CHECK(config->rounds.select_timeout == absl::Milliseconds(500));
  CHECK(config->training.epochs == 3);
  CHECK(config->training.batch_size == 64);
  CHECK(config->training.learning_rate == 0.05);
  CHECK(config->training.optimizer == "sgd");
  CHECK(config->aggregation.strategy == "fedavg");
  CHECK(config->limits.max_concurrent_uploads == 4);
  CHECK(config->limits.max_chunk_bytes == 65536);
  CHECK(config->logging.json == true);
  CHECK(config->logging.level == "debug");
  CHECK(config->has_seed == true);
  CHECK(config->seed == 42);
}

TEST_CASE("Coordinator config resolves relative paths against base_dir and keeps absolute ones",
          "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalCoordinator, "  ca: tls/ca.pem\n",
                             "  ca: sub/../tls/./ca.pem\n");
  yaml = Replace(yaml, "  key: tls/coordinator.key\n",
                 absl::StrCat("  key: ", dir.File("tls/coordinator.key"), "\n"));
  yaml = Replace(yaml, "state_dir: state\n", "state_dir: run/state/\n");
  absl::StatusOr<CoordinatorConfig> config = ParseCoordinatorConfig(yaml, kSource, dir.path());
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->tls.ca == dir.File("tls/ca.pem"));
  CHECK(config->tls.key == dir.File("tls/coordinator.key"));
  CHECK(absl::StartsWith(config->state_dir, dir.File("run/state")));
  CHECK(config->state_dir != "run/state/");
}

TEST_CASE("LoadCoordinatorConfig resolves paths against the config file's directory",
          "[config]") {
  ConfigDir dir;
  const std::string path = dir.File("coordinator.yaml");
  WriteTextFile(path, kMinimalCoordinator);
  absl::StatusOr<CoordinatorConfig> config = LoadCoordinatorConfig(path);
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->source_file == path);
  CHECK(config->tls.ca == dir.File("tls/ca.pem"));
  CHECK(config->state_dir == dir.File("state"));
}

TEST_CASE("LoadCoordinatorConfig of a missing file names the file", "[config]") {
  ConfigDir dir;
  const std::string path = dir.File("nope.yaml");
  absl::StatusOr<CoordinatorConfig> config = LoadCoordinatorConfig(path);
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().code() == absl::StatusCode::kNotFound);
  CHECK(absl::StrContains(config.status().message(), path));
}

TEST_CASE("Coordinator config errors from a file carry the file path and line", "[config]") {
  ConfigDir dir;
  const std::string path = dir.File("coordinator.yaml");
  WriteTextFile(path, Replace(kMinimalCoordinator, "  count: 5\n", "  count: 0\n"));
  absl::StatusOr<CoordinatorConfig> config = LoadCoordinatorConfig(path);
  RequireInvalid(config.status(), {absl::StrCat(path, ":14:"), "rounds.count"});
}

// --- Coordinator: errors ----------------------------------------------------------------

TEST_CASE("Coordinator config refuses an unknown top-level key with its line", "[config]") {
  ConfigDir dir;
  // Appended as line 15.
  std::string yaml = absl::StrCat(kMinimalCoordinator, "federatoin: demo\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:15:", "federatoin", "unknown key"});
}

TEST_CASE("Coordinator config refuses an unknown nested key with its dotted path and line",
          "[config]") {
  ConfigDir dir;
  // Line 15, inside `rounds:`.
  std::string yaml = absl::StrCat(kMinimalCoordinator, "  cuont: 5\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:15:", "rounds.cuont", "unknown key"});
  // The message lists the keys that are known there, to help fix the typo.
  CHECK(absl::StrContains(status.message(), "count"));
}

TEST_CASE("Coordinator config with a misspelled required key reports the missing key",
          "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalCoordinator, "  count: 5\n", "  cuont: 5\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:", "rounds.count", "required key is missing"});
}

TEST_CASE("Coordinator config refuses a non-integer rounds.count with its line", "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalCoordinator, "  count: 5\n", "  count: abc\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:14:", "rounds.count", "expected an integer", "abc"});
}

TEST_CASE("Coordinator config refuses sites given as a single string instead of a list",
          "[config]") {
  ConfigDir dir;
  std::string yaml =
      Replace(kMinimalCoordinator, "sites: [hospital-a, hospital-b]\n", "sites: hospital-a\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:7:", "sites", "expected a list", "hospital-a"});
}

TEST_CASE("Coordinator config refuses a mapping where a single value is expected", "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalCoordinator, "listen: 0.0.0.0:7443\n",
                             "listen:\n  host: 0.0.0.0\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:", "listen", "expected a single value"});
}

TEST_CASE("Coordinator config refuses rounds.count of 0", "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalCoordinator, "  count: 5\n", "  count: 0\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:14:", "rounds.count", "must be between 1 and", "got 0"});
}

TEST_CASE("Coordinator config refuses a learning rate that is not positive", "[config]") {
  ConfigDir dir;
  const std::string lr = GENERATE(as<std::string>{}, "0", "-1", "0.0", ".nan", "101");
  std::string yaml = absl::StrCat(kMinimalCoordinator, "training:\n  lr: ", lr, "\n");
  absl::Status status = CoordinatorError(dir, yaml);
  INFO("lr: " << lr);
  // `lr` is on line 16.
  RequireInvalid(status, {"coord.yaml:16:", "training.lr", "got " + lr});
}

TEST_CASE("Coordinator config accepts a small positive learning rate", "[config]") {
  ConfigDir dir;
  std::string yaml = absl::StrCat(kMinimalCoordinator, "training:\n  lr: 0.0001\n");
  absl::StatusOr<CoordinatorConfig> config = ParseCoordinatorConfig(yaml, kSource, dir.path());
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->training.learning_rate == 0.0001);
}

TEST_CASE("Coordinator config refuses min_clients larger than the number of sites", "[config]") {
  ConfigDir dir;
  std::string yaml = absl::StrCat(kMinimalCoordinator, "  min_clients: 3\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:15:", "rounds.min_clients", "is 3", "2 sites"});
}

TEST_CASE("Coordinator config accepts min_clients equal to the number of sites", "[config]") {
  ConfigDir dir;
  std::string yaml = absl::StrCat(kMinimalCoordinator, "  min_clients: 2\n");
  absl::StatusOr<CoordinatorConfig> config = ParseCoordinatorConfig(yaml, kSource, dir.path());
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->rounds.min_clients == 2);
}

TEST_CASE("Coordinator config refuses a site listed twice", "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalCoordinator, "sites: [hospital-a, hospital-b]\n",
                             "sites: [hospital-a, hospital-b, hospital-a]\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:7:", "sites", "hospital-a", "listed twice"});
}

TEST_CASE("Coordinator config refuses an invalid site id", "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalCoordinator, "sites: [hospital-a, hospital-b]\n",
                             "sites: [Hospital A, hospital-b]\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:7:", "sites", "'Hospital A' is not a valid site id"});
}

TEST_CASE("Coordinator config refuses an empty site list", "[config]") {
  ConfigDir dir;
  std::string yaml =
      Replace(kMinimalCoordinator, "sites: [hospital-a, hospital-b]\n", "sites: []\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:7:", "sites", "at least one site"});
}

TEST_CASE("Coordinator config refuses a missing federation key", "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalCoordinator, "federation: demo\n", "");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:", "federation", "required key is missing"});
}

TEST_CASE("Coordinator config refuses an invalid federation name", "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalCoordinator, "federation: demo\n", "federation: My Fed\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:1:", "federation"});
}

TEST_CASE("Coordinator config refuses a missing rounds section", "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalCoordinator, "rounds:\n  count: 5\n", "");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml", "rounds", "required key is missing"});
}

TEST_CASE("Coordinator config refuses a missing TLS file and names the resolved path",
          "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalCoordinator, "  key: tls/coordinator.key\n",
                             "  key: tls/missing.key\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:6:", "tls.key", dir.File("tls/missing.key"),
                          "does not exist"});
}

TEST_CASE("Coordinator config refuses a missing tls section", "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalCoordinator,
                             "tls:\n  ca: tls/ca.pem\n  cert: tls/coordinator.pem\n"
                             "  key: tls/coordinator.key\n",
                             "");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml", "tls.ca", "required key is missing"});
}

TEST_CASE("Coordinator config refuses a listen address without a valid port", "[config]") {
  ConfigDir dir;
  const std::string listen = GENERATE(as<std::string>{}, "0.0.0.0", "0.0.0.0:99999",
                                      "0.0.0.0:http", ":7443");
  std::string yaml = Replace(kMinimalCoordinator, "listen: 0.0.0.0:7443\n",
                             absl::StrCat("listen: '", listen, "'\n"));
  absl::Status status = CoordinatorError(dir, yaml);
  INFO("listen: " << listen);
  RequireInvalid(status, {"coord.yaml:2:", "listen", "host:port"});
}

TEST_CASE("Coordinator config refuses a duration without a unit or with a sign", "[config]") {
  ConfigDir dir;
  const std::string value = GENERATE(as<std::string>{}, "60", "-5s", "0s", "soon");
  std::string yaml = absl::StrCat(kMinimalCoordinator, "  stage_timeout: ", value, "\n");
  absl::Status status = CoordinatorError(dir, yaml);
  INFO("stage_timeout: " << value);
  RequireInvalid(status, {"coord.yaml:15:", "rounds.stage_timeout"});
}

TEST_CASE("Coordinator config names a bare-number duration as not a duration", "[config]") {
  ConfigDir dir;
  std::string yaml = absl::StrCat(kMinimalCoordinator, "  stage_timeout: 60\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:15:", "rounds.stage_timeout", "'60' is not a duration"});
}

TEST_CASE("Coordinator config reports invalid YAML syntax with a line number", "[config]") {
  ConfigDir dir;
  // An unterminated flow sequence that opens on line 7.
  std::string yaml = Replace(kMinimalCoordinator, "sites: [hospital-a, hospital-b]\n",
                             "sites: [hospital-a, hospital-b\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:", "invalid YAML"});
  // "coord.yaml:<line>:<column>: invalid YAML: ..." with a line inside the text.
  const std::string message(status.message());
  REQUIRE(absl::StartsWith(message, "coord.yaml:"));
  const size_t colon = message.find(':', std::string("coord.yaml:").size());
  REQUIRE(colon != std::string::npos);
  int line = 0;
  REQUIRE(absl::SimpleAtoi(message.substr(11, colon - 11), &line));
  // yaml-cpp notices the missing ']' where the next line starts.
  CHECK(line >= 7);
  CHECK(line <= 8);
}

TEST_CASE("Coordinator config reports a bad indentation on its line", "[config]") {
  ConfigDir dir;
  // Line 3 has a key at a deeper indent than a scalar value allows.
  const std::string yaml = "federation: demo\nlisten: 0.0.0.0:7443\n  bad: indent\n";
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:3:", "invalid YAML"});
}

TEST_CASE("Coordinator config refuses a top level that is not a mapping", "[config]") {
  ConfigDir dir;
  const std::string yaml = GENERATE(as<std::string>{}, "- federation\n- demo\n",
                                    "just a string\n", "", "# only a comment\n");
  absl::Status status = CoordinatorError(dir, yaml);
  INFO("yaml: " << yaml);
  RequireInvalid(status, {"coord.yaml", "mapping"});
}

TEST_CASE("Coordinator config refuses hidden layers for logreg", "[config]") {
  ConfigDir dir;
  std::string yaml =
      Replace(kMinimalCoordinator, "  inputs: 30\n", "  inputs: 30\n  hidden: [8]\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:12:", "model.hidden", "logreg has no hidden layers"});
}

TEST_CASE("Coordinator config refuses mlp without hidden layers", "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalCoordinator, "  arch: logreg\n", "  arch: mlp\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:", "model.hidden", "at least one hidden layer"});
}

TEST_CASE("Coordinator config refuses an unknown model arch", "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalCoordinator, "  arch: logreg\n", "  arch: resnet\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:10:", "model.arch", "must be one of", "resnet"});
}

TEST_CASE("Coordinator config refuses a non-positive hidden layer size with its index",
          "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalCoordinator, "  arch: logreg\n  inputs: 30\n",
                             "  arch: mlp\n  inputs: 30\n  hidden: [16, 0]\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:12:", "model.hidden[1]", "got 0"});
}

TEST_CASE("Coordinator config refuses an unknown logging level and non-boolean json",
          "[config]") {
  ConfigDir dir;
  SECTION("level") {
    std::string yaml = absl::StrCat(kMinimalCoordinator, "logging:\n  level: loud\n");
    RequireInvalid(CoordinatorError(dir, yaml), {"coord.yaml:16:", "logging.level", "loud"});
  }
  SECTION("json") {
    std::string yaml = absl::StrCat(kMinimalCoordinator, "logging:\n  json: maybe\n");
    RequireInvalid(CoordinatorError(dir, yaml),
                   {"coord.yaml:16:", "logging.json", "expected true or false"});
  }
}

TEST_CASE("Coordinator config refuses limits out of range", "[config]") {
  ConfigDir dir;
  std::string yaml = absl::StrCat(kMinimalCoordinator, "limits:\n  max_chunk_bytes: 10\n");
  RequireInvalid(CoordinatorError(dir, yaml), {"coord.yaml:16:", "limits.max_chunk_bytes"});
}

TEST_CASE("Coordinator config reports the first error only", "[config]") {
  ConfigDir dir;
  // Two errors: count (line 14) is read before the unknown key (line 15) is reported.
  std::string yaml = absl::StrCat(
      Replace(kMinimalCoordinator, "  count: 5\n", "  count: abc\n"), "bogus: 1\n");
  absl::Status status = CoordinatorError(dir, yaml);
  RequireInvalid(status, {"coord.yaml:14:", "rounds.count"});
  CHECK_FALSE(absl::StrContains(status.message(), "bogus"));
}

// Regression (fixed; found while writing these tests) (common/config/yaml_reader.cc, ParseYamlRoot / MapReader::Finish): a key
// given twice in one mapping is accepted silently and the first value wins (yaml-cpp does
// not enforce unique keys). An operator who appends an override gets the old value with no
// error, which the strict reader ("a typo must never be silently ignored") should refuse.
TEST_CASE("Coordinator config refuses a key given twice in one mapping", "[config]") {
  ConfigDir dir;
  SECTION("top level") {
    // federation again on line 15.
    std::string yaml = absl::StrCat(kMinimalCoordinator, "federation: other\n");
    RequireInvalid(CoordinatorError(dir, yaml), {"coord.yaml:15:", "federation"});
  }
  SECTION("nested") {
    // count again on line 15.
    std::string yaml = absl::StrCat(kMinimalCoordinator, "  count: 9\n");
    RequireInvalid(CoordinatorError(dir, yaml), {"coord.yaml:15:", "rounds.count"});
  }
}

// --- Client -----------------------------------------------------------------------------

TEST_CASE("A minimal client config parses with defaults", "[config]") {
  ConfigDir dir;
  absl::StatusOr<ClientConfig> config =
      ParseClientConfig(kMinimalClient, kClientSource, dir.path());
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->source_file == kClientSource);
  CHECK(config->site == "hospital-a");
  CHECK(config->coordinator == "coord.example.org:7443");
  CHECK(config->server_name.empty());
  CHECK(config->tls.ca == dir.File("tls/ca.pem"));
  CHECK(config->tls.cert == dir.File("tls/site.pem"));
  CHECK(config->tls.key == dir.File("tls/site.key"));
  CHECK(config->data.format == "csv");
  CHECK(config->data.path == dir.File("data/site.csv"));
  CHECK(config->data.label == "malignant");
  CHECK(config->data.test_fraction == 0.2);
  CHECK(config->data.split_seed == 1);
  CHECK(config->reconnect.initial_backoff == absl::Milliseconds(500));
  CHECK(config->reconnect.max_backoff == absl::Seconds(30));
  CHECK(config->logging.json == false);
  CHECK(config->logging.level == "info");
  CHECK(config->threads == 1);
  CHECK(config->exit_when_done == true);
  CHECK(config->http.listen.empty());  // no HTTP port unless asked for
}

TEST_CASE("A full client config parses every key", "[config]") {
  ConfigDir dir;
  std::string yaml = absl::StrCat(kMinimalClient,
                                  "  test_fraction: 0.25\n"
                                  "  split_seed: 7\n"
                                  "  format: csv\n"
                                  "server_name: coordinator.internal\n"
                                  "reconnect:\n"
                                  "  initial_backoff: 2s\n"
                                  "  max_backoff: 1m\n"
                                  "logging:\n"
                                  "  level: warn\n"
                                  "threads: 4\n"
                                  "http:\n"
                                  "  listen: 127.0.0.1:9464\n"
                                  "exit_when_done: false\n");
  absl::StatusOr<ClientConfig> config = ParseClientConfig(yaml, kClientSource, dir.path());
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->server_name == "coordinator.internal");
  CHECK(config->data.test_fraction == 0.25);
  CHECK(config->data.split_seed == 7);
  CHECK(config->reconnect.initial_backoff == absl::Seconds(2));
  CHECK(config->reconnect.max_backoff == absl::Minutes(1));
  CHECK(config->logging.level == "warn");
  CHECK(config->threads == 4);
  CHECK(config->http.listen == "127.0.0.1:9464");
  CHECK(config->exit_when_done == false);
}

TEST_CASE("Client config refuses a coordinator address without a port", "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalClient, "coordinator: coord.example.org:7443\n",
                             "coordinator: nohost\n");
  RequireInvalid(ClientError(dir, yaml), {"client.yaml:2:", "coordinator", "host:port", "nohost"});
}

TEST_CASE("Client config refuses port 0 for the coordinator address", "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalClient, "coordinator: coord.example.org:7443\n",
                             "coordinator: coord.example.org:0\n");
  RequireInvalid(ClientError(dir, yaml), {"client.yaml:2:", "coordinator", "host:port"});
}

TEST_CASE("Client config refuses a test_fraction outside 0 to 0.9", "[config]") {
  ConfigDir dir;
  const std::string value = GENERATE(as<std::string>{}, "1.5", "0", "-0.1", "0.95");
  std::string yaml = absl::StrCat(kMinimalClient, "  test_fraction: ", value, "\n");
  INFO("test_fraction: " << value);
  // test_fraction is line 10.
  RequireInvalid(ClientError(dir, yaml), {"client.yaml:10:", "data.test_fraction", value});
}

TEST_CASE("Client config refuses max_backoff shorter than initial_backoff", "[config]") {
  ConfigDir dir;
  std::string yaml = absl::StrCat(kMinimalClient,
                                  "reconnect:\n"
                                  "  initial_backoff: 10s\n"
                                  "  max_backoff: 2s\n");
  RequireInvalid(ClientError(dir, yaml),
                 {"client.yaml:12:", "reconnect.max_backoff", "shorter than initial_backoff"});
}

TEST_CASE("Client config refuses max_backoff below the default initial_backoff", "[config]") {
  ConfigDir dir;
  std::string yaml = absl::StrCat(kMinimalClient, "reconnect:\n  max_backoff: 100ms\n");
  RequireInvalid(ClientError(dir, yaml), {"reconnect.max_backoff", "initial_backoff"});
}

TEST_CASE("Client config refuses a missing data file and names the resolved path", "[config]") {
  ConfigDir dir;
  std::string yaml =
      Replace(kMinimalClient, "  path: data/site.csv\n", "  path: data/other.csv\n");
  RequireInvalid(ClientError(dir, yaml),
                 {"client.yaml:8:", "data.path", dir.File("data/other.csv"), "does not exist"});
}

// Regression (fixed; found while writing these tests) (common/config/yaml_reader.cc, MapReader::Path): the must_exist probe is an
// std::ifstream, which opens a directory successfully on Linux, so a directory passes as
// a "present and readable" file and the mistake only surfaces later, less clearly.
TEST_CASE("Client config refuses a data path that is a directory", "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalClient, "  path: data/site.csv\n", "  path: data\n");
  RequireInvalid(ClientError(dir, yaml), {"client.yaml:8:", "data.path", dir.File("data")});
}

TEST_CASE("Client config refuses a missing data section", "[config]") {
  ConfigDir dir;
  std::string yaml =
      Replace(kMinimalClient, "data:\n  path: data/site.csv\n  label: malignant\n", "");
  RequireInvalid(ClientError(dir, yaml), {"client.yaml", "data"});
}

TEST_CASE("Client config refuses an invalid site id", "[config]") {
  ConfigDir dir;
  std::string yaml = Replace(kMinimalClient, "site: hospital-a\n", "site: Hospital A\n");
  RequireInvalid(ClientError(dir, yaml), {"client.yaml:1:", "site"});
}

TEST_CASE("Client config refuses an unknown nested key", "[config]") {
  ConfigDir dir;
  std::string yaml = absl::StrCat(kMinimalClient, "  lable: malignant\n");
  RequireInvalid(ClientError(dir, yaml), {"client.yaml:10:", "data.lable", "unknown key"});
}

TEST_CASE("Client config reads http.listen, and port 0 picks a free port", "[config][http]") {
  ConfigDir dir;
  const std::string listen = GENERATE(as<std::string>{}, "127.0.0.1:9464", "0.0.0.0:0",
                                      "localhost:9100", "[::1]:9464");
  std::string yaml = absl::StrCat(kMinimalClient, "http:\n  listen: \"", listen, "\"\n");
  absl::StatusOr<ClientConfig> config = ParseClientConfig(yaml, kClientSource, dir.path());
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->http.listen == listen);
}

TEST_CASE("Client config with an empty http section has no HTTP port", "[config][http]") {
  ConfigDir dir;
  absl::StatusOr<ClientConfig> config =
      ParseClientConfig(absl::StrCat(kMinimalClient, "http: {}\n"), kClientSource, dir.path());
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->http.listen.empty());
}

TEST_CASE("Client config refuses a malformed http.listen with its line", "[config][http]") {
  ConfigDir dir;
  const std::string listen =
      GENERATE(as<std::string>{}, "9464", ":9464", "127.0.0.1:", "127.0.0.1:http",
               "127.0.0.1:65536", "127.0.0.1:-1");
  INFO("http.listen: " << listen);
  std::string yaml = absl::StrCat(kMinimalClient, "http:\n  listen: \"", listen, "\"\n");
  // listen is line 11.
  RequireInvalid(ClientError(dir, yaml),
                 {"client.yaml:11:", "http.listen", "expected host:port", listen});
}

TEST_CASE("Client config refuses an unknown key in the http section", "[config][http]") {
  ConfigDir dir;
  std::string yaml = absl::StrCat(kMinimalClient, "http:\n  port: 9464\n");
  RequireInvalid(ClientError(dir, yaml), {"client.yaml:11:", "http.port", "unknown key"});
}

// --- Reader helpers ---------------------------------------------------------------------

TEST_CASE("MapReader reports a missing required key and an unknown key with dotted paths",
          "[config]") {
  YAML::Node root;
  REQUIRE(ParseYamlRoot("outer:\n  inner: 3\n  extra: x\n", "t.yaml", &root).ok());
  ConfigErrors errors("t.yaml");
  MapReader top(root, "", &errors, "");
  MapReader outer = top.Map("outer");
  CHECK(outer.Int("inner", std::nullopt, 0, 10) == 3);
  CHECK(errors.ok());
  outer.Finish();
  REQUIRE_FALSE(errors.ok());
  absl::Status status = errors.ToStatus();
  RequireInvalid(status, {"t.yaml:3:3: outer.extra: unknown key"});
}

}  // namespace
}  // namespace cohort::config

namespace cohort::config {

TEST_CASE("A privacy section turns DP-SGD on with its parameters", "[config]") {
  ConfigDir dir;
  auto plain = ParseCoordinatorConfig(kMinimalCoordinator, kSource, dir.path());
  REQUIRE(plain.ok());
  CHECK_FALSE(plain->privacy.enabled);
  auto dp = ParseCoordinatorConfig(
      std::string(kMinimalCoordinator) +
          "privacy: {noise_multiplier: 1.1, max_grad_norm: 0.5, delta: 1e-6}\n",
      kSource, dir.path());
  REQUIRE(dp.ok());
  CHECK(dp->privacy.enabled);
  CHECK(dp->privacy.noise_multiplier == 1.1);
  CHECK(dp->privacy.max_grad_norm == 0.5);
  CHECK(dp->privacy.delta == 1e-6);
  // Noise (fixed, or planned from a target epsilon) and clipping are required; zero noise
  // is not DP.
  RequireInvalid(CoordinatorError(dir, std::string(kMinimalCoordinator) +
                                           "privacy: {max_grad_norm: 1.0}\n"),
                 {"privacy.noise_multiplier: give either noise_multiplier or target_epsilon"});
  RequireInvalid(CoordinatorError(dir, std::string(kMinimalCoordinator) +
                                           "privacy: {noise_multiplier: 1, target_epsilon: 3, "
                                           "max_grad_norm: 1}\n"),
                 {"not both"});
  RequireInvalid(CoordinatorError(dir, std::string(kMinimalCoordinator) +
                                           "privacy: {noise_multiplier: 1}\n"),
                 {"privacy.max_grad_norm: required key is missing"});
  auto planned = ParseCoordinatorConfig(
      std::string(kMinimalCoordinator) + "privacy: {target_epsilon: 3, max_grad_norm: 1}\n",
      kSource, dir.path());
  REQUIRE(planned.ok());
  CHECK(planned->privacy.target_epsilon == 3.0);
  CHECK(planned->privacy.noise_multiplier == 0.0);
  RequireInvalid(CoordinatorError(dir, std::string(kMinimalCoordinator) +
                                           "privacy: {noise_multiplier: 0, max_grad_norm: 1}\n"),
                 {"privacy.noise_multiplier: must be greater than 0"});
  RequireInvalid(CoordinatorError(dir, std::string(kMinimalCoordinator) +
                                           "privacy: {noise_multiplier: 1, max_grad_norm: 1, "
                                           "epsilon: 3}\n"),
                 {"privacy.epsilon: unknown key"});
}

}  // namespace cohort::config

namespace cohort::config {

TEST_CASE("A client seed is refused outside simulation mode", "[config]") {
  ConfigDir dir;
  auto production = ParseClientConfig(kMinimalClient, kClientSource, dir.path());
  REQUIRE(production.ok());
  CHECK(production->mode == "production");
  CHECK_FALSE(production->has_seed);
  // Line 10 is the seed.
  RequireInvalid(ClientError(dir, std::string(kMinimalClient) + "seed: 7\n"),
                 {"client.yaml:10:", "seed: is only allowed with mode: simulation"});
  RequireInvalid(
      ClientError(dir, std::string(kMinimalClient) + "mode: production\nseed: 7\n"),
      {"seed: is only allowed with mode: simulation"});
  auto simulation = ParseClientConfig(std::string(kMinimalClient) + "mode: simulation\nseed: 7\n",
                                      kClientSource, dir.path());
  REQUIRE(simulation.ok());
  CHECK(simulation->has_seed);
  CHECK(simulation->seed == 7);
  RequireInvalid(ClientError(dir, std::string(kMinimalClient) + "mode: test\n"),
                 {"mode: must be one of production, simulation"});
}

}  // namespace cohort::config

// --- Coordinator: secure aggregation ----------------------------------------------------

namespace cohort::config {
namespace {

// kFullCoordinator (3 sites, min_clients 2) with `secure:` under aggregation.
std::string WithSecure(const std::string& secure) {
  return Replace(kFullCoordinator, "aggregation:\n  strategy: fedavg\n",
                 absl::StrCat("aggregation:\n  strategy: fedavg\n  secure: ", secure, "\n"));
}

}  // namespace

TEST_CASE("Coordinator config reads aggregation.secure with defaults", "[config][secagg]") {
  ConfigDir dir;
  absl::StatusOr<CoordinatorConfig> config = ParseCoordinatorConfig(
      WithSecure("{enabled: true, bits: 24, clip_range: 0.5, stage_timeout: 5s}"), kSource,
      dir.path());
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  const SecureAggregationConfig& secure = config->aggregation.secure;
  CHECK(secure.enabled);
  CHECK(secure.bits == 24);
  CHECK(secure.clip_range == 0.5);
  CHECK(secure.modulus_bits == 32);
  CHECK(secure.dropout_tolerance == 0.3);
  CHECK(secure.weight_cap == 0);
  CHECK(secure.stage_timeout == absl::Seconds(5));
  // Absent: off.
  absl::StatusOr<CoordinatorConfig> plain = ParseCoordinatorConfig(kFullCoordinator, kSource, dir.path());
  REQUIRE(plain.ok());
  CHECK_FALSE(plain->aggregation.secure.enabled);
}

TEST_CASE("Coordinator config refuses secure aggregation bits that could wrap the sum",
          "[config][secagg]") {
  ConfigDir dir;
  // 3 sites x (2^31 - 1) >= 2^32.
  RequireInvalid(CoordinatorError(dir, WithSecure("{enabled: true, bits: 31}")),
                 {"aggregation.secure.bits", "31-bit values from 3 sites can wrap modulo 2^32",
                  "modulus_bits: 64"});
  // With a 64-bit modulus the same bits fit.
  absl::StatusOr<CoordinatorConfig> wide = ParseCoordinatorConfig(
      WithSecure("{enabled: true, bits: 31, modulus_bits: 64}"), kSource, dir.path());
  INFO(wide.status().ToString());
  CHECK(wide.ok());
  // 30 bits x 3 sites < 2^32: fine.
  CHECK(ParseCoordinatorConfig(WithSecure("{enabled: true, bits: 30}"), kSource, dir.path()).ok());
}

TEST_CASE("Coordinator config refuses out-of-range secure aggregation settings",
          "[config][secagg]") {
  ConfigDir dir;
  RequireInvalid(CoordinatorError(dir, WithSecure("{enabled: true, dropout_tolerance: 0.5}")),
                 {"aggregation.secure.dropout_tolerance", "below 0.5"});
  RequireInvalid(CoordinatorError(dir, WithSecure("{enabled: true, modulus_bits: 48}")),
                 {"aggregation.secure.modulus_bits", "32 or 64"});
  RequireInvalid(CoordinatorError(dir, WithSecure("{enabled: true, clip_range: 0}")),
                 {"aggregation.secure.clip_range"});
  RequireInvalid(CoordinatorError(dir, WithSecure("{enabled: true, bits: 0}")),
                 {"aggregation.secure.bits"});
  RequireInvalid(CoordinatorError(dir, WithSecure("{enabled: true, rounds: 3}")),
                 {"aggregation.secure.rounds", "unknown key"});
}

TEST_CASE("Coordinator config refuses secure aggregation for fewer than 3 sites or a floor of 1",
          "[config][secagg]") {
  ConfigDir dir;
  std::string one_floor = Replace(WithSecure("{enabled: true}"), "  min_clients: 2\n",
                                  "  min_clients: 1\n");
  RequireInvalid(CoordinatorError(dir, one_floor),
                 {"aggregation.secure.enabled", "min_clients >= 2"});
  std::string two_sites = Replace(WithSecure("{enabled: true}"), "  - clinic.3\n", "");
  RequireInvalid(CoordinatorError(dir, two_sites),
                 {"aggregation.secure.enabled", "at least 3 sites"});
}

}  // namespace cohort::config

namespace cohort::config {
namespace {

TEST_CASE("A TLS key readable by group or others is refused with the chmod to run", "[config][tls]") {
  ConfigDir dir;
  REQUIRE(chmod(dir.File("tls/coordinator.key").c_str(), 0644) == 0);
  RequireInvalid(CoordinatorError(dir, kMinimalCoordinator),
                 {"coord.yaml:6:", "tls.key: permissions 0644 are too open; chmod 600",
                  "coordinator.key"});
  REQUIRE(chmod(dir.File("tls/site.key").c_str(), 0604) == 0);
  absl::StatusOr<ClientConfig> client = ParseClientConfig(kMinimalClient, kClientSource, dir.path());
  RequireInvalid(client.status(), {"client.yaml:6:", "tls.key: permissions 0604 are too open"});
  REQUIRE(chmod(dir.File("tls/site.key").c_str(), 0400) == 0);
  CHECK(ParseClientConfig(kMinimalClient, kClientSource, dir.path()).ok());
}

TEST_CASE("Group read on a TLS key is allowed only when root owns the key", "[config][tls]") {
  ConfigDir dir;
  const std::string key = dir.File("tls/site.key");
  REQUIRE(chmod(key.c_str(), 0640) == 0);
  struct stat st = {};
  REQUIRE(stat(key.c_str(), &st) == 0);
  absl::StatusOr<ClientConfig> client = ParseClientConfig(kMinimalClient, kClientSource, dir.path());
  if (st.st_uid == 0) {
    // Root-owned and group-readable, as a Kubernetes Secret mounted with fsGroup.
    INFO(client.status().ToString());
    CHECK(client.ok());
    REQUIRE(chmod(key.c_str(), 0660) == 0);  // group write is still refused
    RequireInvalid(ParseClientConfig(kMinimalClient, kClientSource, dir.path()).status(),
                   {"tls.key: permissions 0660 are too open; chmod 600",
                    "a root-owned key may also be 0640"});
  } else {
    RequireInvalid(client.status(), {"tls.key: permissions 0640 are too open; chmod 600"});
  }
}

TEST_CASE("Coordinator config reads an optional tls.crl and checks that it exists", "[config][tls]") {
  ConfigDir dir;
  absl::StatusOr<CoordinatorConfig> without =
      ParseCoordinatorConfig(kMinimalCoordinator, kSource, dir.path());
  REQUIRE(without.ok());
  CHECK(without->tls.crl.empty());

  const std::string with_crl =
      Replace(kMinimalCoordinator, "  key: tls/coordinator.key\n",
              "  key: tls/coordinator.key\n  crl: tls/crl.pem\n");
  RequireInvalid(CoordinatorError(dir, with_crl), {"coord.yaml:7:", "tls.crl", "crl.pem"});
  WriteTextFile(dir.File("tls/crl.pem"), "crl\n");
  absl::StatusOr<CoordinatorConfig> config = ParseCoordinatorConfig(with_crl, kSource, dir.path());
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->tls.crl == dir.File("tls/crl.pem"));
}

TEST_CASE("Client config has no tls.crl key", "[config][tls]") {
  ConfigDir dir;
  WriteTextFile(dir.File("tls/crl.pem"), "crl\n");
  const std::string yaml = Replace(kMinimalClient, "  key: tls/site.key\n",
                                   "  key: tls/site.key\n  crl: tls/crl.pem\n");
  absl::StatusOr<ClientConfig> client = ParseClientConfig(yaml, kClientSource, dir.path());
  RequireInvalid(client.status(), {"tls.crl", "unknown key"});
}

}  // namespace
}  // namespace cohort::config

namespace cohort::config {
namespace {

TEST_CASE("Client keepalive defaults to 30 s pings and a 20 s timeout", "[config][keepalive]") {
  ConfigDir dir;
  absl::StatusOr<ClientConfig> config =
      ParseClientConfig(kMinimalClient, kClientSource, dir.path());
  REQUIRE(config.ok());
  CHECK(config->keepalive.time == absl::Seconds(30));
  CHECK(config->keepalive.timeout == absl::Seconds(20));
}

TEST_CASE("Client keepalive reads time and timeout", "[config][keepalive]") {
  ConfigDir dir;
  absl::StatusOr<ClientConfig> config = ParseClientConfig(
      absl::StrCat(kMinimalClient, "keepalive: {time: 10s, timeout: 5s}\n"), kClientSource,
      dir.path());
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->keepalive.time == absl::Seconds(10));
  CHECK(config->keepalive.timeout == absl::Seconds(5));
}

TEST_CASE("Client keepalive refuses pings more often than the coordinator accepts, a zero or "
          "huge timeout and unknown keys",
          "[config][keepalive]") {
  ConfigDir dir;
  RequireInvalid(ClientError(dir, absl::StrCat(kMinimalClient, "keepalive: {time: 5s}\n")),
                 {"keepalive.time", "between 10s and 2h"});
  RequireInvalid(ClientError(dir, absl::StrCat(kMinimalClient, "keepalive: {time: 3h}\n")),
                 {"keepalive.time", "between 10s and 2h"});
  RequireInvalid(ClientError(dir, absl::StrCat(kMinimalClient, "keepalive: {timeout: 0s}\n")),
                 {"keepalive.timeout", "positive duration"});
  RequireInvalid(ClientError(dir, absl::StrCat(kMinimalClient, "keepalive: {timeout: 500ms}\n")),
                 {"keepalive.timeout", "between 1s and 10m"});
  RequireInvalid(ClientError(dir, absl::StrCat(kMinimalClient, "keepalive: {timeout: 1h}\n")),
                 {"keepalive.timeout", "between 1s and 10m"});
  RequireInvalid(ClientError(dir, absl::StrCat(kMinimalClient, "keepalive: {time: soon}\n")),
                 {"keepalive.time"});
  RequireInvalid(ClientError(dir, absl::StrCat(kMinimalClient, "keepalive: {interval: 20s}\n")),
                 {"keepalive.interval", "unknown key"});
}

}  // namespace
}  // namespace cohort::config
