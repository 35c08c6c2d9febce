#ifndef COHORT_TESTS_SUPPORT_TEMP_DIR_H_
#define COHORT_TESTS_SUPPORT_TEMP_DIR_H_

#include <string>

namespace cohort::testing {

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string File(const std::string& name) const;

 private:
  std::string path_;
};

// Writes a text file (creating parent directories); fails the test on error.
void WriteTextFile(const std::string& path, const std::string& contents);

// The repository's source directory and the build directory.
std::string SourcePath(const std::string& relative);
std::string BinaryPath(const std::string& relative);

}  // namespace cohort::testing

#endif  // COHORT_TESTS_SUPPORT_TEMP_DIR_H_
