#ifndef COHORT_TESTS_SUPPORT_STATUS_ASSERTIONS_H_
#define COHORT_TESTS_SUPPORT_STATUS_ASSERTIONS_H_

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/status/status.h"
#include "absl/strings/match.h"

namespace cohort::testing {

// Asserts that `status` is InvalidArgument and its message contains every fragment (the
// parts of an error an operator relies on: file, line, key, reason).
inline void RequireInvalid(const absl::Status& status,
                           const std::vector<std::string>& fragments) {
  INFO("status: " << status.ToString());
  REQUIRE(status.code() == absl::StatusCode::kInvalidArgument);
  for (const std::string& fragment : fragments) {
    INFO("expected fragment: " << fragment);
    CHECK(absl::StrContains(status.message(), fragment));
  }
}

}  // namespace cohort::testing

#endif  // COHORT_TESTS_SUPPORT_STATUS_ASSERTIONS_H_
