// cohort-client: the site daemon. Trains the federation's model on local data and sends back
// only the update, over an outbound mutual-TLS connection.
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <random>

#include <CLI/CLI.hpp>

#include "client/site_client.h"
#include "client/torch_trainer.h"
#include "common/config/client_config.h"
#include "common/util/log.h"
#include "common/util/signals.h"

int main(int argc, char** argv) {
  CLI::App app{"cohort-client: trains locally and sends updates to a cohort coordinator"};
  std::string config_path;
  bool check_config = false;
  app.set_version_flag("--version", std::string("cohort-client ") + COHORT_VERSION);
  app.add_option("--config", config_path, "Client YAML file")->required();
  app.add_flag("--check-config", check_config, "Validate the config (and load the data) and exit");
  std::string kill_at;
  app.add_option("--fault-kill-at", kill_at,
                 "Fault injection for tests: the process kills itself (SIGKILL) when it reaches "
                 "this stage: train (during local training, before the privacy ledger records "
                 "the round), or a secure aggregation stage: advertise, share, masked, unmask");
  CLI11_PARSE(app, argc, argv);

  // Before any thread starts (LibTorch's pool included): SIGINT/SIGTERM stop the client.
  static std::atomic<cohort::client::SiteClient*> running{nullptr};
  cohort::StopOnTerminationSignal([](int signal) {
    cohort::client::SiteClient* client = running.load();
    // Still starting (config, data, LibTorch): nothing to flush or hand over yet. A requested
    // stop is a success (docs/operations.md: exit 0 when stopped by SIGINT/SIGTERM).
    if (client == nullptr) std::_Exit(0);
    spdlog::warn("stage=shutdown received signal {}, stopping", signal);
    client->Stop();
  });

  absl::StatusOr<cohort::config::ClientConfig> config =
      cohort::config::LoadClientConfig(config_path);
  if (!config.ok()) {
    std::cerr << "cohort-client: " << config.status().message() << "\n";
    return 2;
  }
  // Production: shuffling from the OS, DP noise keyed from the OS. Simulation with a seed:
  // both reproducible (the config loader refuses a seed outside mode: simulation).
  auto trainer = cohort::client::MakeTorchTrainer(
      config->data, config->threads, config->has_seed ? config->seed : std::random_device{}(),
      config->has_seed ? std::optional<uint64_t>(config->seed) : std::nullopt,
      config->torchscript_model);
  if (!trainer.ok()) {
    std::cerr << "cohort-client: " << config_path << ": data: " << trainer.status().message()
              << "\n";
    return 2;
  }
  if (check_config) {
    std::cout << config_path << ": OK (site " << config->site << ", "
              << (*trainer)->train_examples() << " training and " << (*trainer)->test_examples()
              << " test examples, " << (*trainer)->num_features() << " features)\n";
    return 0;
  }
  cohort::InitLogging(config->site, config->logging.json,
                      spdlog::level::from_str(config->logging.level));
  cohort::client::SiteClient client(*config, std::move(*trainer));
  if (!kill_at.empty()) {
    absl::StatusOr<cohort::client::SiteClient::SecAggStage> stage =
        cohort::client::SiteClient::ParseSecAggStage(kill_at);
    if (!stage.ok()) {
      std::cerr << "cohort-client: --fault-kill-at: " << stage.status().message() << "\n";
      return 2;
    }
    client.SetVanishAt(*stage, [] {
      spdlog::default_logger()->flush();
      std::raise(SIGKILL);
    });
  }
  running = &client;
  absl::Status status = client.Run();
  running = nullptr;
  if (!status.ok() && !absl::IsCancelled(status)) {
    spdlog::error("stage=done {}", status.message());
    return 1;
  }
  return 0;
}
