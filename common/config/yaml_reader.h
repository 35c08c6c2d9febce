#ifndef COHORT_COMMON_CONFIG_YAML_READER_H_
#define COHORT_COMMON_CONFIG_YAML_READER_H_

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace cohort::config {

// Collects the first error met while reading a config file. Every message has the form
// "<file>:<line>:<column>: <dotted.key>: <why>" so an operator can go straight to it.
class ConfigErrors {
 public:
  explicit ConfigErrors(std::string file) : file_(std::move(file)) {}
  void Add(const YAML::Mark& mark, const std::string& key, const std::string& why);
  bool ok() const { return first_.empty(); }
  absl::Status ToStatus() const;
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  std::string first_;
};

// Strict reader over one YAML mapping. Each getter marks its key as known; Finish() reports
// any key in the mapping that no getter asked for (a typo must never be silently ignored).
// Getters return a fallback value after recording an error, so reading can continue and the
// caller checks ConfigErrors once at the end.
class MapReader {
 public:
  // `node` may be undefined (section absent): then every key reads as absent.
  MapReader(YAML::Node node, std::string path, ConfigErrors* errors, std::string base_dir);

  bool Has(const std::string& key) const;

  std::string String(const std::string& key, std::optional<std::string> fallback = std::nullopt);
  int64_t Int(const std::string& key, std::optional<int64_t> fallback, int64_t min, int64_t max);
  double Double(const std::string& key, std::optional<double> fallback, double min, double max,
                bool min_exclusive = false);
  bool Bool(const std::string& key, bool fallback);
  absl::Duration Duration(const std::string& key, std::optional<absl::Duration> fallback);
  std::vector<std::string> StringList(const std::string& key, bool required);
  std::vector<int64_t> IntList(const std::string& key, int64_t min, int64_t max);
  // A string that must be one of `allowed`.
  std::string Enum(const std::string& key, std::optional<std::string> fallback,
                   const std::vector<std::string>& allowed);
  // A path resolved against the config file's directory; when `must_exist`, the file must be
  // present and readable at load time.
  std::string Path(const std::string& key, bool required, bool must_exist);
  // A nested mapping (may be absent; then its getters see no keys).
  MapReader Map(const std::string& key);

  // Records an error for `key` (used for cross-field checks).
  void Fail(const std::string& key, const std::string& why);
  // Reports unknown keys. Call once after all getters.
  void Finish();

 private:
  std::string KeyPath(const std::string& key) const;
  YAML::Mark MarkOf(const std::string& key) const;
  // Returns the scalar node for key, or an undefined node (recording an error if required).
  YAML::Node Scalar(const std::string& key, bool required);

  YAML::Node node_;
  std::string path_;
  ConfigErrors* errors_;
  std::string base_dir_;
  std::set<std::string> known_;
};

// Parses YAML text into the root mapping, turning syntax errors into a Status with file:line.
absl::Status ParseYamlRoot(const std::string& text, const std::string& file, YAML::Node* root);

}  // namespace cohort::config

#endif  // COHORT_COMMON_CONFIG_YAML_READER_H_
