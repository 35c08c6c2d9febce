#ifndef COHORT_COMMON_UTIL_DURATION_H_
#define COHORT_COMMON_UTIL_DURATION_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace cohort {

// Parses a duration such as "60s", "500ms", "2m", "1h" or "1m30s" (absl's format without
// the sign). A bare number is refused: the unit must be explicit.
absl::StatusOr<absl::Duration> ParseDuration(absl::string_view text);

}  // namespace cohort

#endif  // COHORT_COMMON_UTIL_DURATION_H_
