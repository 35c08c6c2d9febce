#include "server/federation_activity.h"

#include <utility>

namespace cohort::server {
namespace {

bool IsRoundStage(absl::string_view stage) {
  return stage != FederationActivity::kWaiting && stage != FederationActivity::kPaused &&
         stage != FederationActivity::kDone && !stage.empty();
}

}  // namespace

FederationActivity::FederationActivity(CoordinatorMetrics* metrics, absl::Time now)
    : metrics_(metrics) {
  now_.stage = std::string(kWaiting);
  now_.stage_started = now;
}

void FederationActivity::Enter(uint64_t round, absl::string_view stage, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (now_.round != 0 && IsRoundStage(now_.stage) && metrics_ != nullptr) {
    metrics_->StageFinished(now_.stage, now - now_.stage_started);
  }
  now_.round = round;
  now_.stage = std::string(stage);
  now_.stage_started = now;
  if (metrics_ != nullptr) metrics_->SetCurrentRound(round);
}

void FederationActivity::RecordError(uint64_t round, std::string site, std::string message,
                                     absl::Time now) {
  absl::MutexLock lock(&mu_);
  now_.errors.push_back(Error{now, round, std::move(site), std::move(message)});
  while (now_.errors.size() > kMaxErrors) now_.errors.pop_front();
}

void FederationActivity::RecordDrop(uint64_t round, const std::string& site,
                                    const std::string& reason, absl::Time now) {
  {
    absl::MutexLock lock(&mu_);
    now_.drop_reasons[site] = reason;
  }
  RecordError(round, site, reason, now);
}

FederationActivity::Snapshot FederationActivity::Get() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

}  // namespace cohort::server
