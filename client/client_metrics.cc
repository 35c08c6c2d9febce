#include "client/client_metrics.h"

#include <string>

namespace cohort::client {

ClientMetrics::ClientMetrics(bool privacy_policy)
    : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  rounds_ = &BuildCounter()
                 .Name("cohort_client_rounds_total")
                 .Help("Training tasks this site accepted, by outcome (completed, failed, "
                       "aborted)")
                 .Register(*registry_);
  // Every label value exists from the start, so that rate() and alerts on them are defined
  // before the first occurrence.
  for (RoundOutcome outcome :
       {RoundOutcome::kCompleted, RoundOutcome::kFailed, RoundOutcome::kAborted}) {
    rounds_->Add({{"outcome", std::string(OutcomeLabel(outcome))}});
  }
  refusals_ = &BuildCounter()
                   .Name("cohort_client_refusals_total")
                   .Help("Training tasks this site refused before any work, by reason (not_dp, "
                         "noise, clip, budget: its privacy policy; ledger: its privacy ledger "
                         "is unreadable; other: a task it cannot run)")
                   .Register(*registry_);
  for (Refusal reason : {Refusal::kNotDp, Refusal::kNoise, Refusal::kClip, Refusal::kBudget,
                         Refusal::kLedger, Refusal::kOther}) {
    refusals_->Add({{"reason", std::string(RefusalLabel(reason))}});
  }
  evaluations_ = &BuildCounter()
                      .Name("cohort_client_evaluations_total")
                      .Help("Evaluation tasks, by outcome (completed, failed)")
                      .Register(*registry_);
  evaluations_->Add({{"outcome", "completed"}});
  evaluations_->Add({{"outcome", "failed"}});
  // Seconds: 10 ms .. about an hour; the _sum is the total training time.
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600};
  training_seconds_ = &BuildHistogram()
                           .Name("cohort_client_training_duration_seconds")
                           .Help("Wall time of each local training (successful ones)")
                           .Register(*registry_)
                           .Add({}, kBuckets);
  trained_examples_ = &BuildCounter()
                           .Name("cohort_client_trained_examples_total")
                           .Help("Examples of local training, summed over trainings")
                           .Register(*registry_)
                           .Add({});
  sessions_ = &BuildCounter()
                   .Name("cohort_client_sessions_total")
                   .Help("Sessions opened with the coordinator (the first and every reconnect)")
                   .Register(*registry_)
                   .Add({});
  connected_ = &BuildGauge()
                    .Name("cohort_client_connected")
                    .Help("1 while the site has an open session with the coordinator")
                    .Register(*registry_)
                    .Add({});
  last_round_ = &BuildGauge()
                     .Name("cohort_client_last_round")
                     .Help("Number of the last round this site completed (0: none yet)")
                     .Register(*registry_)
                     .Add({});
  if (privacy_policy) {
    epsilon_spent_ = &BuildGauge()
                          .Name("cohort_client_epsilon_spent")
                          .Help("Epsilon this site has spent, per its privacy ledger "
                                "(at the policy's delta)")
                          .Register(*registry_)
                          .Add({});
    epsilon_budget_ = &BuildGauge()
                           .Name("cohort_client_epsilon_budget")
                           .Help("The site's privacy budget (privacy.max_epsilon)")
                           .Register(*registry_)
                           .Add({});
  }
}

absl::string_view ClientMetrics::OutcomeLabel(RoundOutcome outcome) {
  switch (outcome) {
    case RoundOutcome::kCompleted:
      return "completed";
    case RoundOutcome::kFailed:
      return "failed";
    case RoundOutcome::kAborted:
      return "aborted";
  }
  return "failed";
}

absl::string_view ClientMetrics::RefusalLabel(Refusal reason) {
  switch (reason) {
    case Refusal::kNotDp:
      return "not_dp";
    case Refusal::kNoise:
      return "noise";
    case Refusal::kClip:
      return "clip";
    case Refusal::kBudget:
      return "budget";
    case Refusal::kLedger:
      return "ledger";
    case Refusal::kOther:
      return "other";
  }
  return "other";
}

void ClientMetrics::RoundEnded(RoundOutcome outcome, uint64_t round) {
  rounds_->Add({{"outcome", std::string(OutcomeLabel(outcome))}}).Increment();
  if (outcome == RoundOutcome::kCompleted) last_round_->Set(static_cast<double>(round));
}

void ClientMetrics::TaskRefused(Refusal reason) {
  refusals_->Add({{"reason", std::string(RefusalLabel(reason))}}).Increment();
}

void ClientMetrics::TrainingFinished(absl::Duration elapsed, uint64_t examples) {
  training_seconds_->Observe(absl::ToDoubleSeconds(elapsed));
  trained_examples_->Increment(static_cast<double>(examples));
}

void ClientMetrics::EvaluationEnded(bool completed) {
  evaluations_->Add({{"outcome", completed ? "completed" : "failed"}}).Increment();
}

void ClientMetrics::SetEpsilonSpent(double epsilon) {
  if (epsilon_spent_ != nullptr) epsilon_spent_->Set(epsilon);
}

void ClientMetrics::SetEpsilonBudget(double epsilon) {
  if (epsilon_budget_ != nullptr) epsilon_budget_->Set(epsilon);
}

}  // namespace cohort::client
