#include "common/util/duration.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace cohort {

absl::StatusOr<absl::Duration> ParseDuration(absl::string_view text) {
  absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  absl::Duration duration;
  if (trimmed.empty() || trimmed[0] == '-' || trimmed[0] == '+' ||
      !absl::ParseDuration(trimmed, &duration) || trimmed == "0" ||
      absl::ascii_isdigit(static_cast<unsigned char>(trimmed.back()))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' is not a duration (expected a number with a unit: 500ms, 60s, 2m, 1h)"));
  }
  return duration;
}

}  // namespace cohort
