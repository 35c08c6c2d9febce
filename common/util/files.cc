#include "common/util/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace cohort {
namespace {

absl::Status ErrnoStatus(absl::string_view what, const std::string& path, int err) {
  std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::InternalError(message);
}

}  // namespace

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoStatus("cannot open", path, errno);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return ErrnoStatus("cannot read", path, errno);
  return buffer.str();
}

absl::Status WriteFileDurably(const std::string& path, absl::string_view contents, int mode) {
  return WriteFileDurably(
      path, [contents](const ByteSink& sink) { return sink(contents); }, mode);
}

absl::Status WriteFileDurably(const std::string& path,
                              const std::function<absl::Status(const ByteSink&)>& write,
                              int mode) {
  if ((mode & ~07777) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("invalid permission bits for ", path));
  }
  std::filesystem::path target(path);
  if (path.empty() || !target.has_filename()) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' does not name a file"));
  }
  std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  // A unique temporary file next to the target (rename stays on one file system, and two
  // writers never share a temporary file).
  std::string tmp = (dir / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot create a temporary file for", path, errno);
  auto abandon = [&](absl::Status status) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return status;
  };
  // Permissions first (fchmod ignores the umask): a key is never readable more widely, not
  // even while it is being written.
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
    return abandon(ErrnoStatus("cannot set permissions on", tmp, errno));
  }
  ByteSink sink = [fd, &tmp](absl::string_view bytes) {
    const char* data = bytes.data();
    size_t left = bytes.size();
    while (left > 0) {
      ssize_t n = ::write(fd, data, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("cannot write", tmp, errno);
      }
      data += n;
      left -= static_cast<size_t>(n);
    }
    return absl::OkStatus();
  };
  if (absl::Status s = write(sink); !s.ok()) return abandon(s);
  if (::fsync(fd) != 0) return abandon(ErrnoStatus("cannot sync", tmp, errno));
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus("cannot close", tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus("cannot rename onto", path, err);
  }
  // Make the rename itself durable.
  int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoStatus("cannot open directory", dir.string(), errno);
  int synced = ::fsync(dir_fd);
  int err = errno;
  ::close(dir_fd);
  if (synced != 0) return ErrnoStatus("cannot sync directory", dir.string(), err);
  return absl::OkStatus();
}

absl::Status EnsureDirectory(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create directory ", path, ": ",
                                                  ec.message()));
  if (!std::filesystem::is_directory(path)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a directory"));
  }
  return absl::OkStatus();
}

}  // namespace cohort
