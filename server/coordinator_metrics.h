#ifndef COHORT_SERVER_COORDINATOR_METRICS_H_
#define COHORT_SERVER_COORDINATOR_METRICS_H_

#include <cstdint>
#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cohort::server {

// The coordinator's Prometheus instruments (served at /metrics). Every metric is named
// cohort_coordinator_*; labels are bounded: outcome, stage (a fixed set) and site (the
// configured allowlist). Thread-safe: prometheus-cpp instruments are atomic.
class CoordinatorMetrics {
 public:
  CoordinatorMetrics();

  prometheus::Registry& registry() { return *registry_; }

  // A round ended, committed or aborted.
  void RoundEnded(bool committed);
  // A round stage (train, share_keys, masked_input, unmask, evaluate, commit) took `elapsed`.
  void StageFinished(absl::string_view stage, absl::Duration elapsed);
  // `count` sites left the round during `stage`.
  void SitesDropped(absl::string_view stage, uint64_t count);
  void SetConnectedSites(uint64_t count) { connected_sites_->Set(static_cast<double>(count)); }
  void AddBytesReceived(uint64_t bytes) { bytes_received_->Increment(static_cast<double>(bytes)); }
  void AddBytesSent(uint64_t bytes) { bytes_sent_->Increment(static_cast<double>(bytes)); }
  // The epsilon a site has spent, as accounted from its reports (delta as configured).
  void SetSiteEpsilon(const std::string& site, double epsilon);
  void SetCurrentRound(uint64_t round) { current_round_->Set(static_cast<double>(round)); }
  void SetCommittedRounds(uint64_t rounds) { committed_rounds_->Set(static_cast<double>(rounds)); }
  void SetPaused(bool paused) { paused_->Set(paused ? 1 : 0); }
  void SetTestAccuracy(double accuracy) { test_accuracy_->Set(accuracy); }
  // Server-side evaluation (evaluation.server): the last result, or one more failure.
  void SetServerTestAccuracy(double accuracy) { server_test_accuracy_->Set(accuracy); }
  void ServerEvaluationFailed() { server_evaluation_failures_->Increment(); }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* rounds_;
  prometheus::Family<prometheus::Histogram>* stage_seconds_;
  prometheus::Family<prometheus::Counter>* dropouts_;
  prometheus::Family<prometheus::Gauge>* site_epsilon_;
  prometheus::Gauge* connected_sites_;
  prometheus::Counter* bytes_received_;
  prometheus::Counter* bytes_sent_;
  prometheus::Gauge* current_round_;
  prometheus::Gauge* committed_rounds_;
  prometheus::Gauge* paused_;
  prometheus::Gauge* test_accuracy_;
  prometheus::Gauge* server_test_accuracy_;
  prometheus::Counter* server_evaluation_failures_;
};

}  // namespace cohort::server

#endif  // COHORT_SERVER_COORDINATOR_METRICS_H_
