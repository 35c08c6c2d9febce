#include "server/session_rate_limiter.h"

namespace cohort::server {

bool SessionRateLimiter::Allow(const std::string& site, absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::deque<absl::Time>& starts = starts_[site];
  while (!starts.empty() && now - starts.front() >= absl::Minutes(1)) starts.pop_front();
  if (static_cast<int>(starts.size()) >= max_per_minute_) return false;
  starts.push_back(now);
  return true;
}

}  // namespace cohort::server
