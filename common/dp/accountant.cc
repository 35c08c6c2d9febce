#include "common/dp/accountant.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/dp/rdp.h"

namespace cohort::dp {

absl::Status CheckSampleRate(double q) {
  if (q > 0 && q <= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("sample rate q must be in (0, 1]; got ", q));
}

absl::Status CheckNoiseMultiplier(double sigma) {
  if (sigma > 0 && std::isfinite(sigma)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("noise multiplier sigma must be positive and finite; got ", sigma));
}

absl::Status CheckSteps(int64_t steps) {
  if (steps >= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("steps must be at least 1; got ", steps));
}

absl::Status CheckDelta(double delta) {
  if (delta > 0 && delta < 1) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("delta must be in (0, 1); got ", delta));
}

double RdpToEpsilon(double rdp, double alpha, double delta) {
  return rdp - (std::log(delta) + std::log(alpha)) / (alpha - 1) + std::log1p(-1 / alpha);
}

RdpAccountant::RdpAccountant()
    : orders_(RdpCalculator::Default().orders()), rdp_(orders_.size(), 0.0) {}

void RdpAccountant::AddSteps(double q, double sigma, int64_t steps) {
  if (!status_.ok()) return;
  if (!(q >= 0 && q <= 1)) {
    status_ = absl::InvalidArgumentError(absl::StrCat("sample rate q must be in [0, 1]; got ", q));
    return;
  }
  if (!(sigma > 0)) {
    status_ = absl::InvalidArgumentError(
        absl::StrCat("noise multiplier sigma must be positive; got ", sigma));
    return;
  }
  if (steps < 0) {
    status_ = absl::InvalidArgumentError(absl::StrCat("steps must not be negative; got ", steps));
    return;
  }
  steps_ += steps;
  if (steps == 0 || q == 0 || std::isinf(sigma)) return;  // nothing released
  const std::vector<double>& per_step = PerStepRdp(q, sigma);
  const double n = static_cast<double>(steps);
  for (size_t k = 0; k < rdp_.size(); ++k) rdp_[k] += n * per_step[k];
  has_cost_ = true;
}

const std::vector<double>& RdpAccountant::PerStepRdp(double q, double sigma) {
  const std::pair<double, double> key(q, sigma);
  if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  if (cache_.size() >= kMaxCachedPairs) cache_.clear();
  // The arguments were checked by AddSteps, so this cannot fail.
  std::vector<double> rdp = *RdpCalculator::Default().Compute(q, sigma);
  return cache_.emplace(key, std::move(rdp)).first->second;
}

absl::StatusOr<EpsilonAtOrder> RdpAccountant::GetEpsilon(double delta) const {
  if (!status_.ok()) return status_;
  if (absl::Status s = CheckDelta(delta); !s.ok()) return s;
  if (!has_cost_) return EpsilonAtOrder{0.0, 0.0};
  EpsilonAtOrder best{std::numeric_limits<double>::infinity(), orders_.back()};
  for (size_t k = 0; k < orders_.size(); ++k) {
    const double epsilon = RdpToEpsilon(rdp_[k], orders_[k], delta);
    if (epsilon < best.epsilon) best = EpsilonAtOrder{epsilon, orders_[k]};
  }
  // The conversion goes below zero for a small RDP and a delta close to 1; epsilon cannot.
  if (best.epsilon < 0) best.epsilon = 0;
  return best;
}

absl::StatusOr<EpsilonAtOrder> ComputeEpsilon(double q, double sigma, int64_t steps, double delta) {
  for (const absl::Status& s :
       {CheckSampleRate(q), CheckNoiseMultiplier(sigma), CheckSteps(steps), CheckDelta(delta)}) {
    if (!s.ok()) return s;
  }
  RdpAccountant accountant;
  accountant.AddSteps(q, sigma, steps);
  return accountant.GetEpsilon(delta);
}

}  // namespace cohort::dp
