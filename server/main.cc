// cohort-coordinator: schedules federated training rounds for the sites of one federation.
#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>

#include "common/config/coordinator_config.h"
#include "common/tls/revocation.h"
#include "common/util/log.h"
#include "common/util/signals.h"
#include "server/coordinator.h"

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
  // Before any thread starts: at most two malloc arenas. gRPC's many threads would otherwise
  // each get an arena that keeps the memory of freed upload buffers (measured: about 40 MiB
  // of a 10M-parameter round's peak RSS, docs/PERFORMANCE.md).
  mallopt(M_ARENA_MAX, 2);
  // Before any thread starts: SIGHUP re-reads the CRL at once (it is also re-read whenever
  // its file changes).
  cohort::CallOnHangup([] {
    spdlog::info("stage=tls received SIGHUP, re-reading the CRL");
    cohort::tls::RefreshAllRevocationLists();
  });
  // Before any thread starts: SIGINT/SIGTERM stop the coordinator cleanly (the open round
  // is recorded as aborted, sessions end, the server stops).
  static std::atomic<cohort::server::Coordinator*> running{nullptr};
  cohort::StopOnTerminationSignal([](int signal) {
    cohort::server::Coordinator* coordinator = running.load();
    // Still starting (config, data, LibTorch): nothing to flush or hand over yet. A requested
    // stop is a success (docs/operations.md: exit 0 when stopped by SIGINT/SIGTERM).
    if (coordinator == nullptr) std::_Exit(0);
    spdlog::warn("stage=shutdown received signal {}, stopping", signal);
    coordinator->Shutdown();
  });

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
  running = coordinator->get();
  absl::Status result = (*coordinator)->Wait();
  (*coordinator)->Shutdown();
  running = nullptr;
  if (!result.ok() && !absl::IsCancelled(result)) {
    spdlog::error("stage=done {}", result.message());
    return 1;
  }
  return 0;
}
