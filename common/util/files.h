#ifndef COHORT_COMMON_UTIL_FILES_H_
#define COHORT_COMMON_UTIL_FILES_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cohort {

// Reads a whole file; NotFound / PermissionDenied name the path and the OS error.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes `contents` to `path` so that a crash leaves either the old file or the new one:
// write a temporary file in the same directory, fsync it, rename it over `path`, fsync the
// directory. `mode` sets the permission bits of the new file.
absl::Status WriteFileDurably(const std::string& path, absl::string_view contents,
                              int mode = 0644);

// The same, for contents produced piecewise: `write` receives a function that appends bytes
// to the temporary file (so large payloads need not be assembled in memory first).
using ByteSink = std::function<absl::Status(absl::string_view)>;
absl::Status WriteFileDurably(const std::string& path,
                              const std::function<absl::Status(const ByteSink&)>& write,
                              int mode = 0644);

// Creates `path` and its parents if missing (like mkdir -p).
absl::Status EnsureDirectory(const std::string& path);

}  // namespace cohort

#endif  // COHORT_COMMON_UTIL_FILES_H_
