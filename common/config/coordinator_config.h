#ifndef COHORT_COMMON_CONFIG_COORDINATOR_CONFIG_H_
#define COHORT_COMMON_CONFIG_COORDINATOR_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cohort::config {

// PEM files for one TLS identity plus the federation CA that peers must chain to.
struct TlsFiles {
  TlsFiles() = default;
  TlsFiles(std::string ca_path, std::string cert_path, std::string key_path)
      : ca(std::move(ca_path)), cert(std::move(cert_path)), key(std::move(key_path)) {}

  std::string ca;
  std::string cert;
  std::string key;
  // The federation's CRL (coordinator only; empty: no revocation check). Re-read whenever
  // the file changes, so a revoked site is refused at its next handshake.
  std::string crl;
  // How often the certificate, key and CA files are polled for changes. Not read from
  // YAML: tests shorten it to see a rotation quickly.
  unsigned reload_seconds = 10;
};

// Logging options shared by both daemons.
struct LoggingConfig {
  bool json = false;
  std::string level = "info";
};

// The daemon's operational HTTP port: /metrics, /healthz, /readyz (and on the coordinator the
// status page). Plain HTTP, read-only: bind it to loopback or a cluster-internal address.
struct HttpConfig {
  std::string listen;  // "host:port"; empty: no HTTP port
};

// HTTP/2 keepalive pings on the gRPC connection between a site and the coordinator, in both
// daemons. Every `time` without incoming data the daemon pings its peer; no answer within
// `timeout` closes the connection, so a peer that vanished without a FIN or RST (a cut link,
// a powered-off host) is noticed within time + timeout, and idle sessions are not dropped by
// middleboxes that forget quiet connections. The coordinator accepts a site's pings every 5 s
// at most (more often is answered with GOAWAY); `time` is at least 10 s, twice that, so timer
// jitter never earns a site a ping strike.
struct KeepaliveConfig {
  absl::Duration time = absl::Seconds(30);
  absl::Duration timeout = absl::Seconds(20);
};

// A built-in model architecture. `logreg` has no hidden layers; `mlp` has ReLU hidden layers;
// `cnn` has one block per entry of `channels` (3x3 convolution with padding 1, ReLU, 2x2
// max-pooling) on input_shape images, then the ReLU hidden layers and the output layer.
struct ModelSpec {
  std::string arch = "mlp";  // logreg, mlp, cnn, or torchscript (then only `torchscript` is set)
  // arch torchscript: the module file (torch.jit.save) in this party's config; its parameters
  // (names, shapes, initial values) define the model.
  std::string torchscript;
  int64_t inputs = 0;  // cnn: the product of input_shape
  std::vector<int64_t> hidden;
  int64_t classes = 2;
  std::vector<int64_t> input_shape;  // cnn only: {channels, height, width}
  std::vector<int64_t> channels;     // cnn only: output channels of each convolution block
};

// Largest built-in model: 2^28 parameters (1 GiB of float32).
inline constexpr int64_t kMaxModelParameters = int64_t{1} << 28;

// cnn: the values the convolution blocks hand to the first Linear layer (last channel count x
// height x width after the poolings); 0 when the images are too small for the blocks.
int64_t CnnFlatFeatures(const ModelSpec& spec);

// The number of parameters of a built-in model; kMaxModelParameters + 1 for anything larger.
int64_t ModelParameterCount(const ModelSpec& spec);

// Checks a spec's structure and bounds as the config reader does (known arch, sizes, cnn
// geometry, at most kMaxModelParameters): for specs from elsewhere, e.g. a site checks what
// the coordinator sends before it builds the model. InvalidArgument says what is wrong.
absl::Status CheckModelSpec(const ModelSpec& spec);

// How many rounds to run and how long each stage may take.
struct RoundsConfig {
  int64_t count = 0;
  int64_t min_clients = 1;
  absl::Duration stage_timeout = absl::Seconds(60);
  // SELECT starts a round as soon as every allowed site is connected, or once this long has
  // passed with at least min_clients connected (otherwise it keeps waiting; nothing is
  // consumed while it waits).
  absl::Duration select_timeout = absl::Seconds(10);
};

// Hyperparameters sent to every site with each training task.
struct TrainingConfig {
  int64_t epochs = 1;
  int64_t batch_size = 32;
  double learning_rate = 0.1;
  std::string optimizer = "sgd";
  // FedProx (Li et al. 2020): each site adds (mu / 2) ||w - w_global||^2 to its local loss.
  // 0: plain local training.
  double proximal_mu = 0;
};

// DP-SGD asked of every site (record-level DP at each site). Absent: no DP.
struct PrivacyConfig {
  bool enabled = false;
  // Either a fixed noise multiplier, or a target epsilon per site over all rounds from which
  // the coordinator plans the smallest sigma that keeps every selected site within it.
  double noise_multiplier = 0;
  double target_epsilon = 0;
  double max_grad_norm = 1.0;
  double delta = 1e-5;
};

// Secure aggregation (SecAgg+): the coordinator learns only the sum of the sites' updates.
struct SecureAggregationConfig {
  bool enabled = false;
  // Fraction of a round's cohort that may drop out (at any stage) with the round still
  // completing; sets the neighbourhood degree and Shamir threshold. In [0, 0.5).
  double dropout_tolerance = 0.3;
  // Fixed-point encoding: values clipped to [-clip_range, clip_range], `bits` bits each,
  // summed modulo 2^modulus_bits. Validated so that no sum of all sites can wrap.
  int64_t bits = 20;
  double clip_range = 1.0;
  int64_t modulus_bits = 32;
  // FedAvg weights are example counts capped at this (0: the largest count in the cohort).
  int64_t weight_cap = 0;
  // How long each of the share-keys, masked-input and unmasking stages may take.
  absl::Duration stage_timeout = absl::Seconds(30);
};

// How site updates are combined and folded into the global model.
//
// Every strategy first forms one aggregated delta from the round's updates: the
// example-weighted mean (fedavg and the server optimizers, which therefore work under secure
// aggregation), or the unweighted coordinate-wise median / trimmed mean (the robust
// strategies, which need every site's update in the clear). A server optimizer then folds
// that delta into the global model (Reddi et al., "Adaptive Federated Optimization", ICLR
// 2021, Algorithm 2). Hyperparameters that do not apply to `strategy` are refused at load.
struct AggregationConfig {
  // fedavg | fedavgm | fedadagrad | fedadam | fedyogi | coordinate_median | trimmed_mean
  std::string strategy = "fedavg";
  // eta: x += eta * (update direction). Default 1 for fedavg, fedavgm and the robust
  // strategies, 0.01 for the adaptive ones (fedadagrad, fedadam, fedyogi).
  double server_learning_rate = 1.0;
  double momentum = 0.9;  // fedavgm: m = momentum * m + delta
  double beta1 = 0.9;     // adaptive: m = beta1 * m + (1 - beta1) * delta
  double beta2 = 0.99;    // fedadam, fedyogi: second-moment decay
  double tau = 1e-3;      // adaptive: x += eta * m / (sqrt(v) + tau); v starts at tau^2
  double trim_fraction = 0.1;  // trimmed_mean: share cut from each end per coordinate
  SecureAggregationConfig secure;
};

// A data set: a numeric CSV table (`csv`) or labelled images in IDX files (`idx`, gzipped or
// not). At a site (client config `data:`) the held-out test set is split off by
// test_fraction, or (idx) read from test_images and test_labels. For the coordinator's
// server-side evaluation (`evaluation.server.data:`) the whole file is the test set.
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

// The strategies' groups (see AggregationConfig).
bool IsAdaptiveStrategy(const std::string& strategy);  // fedadagrad, fedadam, fedyogi
bool IsRobustStrategy(const std::string& strategy);    // coordinate_median, trimmed_mean

// The central test file and how the coordinator runs cohort-evaluator on it. A csv table is
// standardized with its own class-balanced statistics (as a site standardizes its data); idx
// pixels are scaled to [0, 1] and, with `normalize`, standardized with the file's own mean
// and deviation.
struct ServerEvaluationConfig {
  DataConfig data;
  // Path of cohort-evaluator; empty: the one next to the running coordinator binary.
  std::string evaluator;
  // The evaluator process is killed (and the round's server evaluation recorded as missing)
  // after this long.
  absl::Duration timeout = absl::Minutes(10);
};

// When the sites evaluate the candidate model, and when the run stops early. The best model
// by `early_stopping_metric` (or by accuracy when early stopping is off) is kept as
// checkpoints/best.pt.
struct EvaluationConfig {
  // Evaluate every `every`-th committed round (and always the last of rounds.count).
  int64_t every = 1;
  // "", "accuracy", "loss" or "auc" (pooled, binary tasks): "" means no early stopping.
  std::string early_stopping_metric;
  // Stop after this many evaluations in a row without an improvement over the best by more
  // than min_delta.
  int64_t patience = 0;
  double min_delta = 0;
  // Server-side evaluation: the coordinator also scores each evaluated round's committed
  // model on a central test file, in a separate cohort-evaluator process (the coordinator
  // itself does not load LibTorch). Absent unless `evaluation.server` is configured.
  std::optional<ServerEvaluationConfig> server;
};

// Resource limits that protect the coordinator from a misbehaving or hostile peer.
struct LimitsConfig {
  // Uploads staged at the same time; coordinator memory is O(model x (1 + this)).
  int64_t max_concurrent_uploads = 1;
  // Largest data chunk accepted in an upload stream.
  int64_t max_chunk_bytes = 4 << 20;
  // Sessions one site may open per minute (sliding window); more are refused with
  // RESOURCE_EXHAUSTED before Welcome, so a site reconnecting in a loop cannot churn the
  // coordinator. A well-behaved site reconnects with exponential backoff and never gets close.
  int64_t max_sessions_per_minute = 30;
};

// Everything cohort-coordinator reads from its YAML file.
struct CoordinatorConfig {
  std::string source_file;
  std::string federation;
  std::string listen;
  TlsFiles tls;
  std::vector<std::string> sites;
  std::string state_dir;
  ModelSpec model;
  RoundsConfig rounds;
  TrainingConfig training;
  AggregationConfig aggregation;
  PrivacyConfig privacy;
  EvaluationConfig evaluation;
  LimitsConfig limits;
  LoggingConfig logging;
  HttpConfig http;
  KeepaliveConfig keepalive;
  // A plaintext gRPC port that serves only grpc.health.v1 (no TLS, no other service), for
  // Kubernetes' `grpc:` probes, which cannot present a client certificate. Empty: off.
  std::string health_listen;
  // Admin names (spiffe://<federation>/admin/<name>) that may call the Admin API; empty:
  // any admin certificate issued by the federation CA.
  std::vector<std::string> admins;
  uint64_t seed = 0;
  bool has_seed = false;
};

// Parses and validates a coordinator config. Relative paths are resolved against
// `base_dir` (the config file's directory when loaded from a file). Errors name the file,
// line and key.
absl::StatusOr<CoordinatorConfig> ParseCoordinatorConfig(const std::string& yaml_text,
                                                          const std::string& source_name,
                                                          const std::string& base_dir);
absl::StatusOr<CoordinatorConfig> LoadCoordinatorConfig(const std::string& path);

}  // namespace cohort::config

#endif  // COHORT_COMMON_CONFIG_COORDINATOR_CONFIG_H_
