// SessionRateLimiter: a sliding one-minute window per site (times injected).
#include <catch2/catch.hpp>

#include "server/session_rate_limiter.h"

namespace cohort::server {

TEST_CASE("The session limiter allows the limit per sliding minute, per site", "[limits]") {
  SessionRateLimiter limiter(3);
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  CHECK(limiter.Allow("a", t0));
  CHECK(limiter.Allow("a", t0 + absl::Seconds(10)));
  CHECK(limiter.Allow("a", t0 + absl::Seconds(20)));
  CHECK_FALSE(limiter.Allow("a", t0 + absl::Seconds(30)));
  CHECK(limiter.Allow("b", t0 + absl::Seconds(30)));  // another site has its own window
  // A refused attempt is not recorded: the first start leaves the window at t0 + 60 s.
  CHECK_FALSE(limiter.Allow("a", t0 + absl::Seconds(59)));
  CHECK(limiter.Allow("a", t0 + absl::Seconds(60)));
  CHECK_FALSE(limiter.Allow("a", t0 + absl::Seconds(61)));
  CHECK(limiter.Allow("a", t0 + absl::Seconds(70)));
}

}  // namespace cohort::server
