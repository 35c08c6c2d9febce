// A federation on loopback for cohort-sim and the benchmarks: a scratch directory, a real
// federation PKI written to files, a no-op trainer and a SiteClient running on its own
// thread. These mirror tests/support and tests/integration/harness but report errors as
// absl::Status instead of Catch2 assertions, so neither links the test framework.
#ifndef COHORT_TOOLS_SIM_LOOPBACK_H_
#define COHORT_TOOLS_SIM_LOOPBACK_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/site_client.h"
#include "client/trainer.h"
#include "common/config/client_config.h"
#include "common/config/coordinator_config.h"
#include "common/crypto/pki.h"

namespace cohort::sim {

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class ScratchDir {
 public:
  // Creates the directory; path() is empty when that failed (see status()).
  explicit ScratchDir(const std::string& prefix = "cohort-bench");
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const absl::Status& status() const { return status_; }
  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
  absl::Status status_;
};

// A federation PKI generated at run time and written under one directory: ca.pem/ca.key,
// coordinator.{pem,key} (serverAuth+clientAuth, IP SAN 127.0.0.1, DNS localhost) and one
// <site>.{pem,key} per site (clientAuth, URI SAN spiffe://<federation>/site/<site>).
class LoopbackPki {
 public:
  // Writes the CA and the coordinator identity into `dir` (created if missing).
  static absl::StatusOr<std::unique_ptr<LoopbackPki>> Create(const std::string& dir,
                                                          const std::string& federation);
  // Issues and writes the certificate of `site`.
  absl::StatusOr<config::TlsFiles> IssueSite(const std::string& site);

  config::TlsFiles coordinator_files() const;
  config::TlsFiles site_files(const std::string& site) const;
  const std::string& dir() const { return dir_; }

 private:
  LoopbackPki(std::string dir, std::string federation, crypto::PemIdentity ca)
      : dir_(std::move(dir)), federation_(std::move(federation)), ca_(std::move(ca)) {}
  absl::Status Write(const std::string& stem, const crypto::PemIdentity& identity);

  std::string dir_;
  std::string federation_;
  crypto::PemIdentity ca_;
};

// Site ids "site-000", "site-001", ... (zero-padded so that they sort numerically).
std::vector<std::string> SiteNames(int count);

// A trainer that does no work: Train returns an all-zero delta of the model's size with
// weight 1, Evaluate a fixed one-example report. It records the wall time of every call so
// a benchmark can tell when each site finished its downloads (Train and Evaluate run right
// after the model download completes).
class NoOpTrainer final : public client::Trainer {
 public:
  uint64_t train_examples() const override { return 1; }
  uint64_t test_examples() const override { return 1; }
  int64_t num_features() const override { return 0; }
  absl::Status CheckModel(const config::ModelSpec&, const tensor::ParameterLayout&) const override {
    return absl::OkStatus();
  }
  absl::StatusOr<client::TrainResult> Train(const config::ModelSpec& spec,
                                            const tensor::ParameterLayout& layout,
                                            const std::vector<float>& global,
                                            const client::TrainingParams& params) override;
  absl::StatusOr<client::EvalResult> Evaluate(const config::ModelSpec& spec,
                                              const tensor::ParameterLayout& layout,
                                              const std::vector<float>& model) override;

  // Wall time of the k-th Train / Evaluate call (k = 0, 1, ...); one per round.
  std::vector<absl::Time> train_calls() const;
  std::vector<absl::Time> evaluate_calls() const;

 private:
  mutable absl::Mutex mu_;
  std::vector<absl::Time> train_calls_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> evaluate_calls_ ABSL_GUARDED_BY(mu_);
};

// Runs a SiteClient with a NoOpTrainer on its own thread; stops and joins it on destruction.
class ClientThread {
 public:
  explicit ClientThread(config::ClientConfig config);
  // With another trainer; `setup` runs on the client before its thread starts (hooks).
  ClientThread(config::ClientConfig config, std::unique_ptr<client::Trainer> trainer,
               const std::function<void(client::SiteClient&)>& setup);
  ~ClientThread();
  ClientThread(const ClientThread&) = delete;
  ClientThread& operator=(const ClientThread&) = delete;

  // Waits for Run() to return and gives its status.
  absl::Status Join();
  // The NoOpTrainer (only for clients made without a trainer of their own).
  const NoOpTrainer& trainer() const { return *trainer_; }
  client::SiteClient& client() { return *client_; }

 private:
  NoOpTrainer* trainer_ = nullptr;  // owned by client_
  std::unique_ptr<client::SiteClient> client_;
  std::thread thread_;
  absl::Status status_;
  bool joined_ = false;
};

// A client config for `site` dialling 127.0.0.1:`port` with a short reconnect backoff.
config::ClientConfig LoopbackClientConfig(const LoopbackPki& pki, const std::string& site, int port);

// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close).
absl::StatusOr<int> PickFreeLoopbackPort();

// Per-round timing seen from the sites: for round k, when the first and the last site got
// the whole training model (Train call) and the candidate model (Evaluate call).
struct SiteRoundTimes {
  absl::Time first_train = absl::InfiniteFuture();
  absl::Time last_train = absl::InfinitePast();
  absl::Time first_eval = absl::InfiniteFuture();
  absl::Time last_eval = absl::InfinitePast();
};
std::vector<SiteRoundTimes> CollectSiteRoundTimes(
    const std::vector<std::unique_ptr<ClientThread>>& clients);

}  // namespace cohort::sim

#endif  // COHORT_TOOLS_SIM_LOOPBACK_H_
