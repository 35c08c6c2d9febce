#ifndef COHORT_SERVER_COORDINATOR_H_
#define COHORT_SERVER_COORDINATOR_H_

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "common/config/coordinator_config.h"
#include "common/dp/accountant.h"
#include "common/state/state_store.h"
#include "common/tensor/layout.h"
#include "common/http/http_server.h"
#include "common/tls/revocation.h"
#include "server/admin_service.h"
#include "server/coordinator_metrics.h"
#include "server/federation_activity.h"
#include "server/federation_service.h"
#include "server/model_blob.h"
#include "server/round.h"
#include "server/secure_aggregation.h"
#include "server/server_evaluator.h"
#include "server/server_optimizer.h"
#include "server/session_registry.h"

namespace cohort::server {

// cohort-coordinator as a library: the gRPC server (Federation and Admin services), the
// optional HTTP port (/metrics, /healthz, /readyz, status page) and the round loop
// SELECT -> TRAIN -> AGGREGATE -> EVALUATE -> COMMIT, until `rounds.count` rounds are
// committed. Resumes from the last committed checkpoint in `state_dir`.
class Coordinator : public FederationControl {
 public:
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(config::CoordinatorConfig config);
  ~Coordinator() override;

  // Binds the listen address (port 0 picks a free port), starts serving and the round loop.
  absl::Status Start();
  // The bound port, after Start().
  int port() const { return port_; }
  // The bound plaintext health port after Start(), 0 without `health.listen`.
  int health_port() const { return health_port_; }
  // The bound HTTP port after Start(), 0 without `http.listen`.
  int http_port() const { return http_ ? http_->port() : 0; }
  // Blocks until the round loop ends; returns its status (OK when every round committed).
  absl::Status Wait();
  // Stops the round loop, ends every session and stops the server. Safe to call twice.
  void Shutdown();

  // Sees every unmasked secure sum (round, sum, survivors) before it is decoded: for
  // cohort-sim --dump and tests. Set before Start().
  using SecureSumObserver = std::function<void(uint64_t, const secagg::ModVector&,
                                               const std::vector<std::string>&)>;
  void SetSecureSumObserver(SecureSumObserver observer) { secure_sum_observer_ = std::move(observer); }

  // FederationControl (the Admin service).
  cohort::v1::FederationStatus Status() const override;
  absl::Status Pause(const std::string& by, const std::string& reason) override;
  absl::Status Resume(const std::string& by) override;
  absl::StatusOr<uint64_t> AbortRound(uint64_t round, const std::string& by,
                                      const std::string& reason) override;
  absl::StatusOr<std::vector<state::RoundRecord>> Rounds(bool include_aborted) override;

  // The current global model (for tests and benchmarks).
  std::vector<float> GlobalModel() const;
  const tensor::ParameterLayout& layout() const { return layout_; }

 private:
  Coordinator(config::CoordinatorConfig config, std::unique_ptr<state::StateStore> store,
              tensor::ParameterLayout layout, std::shared_ptr<const ModelBlob> global,
              ServerOptimizer optimizer, uint64_t committed, uint64_t last_round);
  void RoundLoop();
  // Starts the HTTP port (http.listen).
  absl::Status StartHttp();
  // Why the round `round` must stop now (shutdown or an operator's abort), if it must.
  std::optional<std::string> InterruptReason(uint64_t round) const;
  // Blocks while the federation is paused (and not stopping).
  void WaitWhilePaused();
  // The round loop enters `stage` of `round`.
  void Enter(uint64_t round, absl::string_view stage) { activity_.Enter(round, stage, absl::Now()); }
  // Runs one round; returns true when it committed.
  bool RunRound(uint64_t round_number);
  // Secure aggregation for one round: the SecAggConfig sent with the task and the state.
  absl::StatusOr<std::shared_ptr<SecureAggregation>> StartSecureAggregation(
      uint64_t round_number, const std::vector<std::string>& participants,
      cohort::v1::SecAggConfig* secagg);
  // Runs the advertise (until `train_deadline`), share-keys, masked-input and unmasking
  // stages; returns the aggregated delta (the weighted mean of the survivors' deltas, as
  // decoded from the unmasked sum) and the sites whose update is in it.
  absl::StatusOr<std::vector<float>> RunSecureStages(Round& round, SecureAggregation& secure,
                                                     absl::Time train_deadline,
                                                     std::vector<std::string>* contributors);
  // Sends every site still in the current stage the message `make` builds for it; a site
  // that cannot be reached is dropped.
  void SendSecAggMessages(uint64_t round_number, SecureAggregation& secure,
                          const std::function<absl::StatusOr<cohort::v1::SecAggServerMessage>(
                              secagg::SecAggServer&, const std::string&)>& make);
  // Ends the sessions of sites whose certificate is now revoked (tls.crl) or expired: they
  // were admitted at their handshake, before the change. Called before each round.
  void CloseRevokedSessions();
  void Broadcast(const cohort::v1::CoordinatorMessage& message,
                 const std::vector<std::string>& sites, std::vector<std::string>* failed);
  cohort::v1::ModelRef MakeModelRef(const ModelBlob& blob) const;

  const config::CoordinatorConfig config_;
  std::unique_ptr<state::StateStore> store_;
  const tensor::ParameterLayout layout_;

  mutable absl::Mutex model_mu_;
  std::shared_ptr<const ModelBlob> global_ ABSL_GUARDED_BY(model_mu_);
  // Folds each round's aggregated delta into the model; its state is that of the last
  // committed round (round loop thread only).
  ServerOptimizer optimizer_;
  uint64_t committed_rounds_;
  // The noise multiplier sent to the sites: fixed, or planned from privacy.target_epsilon.
  double noise_multiplier_ = 0;
  // Plans noise_multiplier_ for `participants` (their training set sizes) so that each stays
  // within privacy.target_epsilon over the configured rounds.
  absl::Status PlanNoise(const std::vector<std::string>& participants);
  // Best-model tracking and early stopping (round loop thread; rebuilt from state.db at
  // start). The metric is evaluation.early_stopping_metric, or accuracy when that is off.
  std::optional<double> EvaluationMetric(const state::RoundRecord& record) const;
  // Folds a committed round in: a new best rewrites checkpoints/best.pt from `model` (when
  // given); decides early stopping. Returns the status of writing best.pt.
  absl::Status NoteCommittedRound(const state::RoundRecord& record,
                                  const std::vector<float>* model);
  uint64_t best_round_ = 0;
  std::optional<double> best_metric_;
  int64_t evaluations_since_best_ = 0;
  std::string early_stop_reason_;  // set when early stopping ends the run
  // Scores each evaluated round's checkpoint on the central test file (evaluation.server);
  // empty when not configured.
  std::optional<ServerEvaluator> server_evaluator_;
  // Runs server_evaluator_ on committed round `record` and records the result (a failure is
  // logged and counted; the round stays committed).
  void EvaluateOnServer(const state::RoundRecord& record);
  // DP accounting per site, rebuilt from state.db at start (round loop thread only).
  std::map<std::string, dp::RdpAccountant> site_accountants_;
  uint64_t last_round_number_;

  SecureSumObserver secure_sum_observer_;
  const absl::Time started_at_ = absl::Now();
  CoordinatorMetrics metrics_;
  FederationActivity activity_{&metrics_, absl::Now()};
  std::atomic<uint64_t> committed_snapshot_{0};  // committed_rounds_, readable off the loop
  std::atomic<uint64_t> last_round_snapshot_{0};

  // Operator control (Admin service threads write, the round loop reads).
  mutable absl::Mutex control_mu_;
  bool paused_ ABSL_GUARDED_BY(control_mu_) = false;
  std::string pause_reason_ ABSL_GUARDED_BY(control_mu_);
  std::map<uint64_t, std::string> abort_requests_ ABSL_GUARDED_BY(control_mu_);
  std::shared_ptr<tls::RevocationList> crl_;  // null without tls.crl
  SessionRegistry sessions_;
  RoundBoard board_;
  std::unique_ptr<FederationService> service_;
  std::unique_ptr<AdminService> admin_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;  // plaintext, grpc.health.v1 only
  int health_port_ = 0;
  std::unique_ptr<http::HttpServer> http_;
  int port_ = 0;

  std::thread loop_thread_;
  std::atomic<bool> stopping_{false};
  absl::Notification loop_done_;
  absl::Status loop_status_;
  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace cohort::server

#endif  // COHORT_SERVER_COORDINATOR_H_
