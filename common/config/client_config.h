#ifndef COHORT_COMMON_CONFIG_CLIENT_CONFIG_H_
#define COHORT_COMMON_CONFIG_CLIENT_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/config/coordinator_config.h"

namespace cohort::config {

// The site's local data set: a numeric CSV table (`csv`) or labelled images in IDX files
// (`idx`, gzipped or not). The held-out test set is split off by test_fraction, or (idx) read
// from test_images and test_labels.
struct DataConfig {
  std::string format = "csv";
  // csv: the table and its label column.
  std::string path;
  std::string label;
  // idx: an IDX3 image file and an IDX1 label file; optionally a separate test pair.
  std::string images;
  std::string labels;
  std::string test_images;
  std::string test_labels;
  // idx: standardize pixels (scaled to [0, 1] first) with the mean and deviation of the
  // site's own training pixels.
  bool normalize = false;
  double test_fraction = 0.2;
  // Seeds the train/test split so a site's held-out set stays the same across restarts.
  uint64_t split_seed = 1;

  bool has_test_files() const { return !test_images.empty(); }
};

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
