#ifndef COHORT_SERVER_SESSION_RATE_LIMITER_H_
#define COHORT_SERVER_SESSION_RATE_LIMITER_H_

#include <deque>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace cohort::server {

// Limits how often each site may open a Session (limits.max_sessions_per_minute): a sliding
// window of the site's last accepted session starts. A site reconnecting in a tight loop (a
// bug, or a stolen certificate used to churn the coordinator) is refused until its window has
// room, while other sites are unaffected. Memory is O(sites on the allowlist x limit): only
// authorized sites reach it. Thread-safe.
class SessionRateLimiter {
 public:
  explicit SessionRateLimiter(int max_per_minute) : max_per_minute_(max_per_minute) {}

  // True, and the start recorded, when `site` has opened fewer than the limit in the minute
  // before `now`; false otherwise (nothing recorded).
  bool Allow(const std::string& site, absl::Time now);

 private:
  const int max_per_minute_;
  absl::Mutex mu_;
  std::map<std::string, std::deque<absl::Time>> starts_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cohort::server

#endif  // COHORT_SERVER_SESSION_RATE_LIMITER_H_
