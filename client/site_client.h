#ifndef COHORT_CLIENT_SITE_CLIENT_H_
#define COHORT_CLIENT_SITE_CLIENT_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "client/client_metrics.h"
#include "client/trainer.h"
#include "cohort/v1/cohort.grpc.pb.h"
#include "common/config/client_config.h"
#include "common/dp/ledger.h"
#include "common/secagg/mod_vector.h"
#include "common/secagg/secagg_client.h"

namespace cohort::http {
class HttpServer;
}

namespace cohort::client {

// cohort-client as a library: dials out to the coordinator over mutual TLS, keeps one
// Session stream open, and runs each task it pushes (download the model in chunks, train or
// evaluate locally, stream the update back). Reconnects with exponential backoff and full
// jitter. The site listens on no port for the federation; with http.listen set, Run() also
// serves /metrics, /healthz and /readyz on that local port.
class SiteClient {
 public:
  SiteClient(config::ClientConfig config, std::unique_ptr<Trainer> trainer);

  // The stages of secure aggregation at which a site can be made to vanish (fault injection
  // for tests and cohort-sim).
  // kTrain: in local training, before the privacy ledger records the round (any round).
  enum class SecAggStage { kTrain, kAdvertise, kShareKeys, kMaskedInput, kUnmask };
  // Parses "train", "advertise", "share", "masked" or "unmask".
  static absl::StatusOr<SecAggStage> ParseSecAggStage(absl::string_view name);
  // Fault injection: on reaching `stage` of a secure round, call `vanish` and send nothing
  // more for that round (`vanish` may Stop() the client or kill the process).
  void SetVanishAt(SecAggStage stage, std::function<void()> vanish);
  // Observes each quantized input before it is masked (cohort-sim --dump): round, words.
  void SetInputObserver(std::function<void(uint64_t, const secagg::ModVector&)> observer);

  // Runs until the coordinator reports the federation done (OK) or Stop() (Cancelled). The
  // HTTP port (http.listen) is open from after the privacy ledger is opened until Run()
  // returns.
  absl::Status Run();
  // Ends Run() from another thread.
  void Stop();

  // Counters for tests and the log.
  int tasks_completed() const { return tasks_completed_; }
  int sessions_opened() const { return sessions_opened_; }
  // Bytes of updates (chunk streams) and secure aggregation messages this site sent.
  uint64_t bytes_sent() const { return bytes_sent_; }
  // The site's total epsilon per its ledger (0 without a privacy policy).
  double spent_epsilon() const { return spent_epsilon_; }
  // The bound HTTP port while Run() serves http.listen; 0 before, after, and without it.
  int http_port() const { return http_port_; }

 private:
  using SessionStream =
      grpc::ClientReaderWriter<cohort::v1::SiteMessage, cohort::v1::CoordinatorMessage>;
  // kRefused: the coordinator refused the session for a reason that retrying cannot fix
  // (FAILED_PRECONDITION before Welcome, e.g. a model architecture mismatch).
  enum class SessionEnd { kDone, kLost, kRefused };
  // (Re)creates channel_ with credentials read from the TLS files now.
  absl::Status OpenChannel();
  // One connection: Hello, then tasks until the stream ends.
  SessionEnd RunSession(std::string* why);
  // Serves /metrics, /healthz and /readyz on http.listen (nullptr without it).
  absl::StatusOr<std::unique_ptr<http::HttpServer>> StartHttp();
  // A training task: CheckTrainTask, then TrainAndSend; counts the outcome.
  absl::Status HandleTrain(cohort::v1::Federation::Stub& stub, SessionStream& stream,
                           const cohort::v1::TrainTask& task);
  // What a training task asks for, once the site has agreed to run it.
  struct AcceptedTask {
    tensor::ParameterLayout layout;
    config::ModelSpec spec;
    DpRoundPlan plan;
  };
  // The checks before any work (model shape, secure aggregation parameters, the site's
  // privacy policy); a task that fails one is refused and counted by reason.
  absl::StatusOr<AcceptedTask> CheckTrainTask(const cohort::v1::TrainTask& task);
  // Downloads, trains, records the round in the ledger and sends the update (or starts the
  // secure round).
  absl::Status TrainAndSend(cohort::v1::Federation::Stub& stub, SessionStream& stream,
                            const cohort::v1::TrainTask& task, const AcceptedTask& accepted);
  // Remembers the outcome of a privacy ledger read or write for /healthz: an error marks the
  // site unhealthy (it cannot train) until a later ledger access succeeds.
  void NoteLedgerAccess(const absl::Status& status);
  // Secure aggregation: quantizes the trained update and advertises fresh keys.
  absl::Status StartSecureRound(SessionStream& stream, const cohort::v1::TrainTask& task,
                                const TrainResult& result);
  // One coordinator message of the secure round under way.
  absl::Status HandleSecAgg(cohort::v1::Federation::Stub& stub, SessionStream& stream,
                            const cohort::v1::SecAggServerMessage& message);
  // True (and the vanish hook called) when fault injection ends the site at `stage`.
  bool VanishesAt(SecAggStage stage);
  absl::StatusOr<EvalResult> HandleEvaluate(cohort::v1::Federation::Stub& stub,
                                            const cohort::v1::EvaluateTask& task);
  absl::StatusOr<std::vector<float>> Download(cohort::v1::Federation::Stub& stub, uint64_t round,
                                              const cohort::v1::ModelRef& ref,
                                              int64_t deadline_unix_ms);
  absl::Status Upload(cohort::v1::Federation::Stub& stub, const cohort::v1::TrainTask& task,
                      const TrainResult& result, absl::string_view payload,
                      size_t value_bytes, uint32_t masked_modulus_bits);

  // The secure round under way (session thread only): the task, its metrics, the quantized
  // input awaiting its masks, and the protocol state.
  struct SecureRound {
    cohort::v1::TrainTask task;
    TrainResult metrics;  // delta emptied
    std::optional<secagg::ModVector> input;
    std::unique_ptr<secagg::SecAggClient> protocol;
  };
  std::unique_ptr<SecureRound> secure_round_;
  std::string welcome_federation_;
  std::optional<SecAggStage> vanish_stage_;
  std::function<void()> vanish_;
  std::function<void(uint64_t, const secagg::ModVector&)> input_observer_;

  const config::ClientConfig config_;
  std::unique_ptr<Trainer> trainer_;
  std::unique_ptr<dp::PrivacyLedger> ledger_;  // set when the site has a privacy policy
  std::shared_ptr<grpc::Channel> channel_;
  std::mt19937_64 jitter_;
  std::atomic<bool> stopping_{false};
  absl::Mutex mu_;
  grpc::ClientContext* session_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  // The model download or update upload under way, so that Stop() ends it at once rather
  // than at its deadline.
  grpc::ClientContext* transfer_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Registers `context` as the transfer under way for its lifetime.
  class TransferScope;
  std::atomic<int> tasks_completed_{0};
  std::atomic<double> spent_epsilon_{0};
  std::atomic<int> sessions_opened_{0};
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<int> http_port_{0};
  std::atomic<bool> connected_{false};
  ClientMetrics metrics_;
  absl::Mutex health_mu_;
  // Why the privacy ledger cannot be used (empty: it can, or there is none).
  std::string ledger_problem_ ABSL_GUARDED_BY(health_mu_);
};

}  // namespace cohort::client

#endif  // COHORT_CLIENT_SITE_CLIENT_H_
