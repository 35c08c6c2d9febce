#include "common/state/evaluation_report.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace cohort::state {
namespace {

constexpr absl::string_view kVersionLine = "cohort-evaluation 1";

absl::Status Bad(int line, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("evaluation report line ", line, ": ", why));
}

// Parses a double printed by %a (or decimal); false for anything else or a non-finite value.
bool ParseDouble(const std::string& text, double* out) {
  if (text.empty()) return false;
  errno = 0;
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  return errno == 0 && end == text.c_str() + text.size() && std::isfinite(*out);
}

}  // namespace

std::string FormatEvaluationReport(const SiteEvaluation& e) {
  std::string out = absl::StrCat(kVersionLine, "\n");
  absl::StrAppendFormat(&out, "examples %d\nloss %a\ncorrect %d\nbinary %d\n", e.examples, e.loss,
                        e.correct, e.binary ? 1 : 0);
  if (e.binary) {
    absl::StrAppendFormat(&out,
                          "true_positives %d\nfalse_positives %d\ntrue_negatives %d\n"
                          "false_negatives %d\n",
                          e.true_positives, e.false_positives, e.true_negatives,
                          e.false_negatives);
    if (e.auc.has_value()) absl::StrAppendFormat(&out, "auc %a\n", *e.auc);
  }
  return out;
}

absl::StatusOr<SiteEvaluation> ParseEvaluationReport(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  if (lines.empty() || lines[0] != kVersionLine) {
    return Bad(1, absl::StrCat("expected '", kVersionLine, "'"));
  }
  static const char* const kCounts[] = {"examples",       "correct",         "binary",
                                        "true_positives", "false_positives", "true_negatives",
                                        "false_negatives"};
  std::map<std::string, uint64_t> counts;
  std::map<std::string, double> reals;
  for (size_t i = 1; i < lines.size(); ++i) {
    const int line = static_cast<int>(i) + 1;
    std::vector<std::string> parts = absl::StrSplit(lines[i], ' ');
    if (parts.size() != 2) return Bad(line, "expected 'key value'");
    const std::string& key = parts[0];
    if (counts.count(key) != 0 || reals.count(key) != 0) {
      return Bad(line, absl::StrCat("'", key, "' given twice"));
    }
    if (key == "loss" || key == "auc") {
      double value = 0;
      if (!ParseDouble(parts[1], &value)) return Bad(line, absl::StrCat(key, " is not a number"));
      reals[key] = value;
      continue;
    }
    bool known = false;
    for (const char* count : kCounts) known = known || key == count;
    if (!known) return Bad(line, absl::StrCat("unknown key '", key, "'"));
    uint64_t value = 0;
    if (!absl::SimpleAtoi(parts[1], &value)) {
      return Bad(line, absl::StrCat(key, " is not a non-negative integer"));
    }
    counts[key] = value;
  }
  for (const char* key : {"examples", "correct", "binary"}) {
    if (counts.count(key) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("evaluation report: '", key, "' missing"));
    }
  }
  if (reals.count("loss") == 0) {
    return absl::InvalidArgumentError("evaluation report: 'loss' missing");
  }
  SiteEvaluation e;
  e.examples = counts["examples"];
  e.correct = counts["correct"];
  e.loss = reals["loss"];
  e.binary = counts["binary"] != 0;
  if (counts["binary"] > 1) return absl::InvalidArgumentError("evaluation report: binary is 0 or 1");
  if (e.examples == 0) return absl::InvalidArgumentError("evaluation report: no examples");
  if (e.correct > e.examples) {
    return absl::InvalidArgumentError("evaluation report: more correct than examples");
  }
  if (e.loss < 0) return absl::InvalidArgumentError("evaluation report: negative loss");
  if (e.binary) {
    for (const char* key : {"true_positives", "false_positives", "true_negatives", "false_negatives"}) {
      if (counts.count(key) == 0) {
        return absl::InvalidArgumentError(absl::StrCat("evaluation report: '", key, "' missing"));
      }
    }
    e.true_positives = counts["true_positives"];
    e.false_positives = counts["false_positives"];
    e.true_negatives = counts["true_negatives"];
    e.false_negatives = counts["false_negatives"];
    // Each count on its own first: the sums below are uint64 and would wrap around.
    for (uint64_t count :
         {e.true_positives, e.false_positives, e.true_negatives, e.false_negatives}) {
      if (count > e.examples) {
        return absl::InvalidArgumentError(
            "evaluation report: a confusion count exceeds examples");
      }
    }
    if (e.true_positives + e.false_positives + e.true_negatives + e.false_negatives !=
        e.examples) {
      return absl::InvalidArgumentError(
          "evaluation report: confusion counts do not add up to examples");
    }
    if (e.true_positives + e.true_negatives != e.correct) {
      return absl::InvalidArgumentError(
          "evaluation report: true positives and negatives do not add up to correct");
    }
    if (reals.count("auc") != 0) {
      if (reals["auc"] < 0 || reals["auc"] > 1) {
        return absl::InvalidArgumentError("evaluation report: auc outside [0, 1]");
      }
      e.auc = reals["auc"];
    }
  } else if (counts.size() > 3 || reals.count("auc") != 0) {
    return absl::InvalidArgumentError(
        "evaluation report: confusion counts or auc given for a non-binary model");
  }
  return e;
}

}  // namespace cohort::state
