#ifndef COHORT_COMMON_CONFIG_CLIENT_CONFIG_H_
#define COHORT_COMMON_CONFIG_CLIENT_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/config/coordinator_config.h"

namespace cohort::config {

// Reconnection policy: exponential backoff with full jitter between the two bounds.
struct ReconnectConfig {
  absl::Duration initial_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(30);
};

// The site's own privacy policy, which the coordinator cannot override. Absent: the site
// trains as asked, without a budget.
struct SitePrivacyConfig {
  bool enabled = false;
  double max_epsilon = 0;
  double delta = 1e-5;
  double min_noise_multiplier = 0;
  double max_grad_norm = 0;
  std::string ledger;  // SQLite privacy ledger; must be initialised by an operator
};

// Everything cohort-client reads from its YAML file.
struct ClientConfig {
  std::string source_file;
  std::string site;
  std::string coordinator;
  // Name to verify in the coordinator's certificate; defaults to the host of `coordinator`.
  std::string server_name;
  TlsFiles tls;
  DataConfig data;
  ReconnectConfig reconnect;
  KeepaliveConfig keepalive;
  SitePrivacyConfig privacy;
  LoggingConfig logging;
  // The site's own /metrics, /healthz and /readyz (off unless http.listen is set).
  HttpConfig http;
  // `simulation` allows `seed`: reproducible shuffling, Poisson sampling and DP noise for
  // tests and simulations. Refused in production, where a known seed would let anyone
  // recompute (and subtract) the noise.
  std::string mode = "production";
  bool has_seed = false;
  uint64_t seed = 0;
  // `model: {torchscript: path}`: the site's own copy of the federation's TorchScript module,
  // which it trains and evaluates; the coordinator refuses a site whose parameter names and
  // shapes differ from the federation's. Empty: the federation's built-in model, built from
  // the spec the coordinator sends.
  std::string torchscript_model;
  // LibTorch intra-op threads for local training.
  int64_t threads = 1;
  // Exit once the coordinator reports the federation finished (otherwise keep waiting for
  // the next federation run).
  bool exit_when_done = true;
};

absl::StatusOr<ClientConfig> ParseClientConfig(const std::string& yaml_text,
                                               const std::string& source_name,
                                               const std::string& base_dir);
absl::StatusOr<ClientConfig> LoadClientConfig(const std::string& path);

}  // namespace cohort::config

#endif  // COHORT_COMMON_CONFIG_CLIENT_CONFIG_H_
