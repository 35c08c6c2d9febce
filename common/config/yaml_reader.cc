#include "common/config/yaml_reader.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/util/duration.h"

namespace cohort::config {
namespace {

std::string TypeName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    default:
      return "nothing";
  }
}

}  // namespace

void ConfigErrors::Add(const YAML::Mark& mark, const std::string& key, const std::string& why) {
  if (!first_.empty()) return;
  std::string where = file_;
  if (!mark.is_null()) absl::StrAppend(&where, ":", mark.line + 1, ":", mark.column + 1);
  first_ = absl::StrCat(where, ": ", key.empty() ? "" : key + ": ", why);
}

absl::Status ConfigErrors::ToStatus() const {
  if (first_.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(first_);
}

MapReader::MapReader(YAML::Node node, std::string path, ConfigErrors* errors,
                     std::string base_dir)
    : node_(std::move(node)), path_(std::move(path)), errors_(errors),
      base_dir_(std::move(base_dir)) {
  if (node_.IsDefined() && !node_.IsNull() && !node_.IsMap()) {
    errors_->Add(node_.Mark(), path_.empty() ? "(top level)" : path_,
                 "expected a mapping of keys, got " + TypeName(node_));
    node_ = YAML::Node();
  }
}

std::string MapReader::KeyPath(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

YAML::Mark MapReader::MarkOf(const std::string& key) const {
  if (node_.IsMap()) {
    YAML::Node value = node_[key];
    if (value.IsDefined()) return value.Mark();
    return node_.Mark();
  }
  return YAML::Mark::null_mark();
}

bool MapReader::Has(const std::string& key) const {
  return node_.IsMap() && node_[key].IsDefined() && !node_[key].IsNull();
}

void MapReader::Fail(const std::string& key, const std::string& why) {
  errors_->Add(MarkOf(key), KeyPath(key), why);
}

YAML::Node MapReader::Scalar(const std::string& key, bool required) {
  known_.insert(key);
  if (!Has(key)) {
    if (required) Fail(key, "required key is missing");
    return YAML::Node(YAML::NodeType::Undefined);
  }
  YAML::Node value = node_[key];
  if (!value.IsScalar()) {
    Fail(key, "expected a single value, got " + TypeName(value));
    return YAML::Node(YAML::NodeType::Undefined);
  }
  return value;
}

std::string MapReader::String(const std::string& key, std::optional<std::string> fallback) {
  YAML::Node value = Scalar(key, !fallback.has_value());
  if (!value.IsDefined()) return fallback.value_or("");
  if (value.Scalar().empty()) {
    Fail(key, "must not be empty");
    return fallback.value_or("");
  }
  return value.Scalar();
}

int64_t MapReader::Int(const std::string& key, std::optional<int64_t> fallback, int64_t min,
                       int64_t max) {
  YAML::Node value = Scalar(key, !fallback.has_value());
  if (!value.IsDefined()) return fallback.value_or(min);
  int64_t parsed = 0;
  try {
    parsed = value.as<int64_t>();
  } catch (const YAML::Exception&) {
    Fail(key, "expected an integer, got " + TypeName(value));
    return fallback.value_or(min);
  }
  if (parsed < min || parsed > max) {
    Fail(key, absl::StrCat("must be between ", min, " and ", max, " (got ", parsed, ")"));
    return fallback.value_or(min);
  }
  return parsed;
}

double MapReader::Double(const std::string& key, std::optional<double> fallback, double min,
                         double max, bool min_exclusive) {
  YAML::Node value = Scalar(key, !fallback.has_value());
  if (!value.IsDefined()) return fallback.value_or(min);
  double parsed = 0;
  try {
    parsed = value.as<double>();
  } catch (const YAML::Exception&) {
    Fail(key, "expected a number, got " + TypeName(value));
    return fallback.value_or(min);
  }
  bool below = min_exclusive ? !(parsed > min) : !(parsed >= min);
  if (below || !(parsed <= max)) {
    Fail(key, absl::StrCat("must be ", min_exclusive ? "greater than " : "at least ", min,
                           " and at most ", max, " (got ", value.Scalar(), ")"));
    return fallback.value_or(min);
  }
  return parsed;
}

bool MapReader::Bool(const std::string& key, bool fallback) {
  YAML::Node value = Scalar(key, false);
  if (!value.IsDefined()) return fallback;
  try {
    return value.as<bool>();
  } catch (const YAML::Exception&) {
    Fail(key, "expected true or false, got " + TypeName(value));
    return fallback;
  }
}

absl::Duration MapReader::Duration(const std::string& key,
                                   std::optional<absl::Duration> fallback) {
  YAML::Node value = Scalar(key, !fallback.has_value());
  if (!value.IsDefined()) return fallback.value_or(absl::ZeroDuration());
  absl::StatusOr<absl::Duration> parsed = ParseDuration(value.Scalar());
  if (!parsed.ok()) {
    Fail(key, std::string(parsed.status().message()));
    return fallback.value_or(absl::ZeroDuration());
  }
  if (*parsed <= absl::ZeroDuration()) {
    Fail(key, "must be a positive duration");
    return fallback.value_or(absl::ZeroDuration());
  }
  return *parsed;
}

std::vector<std::string> MapReader::StringList(const std::string& key, bool required) {
  known_.insert(key);
  std::vector<std::string> out;
  if (!Has(key)) {
    if (required) Fail(key, "required key is missing");
    return out;
  }
  YAML::Node value = node_[key];
  if (!value.IsSequence()) {
    Fail(key, "expected a list, got " + TypeName(value));
    return out;
  }
  for (size_t i = 0; i < value.size(); ++i) {
    if (!value[i].IsScalar() || value[i].Scalar().empty()) {
      errors_->Add(value[i].Mark(), absl::StrCat(KeyPath(key), "[", i, "]"),
                   "expected a non-empty string, got " + TypeName(value[i]));
      return {};
    }
    out.push_back(value[i].Scalar());
  }
  return out;
}

std::vector<int64_t> MapReader::IntList(const std::string& key, int64_t min, int64_t max) {
  known_.insert(key);
  std::vector<int64_t> out;
  if (!Has(key)) return out;
  YAML::Node value = node_[key];
  if (!value.IsSequence()) {
    Fail(key, "expected a list of integers, got " + TypeName(value));
    return out;
  }
  for (size_t i = 0; i < value.size(); ++i) {
    std::string item_key = absl::StrCat(KeyPath(key), "[", i, "]");
    int64_t parsed = 0;
    try {
      parsed = value[i].as<int64_t>();
    } catch (const YAML::Exception&) {
      errors_->Add(value[i].Mark(), item_key, "expected an integer, got " + TypeName(value[i]));
      return {};
    }
    if (parsed < min || parsed > max) {
      errors_->Add(value[i].Mark(), item_key,
                   absl::StrCat("must be between ", min, " and ", max, " (got ", parsed, ")"));
      return {};
    }
    out.push_back(parsed);
  }
  return out;
}

std::string MapReader::Enum(const std::string& key, std::optional<std::string> fallback,
                            const std::vector<std::string>& allowed) {
  std::string value = String(key, fallback);
  if (!Has(key)) return value;
  for (const std::string& option : allowed) {
    if (value == option) return value;
  }
  Fail(key, absl::StrCat("must be one of ", absl::StrJoin(allowed, ", "), " (got '", value,
                         "')"));
  return fallback.value_or("");
}

std::string MapReader::Path(const std::string& key, bool required, bool must_exist) {
  std::string raw = String(key, required ? std::nullopt : std::optional<std::string>(""));
  if (raw.empty()) return raw;
  std::filesystem::path path(raw);
  if (path.is_relative() && !base_dir_.empty()) path = std::filesystem::path(base_dir_) / path;
  std::string resolved = path.lexically_normal().string();
  if (must_exist) {
    std::error_code ec;
    std::ifstream probe(resolved);
    if (!probe.good()) {
      Fail(key, absl::StrCat("file '", resolved, "' does not exist or cannot be read"));
    } else if (!std::filesystem::is_regular_file(resolved, ec)) {
      Fail(key, absl::StrCat("'", resolved, "' is not a regular file"));
    }
  }
  return resolved;
}

MapReader MapReader::Map(const std::string& key) {
  known_.insert(key);
  YAML::Node child = node_.IsMap() ? node_[key] : YAML::Node();
  return MapReader(child, KeyPath(key), errors_, base_dir_);
}

void MapReader::Finish() {
  if (!node_.IsMap()) return;
  std::set<std::string> seen;
  for (const auto& entry : node_) {
    std::string key = entry.first.Scalar();
    // yaml-cpp keeps the first of two equal keys and drops the second without a word; an
    // override appended at the end of a file must not be silently ignored.
    if (!seen.insert(key).second) {
      errors_->Add(entry.first.Mark(), KeyPath(key),
                   "key appears twice in the same mapping (remove one)");
      return;
    }
    if (known_.count(key) == 0) {
      std::vector<std::string> names(known_.begin(), known_.end());
      errors_->Add(entry.first.Mark(), KeyPath(key),
                   absl::StrCat("unknown key (known keys here: ", absl::StrJoin(names, ", "),
                                ")"));
      return;
    }
  }
}

absl::Status ParseYamlRoot(const std::string& text, const std::string& file, YAML::Node* root) {
  try {
    *root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ":", e.mark.line + 1, ":",
                                                   e.mark.column + 1, ": invalid YAML: ", e.msg));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": invalid YAML: ", e.what()));
  }
  if (!root->IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": expected a mapping of configuration keys at the top level"));
  }
  return absl::OkStatus();
}

}  // namespace cohort::config
