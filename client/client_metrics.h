#ifndef COHORT_CLIENT_CLIENT_METRICS_H_
#define COHORT_CLIENT_CLIENT_METRICS_H_

#include <cstdint>
#include <memory>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cohort::client {

// The site daemon's Prometheus instruments (served at /metrics when http.listen is set).
// Every metric is named cohort_client_*; labels take values from fixed sets only (outcome,
// reason), never free text. Thread-safe: prometheus-cpp instruments are atomic.
class ClientMetrics {
 public:
  // Round outcomes (label `outcome` of cohort_client_rounds_total).
  enum class RoundOutcome {
    kCompleted,  // the update was sent (a secure round: the unmask shares too)
    kFailed,     // an accepted task failed: download, training, ledger write, upload, protocol
    kAborted,    // the coordinator aborted the secure round the site was in
  };
  // Why the site refused a training task before doing any work (label `reason` of
  // cohort_client_refusals_total): its privacy policy (not_dp, noise, clip, budget), a
  // privacy ledger it cannot read (ledger), or a task it cannot run (other: a model that
  // does not fit the data, a weak or malformed secure aggregation, a malformed DP request).
  enum class Refusal { kNotDp, kNoise, kClip, kBudget, kLedger, kOther };

  // `privacy_policy`: the site has a privacy policy, so the epsilon gauges exist.
  explicit ClientMetrics(bool privacy_policy);

  prometheus::Registry& registry() { return *registry_; }

  // A training task ended with `outcome`; `round` becomes the last completed round.
  void RoundEnded(RoundOutcome outcome, uint64_t round);
  void TaskRefused(Refusal reason);
  // Local training of `examples` examples took `elapsed` (wall time).
  void TrainingFinished(absl::Duration elapsed, uint64_t examples);
  void EvaluationEnded(bool completed);
  void SessionOpened() { sessions_->Increment(); }
  void SetConnected(bool connected) { connected_->Set(connected ? 1 : 0); }
  // The site's epsilon per its ledger, and its budget (no-ops without a privacy policy).
  void SetEpsilonSpent(double epsilon);
  void SetEpsilonBudget(double epsilon);

  static absl::string_view OutcomeLabel(RoundOutcome outcome);
  static absl::string_view RefusalLabel(Refusal reason);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* rounds_;
  prometheus::Family<prometheus::Counter>* refusals_;
  prometheus::Family<prometheus::Counter>* evaluations_;
  prometheus::Histogram* training_seconds_;
  prometheus::Counter* trained_examples_;
  prometheus::Counter* sessions_;
  prometheus::Gauge* connected_;
  prometheus::Gauge* last_round_;
  prometheus::Gauge* epsilon_spent_ = nullptr;   // set only with a privacy policy
  prometheus::Gauge* epsilon_budget_ = nullptr;  // likewise
};

}  // namespace cohort::client

#endif  // COHORT_CLIENT_CLIENT_METRICS_H_
