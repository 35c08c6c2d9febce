#ifndef COHORT_COMMON_UTIL_LOG_H_
#define COHORT_COMMON_UTIL_LOG_H_

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "absl/strings/string_view.h"

// Lets log lines format absl::string_view (e.g. a Status message) directly.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};

namespace cohort {

// Sets up the process-wide logger for one daemon or tool. `component` names the process
// (e.g. "coordinator" or the site id) and appears on every line; `json` switches the
// pattern to one JSON object per line. Messages themselves carry `round=` and `stage=`.
void InitLogging(const std::string& component, bool json = false,
                 spdlog::level::level_enum level = spdlog::level::info);

}  // namespace cohort

#endif  // COHORT_COMMON_UTIL_LOG_H_
