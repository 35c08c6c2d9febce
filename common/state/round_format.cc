#include "common/state/round_format.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace cohort::state {
namespace {

std::string JsonNumber(const std::optional<double>& v) {
  if (!v.has_value() || !std::isfinite(*v)) return "null";
  return absl::StrFormat("%.6g", *v);
}

std::string Fixed(const std::optional<double>& v, int digits) {
  if (!v.has_value()) return "-";
  return absl::StrFormat("%.*f", digits, *v);
}

}  // namespace

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  return out + "\"";
}

namespace {

// One evaluation as a JSON object: examples, correct, loss, accuracy, and for binary models
// auc, precision and recall.
std::string EvaluationJson(const SiteEvaluation& e) {
  const double n = static_cast<double>(e.examples);
  std::string entry = "{\"examples\": " + std::to_string(e.examples) +
                      ", \"correct\": " + std::to_string(e.correct) +
                      ", \"loss\": " + JsonNumber(e.loss) + ", \"accuracy\": " +
                      JsonNumber(e.examples ? std::optional<double>(e.correct / n) : std::nullopt);
  if (e.binary) {
    const PooledBinaryMetrics one = PoolBinaryMetrics({{"", e}});
    entry += ", \"auc\": " + JsonNumber(e.auc) + ", \"precision\": " +
             JsonNumber(one.precision) + ", \"recall\": " + JsonNumber(one.recall);
  }
  return entry + "}";
}

}  // namespace

std::string RoundsAsJson(const std::vector<RoundRecord>& rounds) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < rounds.size(); ++i) {
    const RoundRecord& r = rounds[i];
    std::vector<std::string> participants;
    for (const std::string& p : r.participants) participants.push_back(JsonString(p));
    std::vector<std::string> dropped;
    for (const std::string& p : r.dropped) dropped.push_back(JsonString(p));
    out << (i ? ",\n " : "\n ") << "{\"round\": " << r.round
        << ", \"status\": " << JsonString(r.status)
        << ", \"participants\": [" << absl::StrJoin(participants, ", ") << "]"
        << ", \"dropped\": [" << absl::StrJoin(dropped, ", ") << "]"
        << ", \"examples\": " << r.examples
        << ", \"duration_s\": " << JsonNumber(r.duration_s)
        << ", \"train_loss\": " << JsonNumber(r.train_loss)
        << ", \"test_loss\": " << JsonNumber(r.test_loss)
        << ", \"test_accuracy\": " << JsonNumber(r.test_accuracy)
        << ", \"test_examples\": " << r.test_examples
        << ", \"checkpoint\": " << JsonString(r.checkpoint);
    if (!r.reason.empty()) out << ", \"reason\": " << JsonString(r.reason);
    std::vector<std::string> reasons;
    for (const auto& [site, why] : r.drop_reasons) {
      reasons.push_back(JsonString(site) + ": " + JsonString(why));
    }
    out << ", \"drop_reasons\": {" << absl::StrJoin(reasons, ", ") << "}";
    std::vector<std::string> epsilons;
    for (const auto& [site, e] : r.site_epsilon) {
      epsilons.push_back(JsonString(site) + ": " + JsonNumber(e.epsilon));
    }
    out << ", \"epsilon\": {" << absl::StrJoin(epsilons, ", ") << "}";
    const PooledBinaryMetrics pooled = PoolBinaryMetrics(r.site_evaluations);
    out << ", \"precision\": " << JsonNumber(pooled.precision)
        << ", \"recall\": " << JsonNumber(pooled.recall) << ", \"auc\": " << JsonNumber(pooled.auc);
    std::vector<std::string> evaluations;
    for (const auto& [site, e] : r.site_evaluations) {
      evaluations.push_back(JsonString(site) + ": " + EvaluationJson(e));
    }
    out << ", \"site_evaluations\": {" << absl::StrJoin(evaluations, ", ") << "}";
    out << ", \"server_evaluation\": "
        << (r.server_evaluation ? EvaluationJson(*r.server_evaluation) : "null");
    out << "}";
  }
  out << (rounds.empty() ? "]" : "\n]") << "\n";
  return out.str();
}

std::string RoundsAsTable(const std::vector<RoundRecord>& rounds) {
  std::ostringstream out;
  out << absl::StrFormat("%-6s %-10s %-9s %-10s %-10s %-9s %-8s %s\n", "round", "status",
                         "examples", "train_loss", "test_acc", "duration", "max_eps",
                         "participants");
  for (const RoundRecord& r : rounds) {
    std::optional<double> max_epsilon;
    for (const auto& [site, e] : r.site_epsilon) {
      max_epsilon = std::max(max_epsilon.value_or(0.0), e.epsilon);
    }
    out << absl::StrFormat("%-6d %-10s %-9d %-10s %-10s %-9s %-8s %s\n", r.round, r.status,
                           r.examples, Fixed(r.train_loss, 4), Fixed(r.test_accuracy, 4),
                           absl::StrFormat("%.2fs", r.duration_s), Fixed(max_epsilon, 3),
                           absl::StrJoin(r.participants, ","));
  }
  return out.str();
}

}  // namespace cohort::state
