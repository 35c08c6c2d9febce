// cohort-coordinator: schedules federated training rounds for the sites of one federation.
#include <csignal>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>

#include "common/config/coordinator_config.h"
#include "common/util/log.h"
#include "server/coordinator.h"

namespace {

// Blocks SIGINT/SIGTERM in every thread and waits for them on a dedicated one, so shutdown
// runs as ordinary code rather than inside a signal handler.
void StopOnSignal(cohort::server::Coordinator* coordinator) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  std::thread([signals, coordinator]() mutable {
    int received = 0;
    sigwait(&signals, &received);
    spdlog::warn("stage=shutdown received signal {}, stopping", received);
    coordinator->Shutdown();
  }).detach();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cohort-coordinator: runs federated training rounds over mutual-TLS gRPC"};
  std::string config_path;
  bool check_config = false;
  app.set_version_flag("--version", std::string("cohort-coordinator ") + COHORT_VERSION);
  app.add_option("--config", config_path, "Coordinator YAML file")->required();
  app.add_flag("--check-config", check_config, "Validate the config and exit");
  CLI11_PARSE(app, argc, argv);

  absl::StatusOr<cohort::config::CoordinatorConfig> config =
      cohort::config::LoadCoordinatorConfig(config_path);
  if (!config.ok()) {
    std::cerr << "cohort-coordinator: " << config.status().message() << "\n";
    return 2;
  }
  if (check_config) {
    std::cout << config_path << ": OK (federation " << config->federation << ", "
              << config->sites.size() << " sites, " << config->rounds.count << " rounds)\n";
    return 0;
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  cohort::InitLogging("coordinator", config->logging.json,
                      spdlog::level::from_str(config->logging.level));
  auto coordinator = cohort::server::Coordinator::Create(*std::move(config));
  if (!coordinator.ok()) {
    spdlog::error("stage=start {}", coordinator.status().message());
    return 1;
  }
  if (absl::Status s = (*coordinator)->Start(); !s.ok()) {
    spdlog::error("stage=start {}", s.message());
    return 1;
  }
  StopOnSignal(coordinator->get());
  absl::Status result = (*coordinator)->Wait();
  (*coordinator)->Shutdown();
  if (!result.ok() && !absl::IsCancelled(result)) {
    spdlog::error("stage=done {}", result.message());
    return 1;
  }
  return 0;
}
