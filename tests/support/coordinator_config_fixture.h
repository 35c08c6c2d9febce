#ifndef COHORT_TESTS_SUPPORT_COORDINATOR_CONFIG_FIXTURE_H_
#define COHORT_TESTS_SUPPORT_COORDINATOR_CONFIG_FIXTURE_H_

#include <sys/stat.h>

#include <string>

#include <catch2/catch.hpp>

#include "absl/status/statusor.h"
#include "common/config/coordinator_config.h"
#include "tests/support/temp_dir.h"

namespace cohort::testing {

// A small valid coordinator config with its TLS files in place (key 0600) in a temp dir, for
// tests of one section: Parse(extra) appends `extra` at the top level and parses it as
// "coord.yaml". `sites` and `rounds` are the YAML values of those keys.
class CoordinatorConfigFixture {
 public:
  explicit CoordinatorConfigFixture(std::string sites = "[hospital-a]",
                                    std::string rounds = "{count: 1}")
      : sites_(std::move(sites)), rounds_(std::move(rounds)) {
    WriteTextFile(dir_.File("tls/ca.pem"), "ca\n");
    WriteTextFile(dir_.File("tls/coordinator.pem"), "cert\n");
    WriteTextFile(dir_.File("tls/coordinator.key"), "key\n");
    REQUIRE(chmod(dir_.File("tls/coordinator.key").c_str(), 0600) == 0);
  }

  absl::StatusOr<config::CoordinatorConfig> Parse(const std::string& extra) const {
    const std::string text =
        "federation: demo\n"
        "listen: 127.0.0.1:7443\n"
        "tls: {ca: tls/ca.pem, cert: tls/coordinator.pem, key: tls/coordinator.key}\n"
        "sites: " + sites_ + "\n"
        "state_dir: state\n"
        "model: {arch: logreg, inputs: 4, classes: 2}\n"
        "rounds: " + rounds_ + "\n" +
        extra;
    return config::ParseCoordinatorConfig(text, "coord.yaml", dir_.path());
  }

  // A path inside the config's directory (relative paths in the config resolve against it).
  std::string File(const std::string& name) const { return dir_.File(name); }

 private:
  TempDir dir_;
  const std::string sites_;
  const std::string rounds_;
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_SUPPORT_COORDINATOR_CONFIG_FIXTURE_H_
