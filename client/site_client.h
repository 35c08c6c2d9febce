#ifndef COHORT_CLIENT_SITE_CLIENT_H_
#define COHORT_CLIENT_SITE_CLIENT_H_

#include <atomic>
#include <memory>
#include <random>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "client/trainer.h"
#include "cohort/v1/cohort.grpc.pb.h"
#include "common/config/client_config.h"
#include "common/dp/ledger.h"

namespace cohort::client {

// cohort-client as a library: dials out to the coordinator over mutual TLS, keeps one
// Session stream open, and runs each task it pushes (download the model in chunks, train or
// evaluate locally, stream the update back). Reconnects with exponential backoff and full
// jitter; the site never listens on a port.
class SiteClient {
 public:
  SiteClient(config::ClientConfig config, std::unique_ptr<Trainer> trainer);

  // Runs until the coordinator reports the federation done (OK) or Stop() (Cancelled).
  absl::Status Run();
  // Ends Run() from another thread.
  void Stop();

  // Counters for tests and the log.
  int tasks_completed() const { return tasks_completed_; }
  int sessions_opened() const { return sessions_opened_; }
  // The site's total epsilon per its ledger (0 without a privacy policy).
  double spent_epsilon() const { return spent_epsilon_; }

 private:
  enum class SessionEnd { kDone, kLost };
  // One connection: Hello, then tasks until the stream ends.
  SessionEnd RunSession(std::string* why);
  absl::Status HandleTrain(cohort::v1::Federation::Stub& stub, const cohort::v1::TrainTask& task);
  absl::StatusOr<EvalResult> HandleEvaluate(cohort::v1::Federation::Stub& stub,
                                            const cohort::v1::EvaluateTask& task);
  absl::StatusOr<std::vector<float>> Download(cohort::v1::Federation::Stub& stub, uint64_t round,
                                              const cohort::v1::ModelRef& ref,
                                              int64_t deadline_unix_ms);
  absl::Status Upload(cohort::v1::Federation::Stub& stub, const cohort::v1::TrainTask& task,
                      const TrainResult& result);

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
};

}  // namespace cohort::client

#endif  // COHORT_CLIENT_SITE_CLIENT_H_
