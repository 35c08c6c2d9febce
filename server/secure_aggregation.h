#ifndef COHORT_SERVER_SECURE_AGGREGATION_H_
#define COHORT_SERVER_SECURE_AGGREGATION_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cohort/v1/secagg.pb.h"
#include "common/secagg/secagg_server.h"

namespace cohort::server {

// One round's secure aggregation as the coordinator's threads share it: the RPC handlers
// feed the sites' messages in, the round loop waits for each stage and closes it. A thin
// lock around secagg::SecAggServer, which has no threads of its own.
class SecureAggregation {
 public:
  explicit SecureAggregation(std::unique_ptr<secagg::SecAggServer> server)
      : server_(std::move(server)) {}

  // A Session message from `site` (advertisement, key shares, unmask response or abort).
  // A site that reports tampering aborts the whole round: honest sites stop taking part.
  absl::Status OnSiteMessage(const std::string& site, const v1::SecAggClientMessage& message);
  // The masked-input upload path.
  absl::Status CheckMaskedInput(const std::string& site);
  absl::Status OnMaskedInput(const std::string& site, const secagg::ModVector& masked);
  void DropSite(const std::string& site, const std::string& reason);

  // Blocks until every site still expected in the current stage answered, the round
  // aborted, Cancel() was called, or `deadline`. True when the stage is complete.
  bool WaitForStage(absl::Time deadline);
  void Cancel();

  // Runs `action` with the state machine locked (the round loop's stage transitions).
  template <typename Action>
  auto Locked(Action action) {
    absl::MutexLock lock(&mu_);
    return action(*server_);
  }

 private:
  bool StageDone() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  std::unique_ptr<secagg::SecAggServer> server_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace cohort::server

#endif  // COHORT_SERVER_SECURE_AGGREGATION_H_
