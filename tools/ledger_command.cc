// cohortctl ledger: create and read a site's privacy ledger.
#include <cmath>
#include <iostream>
#include <memory>

#include "absl/strings/str_format.h"
#include "common/dp/ledger.h"
#include "common/util/site_id.h"
#include "tools/commands.h"

namespace cohort::tools {
namespace {

[[noreturn]] void Fail(const std::string& sub, int code, absl::string_view message) {
  std::cerr << "cohortctl ledger" << (sub.empty() ? "" : " " + sub) << ": " << message << "\n";
  throw CLI::RuntimeError(code);
}

void Show(const std::string& db, bool json, double delta) {
  auto ledger = dp::PrivacyLedger::Open(db, "");
  if (!ledger.ok()) Fail("", 1, ledger.status().message());
  auto entries = (*ledger)->Entries();
  if (!entries.ok()) Fail("", 1, entries.status().message());
  auto spent = (*ledger)->Epsilon(delta);
  if (!spent.ok()) Fail("", 1, spent.status().message());
  if (json) {
    std::cout << absl::StrFormat("{\"site\": \"%s\", \"delta\": %g, \"epsilon\": %.6g, \"rounds\": [",
                                 (*ledger)->site(), delta, *spent);
    for (size_t i = 0; i < entries->size(); ++i) {
      const dp::LedgerEntry& e = (*entries)[i];
      std::cout << absl::StrFormat(
          "%s\n {\"round\": %d, \"sample_rate\": %.6g, \"noise_multiplier\": %.6g, \"steps\": %d, "
          "\"max_grad_norm\": %.6g, \"delta\": %g, \"epsilon_after\": %.6g, \"recorded_at\": \"%s\"}",
          i ? "," : "", e.round, e.sample_rate, e.noise_multiplier, e.steps, e.max_grad_norm,
          e.delta, e.epsilon_after, absl::FormatTime(absl::RFC3339_sec, e.recorded_at,
                                                     absl::UTCTimeZone()));
    }
    std::cout << (entries->empty() ? "]}\n" : "\n]}\n");
    return;
  }
  std::cout << absl::StrFormat("site %s: epsilon %.4f spent at delta %g over %d rounds\n",
                               (*ledger)->site(), *spent, delta, entries->size());
  std::cout << absl::StrFormat("%-6s %-11s %-8s %-7s %-6s %-13s %s\n", "round", "sample_rate",
                               "sigma", "steps", "clip", "epsilon_after", "recorded_at");
  for (const dp::LedgerEntry& e : *entries) {
    std::cout << absl::StrFormat(
        "%-6d %-11.5g %-8.4g %-7d %-6.3g %-13.4f %s\n", e.round, e.sample_rate,
        e.noise_multiplier, e.steps, e.max_grad_norm, e.epsilon_after,
        absl::FormatTime(absl::RFC3339_sec, e.recorded_at, absl::UTCTimeZone()));
  }
}

}  // namespace

void AddLedgerCommands(CLI::App& app) {
  auto* ledger = app.add_subcommand(
      "ledger", "Show a site's privacy ledger (every DP-SGD round that left the site)");
  auto db = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto delta = std::make_shared<double>(1e-5);
  ledger->add_option("--db", *db, "The ledger file (client config privacy.ledger)");
  ledger->add_flag("--json", *json, "Print JSON");
  ledger->add_option("--delta", *delta, "delta for the total epsilon (default 1e-5)");
  auto* init = ledger->add_subcommand("init", "Create an empty ledger for a site (once)");
  auto init_db = std::make_shared<std::string>();
  auto site = std::make_shared<std::string>();
  init->add_option("--db", *init_db, "Where to create the ledger")->required();
  init->add_option("--site", *site, "The site that owns it")->required();
  init->callback([init_db, site]() {
    if (!IsValidSiteId(*site)) Fail("init", 2, "--site must be a site id ([a-z0-9][a-z0-9._-]*)");
    absl::Status s = dp::PrivacyLedger::Initialize(*init_db, *site);
    if (!s.ok()) Fail("init", 1, s.message());
    std::cout << "created privacy ledger " << *init_db << " for site " << *site << "\n";
  });
  ledger->callback([ledger, init, db, json, delta]() {
    if (init->parsed()) return;
    if (db->empty()) Fail("", 2, "--db is required");
    if (!(*delta > 0 && *delta < 1)) Fail("", 2, "--delta must be in (0, 1)");
    Show(*db, *json, *delta);
  });
}

}  // namespace cohort::tools
