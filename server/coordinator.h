#ifndef COHORT_SERVER_COORDINATOR_H_
#define COHORT_SERVER_COORDINATOR_H_

#include <atomic>
#include <functional>
#include <map>
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
#include "common/tls/revocation.h"
#include "server/federation_service.h"
#include "server/model_blob.h"
#include "server/round.h"
#include "server/secure_aggregation.h"
#include "server/session_registry.h"

namespace cohort::server {

// cohort-coordinator as a library: the gRPC server and the round loop
// SELECT -> TRAIN -> AGGREGATE -> EVALUATE -> COMMIT, until `rounds.count` rounds are
// committed. Resumes from the last committed checkpoint in `state_dir`.
class Coordinator {
 public:
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(config::CoordinatorConfig config);
  ~Coordinator();

  // Binds the listen address (port 0 picks a free port), starts serving and the round loop.
  absl::Status Start();
  // The bound port, after Start().
  int port() const { return port_; }
  // Blocks until the round loop ends; returns its status (OK when every round committed).
  absl::Status Wait();
  // Stops the round loop, ends every session and stops the server. Safe to call twice.
  void Shutdown();

  // Sees every unmasked secure sum (round, sum, survivors) before it is decoded: for
  // cohort-sim --dump and tests. Set before Start().
  using SecureSumObserver = std::function<void(uint64_t, const secagg::ModVector&,
                                               const std::vector<std::string>&)>;
  void SetSecureSumObserver(SecureSumObserver observer) { secure_sum_observer_ = std::move(observer); }

  // The current global model (for tests and benchmarks).
  std::vector<float> GlobalModel() const;
  const tensor::ParameterLayout& layout() const { return layout_; }

 private:
  Coordinator(config::CoordinatorConfig config, std::unique_ptr<state::StateStore> store,
              tensor::ParameterLayout layout, std::shared_ptr<const ModelBlob> global,
              uint64_t committed, uint64_t last_round);
  void RoundLoop();
  // Runs one round; returns true when it committed.
  bool RunRound(uint64_t round_number);
  // Secure aggregation for one round: the SecAggConfig sent with the task and the state.
  absl::StatusOr<std::shared_ptr<SecureAggregation>> StartSecureAggregation(
      uint64_t round_number, const std::vector<std::string>& participants,
      cohort::v1::SecAggConfig* secagg);
  // Runs the advertise (until `train_deadline`), share-keys, masked-input and unmasking
  // stages; returns the aggregated model and the sites whose update is in it.
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
  uint64_t committed_rounds_;
  // The noise multiplier sent to the sites: fixed, or planned from privacy.target_epsilon.
  double noise_multiplier_ = 0;
  // Plans noise_multiplier_ for `participants` (their training set sizes) so that each stays
  // within privacy.target_epsilon over the configured rounds.
  absl::Status PlanNoise(const std::vector<std::string>& participants);
  // DP accounting per site, rebuilt from state.db at start (round loop thread only).
  std::map<std::string, dp::RdpAccountant> site_accountants_;
  uint64_t last_round_number_;

  SecureSumObserver secure_sum_observer_;
  std::shared_ptr<tls::RevocationList> crl_;  // null without tls.crl
  SessionRegistry sessions_;
  RoundBoard board_;
  std::unique_ptr<FederationService> service_;
  std::unique_ptr<grpc::Server> server_;
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
