// cohortctl rounds: the committed round history from a coordinator's state directory.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/state/state_store.h"
#include "tools/commands.h"

namespace cohort::tools {
namespace {

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

std::string JsonNumber(const std::optional<double>& v) {
  if (!v.has_value() || !std::isfinite(*v)) return "null";
  return absl::StrFormat("%.6g", *v);
}

std::string RoundsAsJson(const std::vector<state::RoundRecord>& rounds) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < rounds.size(); ++i) {
    const state::RoundRecord& r = rounds[i];
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
    out << "}";
  }
  out << (rounds.empty() ? "]" : "\n]") << "\n";
  return out.str();
}

std::string Fixed(const std::optional<double>& v, int digits) {
  if (!v.has_value()) return "-";
  return absl::StrFormat("%.*f", digits, *v);
}

std::string RoundsAsTable(const std::vector<state::RoundRecord>& rounds) {
  std::ostringstream out;
  out << absl::StrFormat("%-6s %-10s %-9s %-10s %-10s %-9s %-8s %s\n", "round", "status",
                         "examples", "train_loss", "test_acc", "duration", "max_eps",
                         "participants");
  for (const state::RoundRecord& r : rounds) {
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

}  // namespace

void AddRoundsCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand("rounds", "Show the round history of a coordinator");
  auto state_dir = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto all = std::make_shared<bool>(false);
  cmd->add_option("--state-dir", *state_dir, "The coordinator's state_dir")->required();
  cmd->add_flag("--json", *json, "Print a JSON array, one object per round");
  cmd->add_flag("--all", *all, "Include started and aborted rounds, not only committed ones");
  cmd->callback([state_dir, json, all]() {
    auto store = state::StateStore::OpenReadOnly(*state_dir + "/state.db");
    if (!store.ok()) {
      std::cerr << "cohortctl rounds: " << store.status().message() << "\n";
      throw CLI::RuntimeError(1);
    }
    auto rounds = (*store)->ListRounds(/*committed_only=*/!*all);
    if (!rounds.ok()) {
      std::cerr << "cohortctl rounds: " << rounds.status().message() << "\n";
      throw CLI::RuntimeError(1);
    }
    std::cout << (*json ? RoundsAsJson(*rounds) : RoundsAsTable(*rounds));
  });
}

}  // namespace cohort::tools
