// Fuzzes the YAML config loaders: arbitrary text through ParseCoordinatorConfig and
// ParseClientConfig. Relative paths resolve against a temporary directory holding the files the
// seed configs (configs/*) name, so that inputs get past the must-exist checks to the rest of
// the validation. Any outcome other than OK or InvalidArgument is a bug, as is a crash, an
// escaped exception, a leak or a sanitizer report.
#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "common/config/client_config.h"
#include "common/config/coordinator_config.h"

namespace {

// Files referred to by the configs under configs/ (paths relative to the config's directory).
constexpr const char* kFiles[] = {
    "pki/ca.pem",         "pki/coordinator.pem", "pki/hospital-a.pem", "pki/site-a.pem",
    "pki/bank-a.pem",     "data/hospital-a.csv", "data/bank-a.csv",    "data/credit_g.csv",
    "data/test.csv",      "data/site-a-images-idx3-ubyte.gz",
    "data/site-a-labels-idx1-ubyte.gz",          "data/test/site-a-images-idx3-ubyte.gz",
    "data/test/site-a-labels-idx1-ubyte.gz",     "model.pt"};
// Private keys: 0600, or the loaders refuse them.
constexpr const char* kKeys[] = {"pki/coordinator.key", "pki/hospital-a.key", "pki/site-a.key",
                                 "pki/bank-a.key"};

std::string* base_dir = nullptr;

void RemoveBaseDir() {
  std::error_code ec;
  std::filesystem::remove_all(*base_dir, ec);
}

void Touch(const std::string& relative, std::filesystem::perms perms) {
  std::filesystem::path path = std::filesystem::path(*base_dir) / relative;
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << "x\n";
  std::filesystem::permissions(path, perms);
}

void CheckStatus(const absl::Status& status) {
  if (!status.ok() && !absl::IsInvalidArgument(status)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  char pattern[] = "/tmp/cohort-config-fuzz-XXXXXX";
  if (mkdtemp(pattern) == nullptr) std::abort();
  base_dir = new std::string(pattern);
  std::atexit(RemoveBaseDir);
  using std::filesystem::perms;
  for (const char* file : kFiles) Touch(file, perms::owner_read | perms::owner_write);
  for (const char* key : kKeys) Touch(key, perms::owner_read | perms::owner_write);
  std::filesystem::create_directories(std::filesystem::path(*base_dir) / "state");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  CheckStatus(cohort::config::ParseCoordinatorConfig(text, "fuzz.yaml", *base_dir).status());
  CheckStatus(cohort::config::ParseClientConfig(text, "fuzz.yaml", *base_dir).status());
  return 0;
}
