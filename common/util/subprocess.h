#ifndef COHORT_COMMON_UTIL_SUBPROCESS_H_
#define COHORT_COMMON_UTIL_SUBPROCESS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace cohort {

// How a child process ended and what it printed.
struct ProcessResult {
  int exit_code = -1;       // valid when signal == 0
  int signal = 0;           // the signal that ended it, if any
  std::string stdout_text;  // at most the output cap, the rest discarded
  std::string stderr_text;
};

// Runs argv[0] (a path; no shell, no PATH search) with `argv`, an empty stdin and the parent's
// environment, collecting its output; safe to call from a multi-threaded process (posix_spawn).
// A child still running after `timeout` is killed (SIGKILL) and reaped, and the call returns
// DeadlineExceeded naming it. Output beyond `max_output_bytes` per stream is read and
// discarded. NotFound when argv[0] cannot be started.
absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         absl::Duration timeout,
                                         size_t max_output_bytes = 1 << 20);

// The directory of the running executable (from /proc/self/exe), e.g. to find a sibling
// binary installed next to it.
absl::StatusOr<std::string> ExecutableDirectory();

}  // namespace cohort

#endif  // COHORT_COMMON_UTIL_SUBPROCESS_H_
