#include "server/coordinator_metrics.h"

namespace cohort::server {

CoordinatorMetrics::CoordinatorMetrics() : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  rounds_ = &BuildCounter()
                 .Name("cohort_coordinator_rounds_total")
                 .Help("Rounds that ended, by outcome (committed or aborted)")
                 .Register(*registry_);
  // Both outcomes exist from the start, so a rate() over them is defined before the first.
  rounds_->Add({{"outcome", "committed"}});
  rounds_->Add({{"outcome", "aborted"}});
  stage_seconds_ = &BuildHistogram()
                        .Name("cohort_coordinator_stage_duration_seconds")
                        .Help("Wall time of each round stage")
                        .Register(*registry_);
  dropouts_ = &BuildCounter()
                   .Name("cohort_coordinator_dropouts_total")
                   .Help("Sites that left a round, by the stage they left in")
                   .Register(*registry_);
  site_epsilon_ = &BuildGauge()
                       .Name("cohort_coordinator_site_epsilon")
                       .Help("Epsilon each site has spent, accounted from its DP-SGD reports")
                       .Register(*registry_);
  connected_sites_ = &BuildGauge()
                          .Name("cohort_coordinator_connected_sites")
                          .Help("Sites with an open session")
                          .Register(*registry_)
                          .Add({});
  bytes_received_ = &BuildCounter()
                         .Name("cohort_coordinator_received_bytes_total")
                         .Help("Bytes received from sites: updates and session messages")
                         .Register(*registry_)
                         .Add({});
  bytes_sent_ = &BuildCounter()
                     .Name("cohort_coordinator_sent_bytes_total")
                     .Help("Bytes sent to sites: model downloads and session messages")
                     .Register(*registry_)
                     .Add({});
  current_round_ = &BuildGauge()
                        .Name("cohort_coordinator_current_round")
                        .Help("Number of the round in progress (0: none)")
                        .Register(*registry_)
                        .Add({});
  committed_rounds_ = &BuildGauge()
                           .Name("cohort_coordinator_committed_rounds")
                           .Help("Rounds committed so far, including before a restart")
                           .Register(*registry_)
                           .Add({});
  paused_ = &BuildGauge()
                 .Name("cohort_coordinator_paused")
                 .Help("1 while an operator has paused the federation")
                 .Register(*registry_)
                 .Add({});
  test_accuracy_ = &BuildGauge()
                        .Name("cohort_coordinator_test_accuracy")
                        .Help("Pooled held-out accuracy of the last committed model")
                        .Register(*registry_)
                        .Add({});
  server_test_accuracy_ =
      &BuildGauge()
           .Name("cohort_coordinator_server_test_accuracy")
           .Help("Accuracy of the last server-evaluated model on the central test file")
           .Register(*registry_)
           .Add({});
  server_evaluation_failures_ =
      &prometheus::BuildCounter()
           .Name("cohort_coordinator_server_evaluation_failures_total")
           .Help("Server-side evaluations that failed (evaluator error, timeout, bad report)")
           .Register(*registry_)
           .Add({});
}

void CoordinatorMetrics::RoundEnded(bool committed) {
  rounds_->Add({{"outcome", committed ? "committed" : "aborted"}}).Increment();
}

void CoordinatorMetrics::StageFinished(absl::string_view stage, absl::Duration elapsed) {
  // Seconds: 10 ms .. about 20 minutes.
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200};
  stage_seconds_->Add({{"stage", std::string(stage)}}, kBuckets)
      .Observe(absl::ToDoubleSeconds(elapsed));
}

void CoordinatorMetrics::SitesDropped(absl::string_view stage, uint64_t count) {
  if (count == 0) return;
  dropouts_->Add({{"stage", std::string(stage)}}).Increment(static_cast<double>(count));
}

void CoordinatorMetrics::SetSiteEpsilon(const std::string& site, double epsilon) {
  site_epsilon_->Add({{"site", site}}).Set(epsilon);
}

}  // namespace cohort::server
