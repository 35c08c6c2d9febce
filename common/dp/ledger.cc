#include "common/dp/ledger.h"

#include <sqlite3.h>

#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/dp/accountant.h"

namespace cohort::dp {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE rounds (
  seq              INTEGER PRIMARY KEY AUTOINCREMENT,
  round            INTEGER NOT NULL,
  sample_rate      REAL NOT NULL CHECK (sample_rate > 0 AND sample_rate <= 1),
  noise_multiplier REAL NOT NULL CHECK (noise_multiplier > 0),
  steps            INTEGER NOT NULL CHECK (steps >= 0),
  max_grad_norm    REAL NOT NULL,
  delta            REAL NOT NULL,
  epsilon_after    REAL NOT NULL,
  recorded_at      REAL NOT NULL
);
)sql";

absl::Status Exec(sqlite3* db, const char* sql, const std::string& path) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    return absl::FailedPreconditionError(absl::StrCat("privacy ledger ", path, ": ", text));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status PrivacyLedger::Initialize(const std::string& path, const std::string& site) {
  if (std::filesystem::exists(path)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "privacy ledger ", path, " already exists; it is never re-initialised (its history "
        "is the site's spent budget)"));
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return absl::InternalError(absl::StrCat("cannot create privacy ledger ", path, ": ", why));
  }
  absl::Status status = Exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", path);
  if (status.ok()) status = Exec(db, "BEGIN;", path);
  if (status.ok()) status = Exec(db, kSchema, path);
  if (status.ok()) {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, "INSERT INTO meta VALUES ('format', 'cohort-privacy-ledger-1'), "
                           "('site', ?)", -1, &stmt, nullptr);
    sqlite3_bind_text(stmt, 1, site.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(stmt) != SQLITE_DONE) {
      status = absl::InternalError(absl::StrCat("cannot initialise ", path));
    }
    sqlite3_finalize(stmt);
  }
  if (status.ok()) status = Exec(db, "COMMIT;", path);
  sqlite3_close_v2(db);
  return status;
}

absl::StatusOr<std::unique_ptr<PrivacyLedger>> PrivacyLedger::Open(const std::string& path,
                                                                   const std::string& site) {
  if (!std::filesystem::exists(path)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "privacy ledger ", path, " does not exist; a site with a privacy policy does not "
        "train until an operator creates it (cohortctl ledger init --db ", path, " --site ",
        site.empty() ? "SITE" : site, ")"));
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    std::string why = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open privacy ledger ", path, ": ", why));
  }
  std::unique_ptr<PrivacyLedger> ledger(new PrivacyLedger(db, path, ""));
  sqlite3_busy_timeout(db, 5000);
  if (absl::Status s = Exec(db, "PRAGMA synchronous=FULL;", path); !s.ok()) return s;
  // Fail closed on anything that is not an intact ledger of this site.
  sqlite3_stmt* stmt = nullptr;
  std::string integrity;
  if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    integrity = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  if (integrity != "ok") {
    return absl::FailedPreconditionError(absl::StrCat(
        "privacy ledger ", path, " is corrupt (", integrity.empty() ? "not a database" : integrity,
        "); refusing to train"));
  }
  std::string format, owner;
  if (sqlite3_prepare_v2(db, "SELECT key, value FROM meta", -1, &stmt, nullptr) == SQLITE_OK) {
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      std::string key = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      std::string value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 1));
      if (key == "format") format = value;
      if (key == "site") owner = value;
    }
  }
  sqlite3_finalize(stmt);
  if (format != "cohort-privacy-ledger-1") {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a cohort privacy ledger; refusing to train"));
  }
  if (!site.empty() && owner != site) {
    return absl::FailedPreconditionError(absl::StrCat("privacy ledger ", path,
                                                      " belongs to site '", owner, "', not '",
                                                      site, "'"));
  }
  ledger->site_ = owner;
  // Entries must decode too (a row with impossible values means tampering or corruption).
  if (absl::StatusOr<std::vector<LedgerEntry>> entries = ledger->Entries(); !entries.ok()) {
    return entries.status();
  }
  return ledger;
}

PrivacyLedger::~PrivacyLedger() { sqlite3_close_v2(db_); }

absl::Status PrivacyLedger::Error(const std::string& what) const {
  return absl::FailedPreconditionError(
      absl::StrCat("privacy ledger ", path_, ": ", what, ": ", sqlite3_errmsg(db_)));
}

absl::StatusOr<std::vector<LedgerEntry>> PrivacyLedger::Entries() {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_,
                         "SELECT round, sample_rate, noise_multiplier, steps, max_grad_norm, "
                         "delta, epsilon_after, recorded_at FROM rounds ORDER BY seq",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    return Error("cannot read entries");
  }
  std::vector<LedgerEntry> entries;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    LedgerEntry e;
    e.round = static_cast<uint64_t>(sqlite3_column_int64(stmt, 0));
    e.sample_rate = sqlite3_column_double(stmt, 1);
    e.noise_multiplier = sqlite3_column_double(stmt, 2);
    e.steps = sqlite3_column_int64(stmt, 3);
    e.max_grad_norm = sqlite3_column_double(stmt, 4);
    e.delta = sqlite3_column_double(stmt, 5);
    e.epsilon_after = sqlite3_column_double(stmt, 6);
    e.recorded_at = absl::UnixEpoch() + absl::Seconds(sqlite3_column_double(stmt, 7));
    entries.push_back(e);
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return Error("cannot read entries");
  return entries;
}

absl::StatusOr<double> PrivacyLedger::Epsilon(double delta, double q, double sigma,
                                              int64_t steps) {
  absl::StatusOr<std::vector<LedgerEntry>> entries = Entries();
  if (!entries.ok()) return entries.status();
  RdpAccountant accountant;
  for (const LedgerEntry& e : *entries) accountant.AddSteps(e.sample_rate, e.noise_multiplier, e.steps);
  if (steps > 0) accountant.AddSteps(q, sigma, steps);
  absl::StatusOr<EpsilonAtOrder> epsilon = accountant.GetEpsilon(delta);
  if (!epsilon.ok()) return epsilon.status();
  return epsilon->epsilon;
}

absl::Status PrivacyLedger::Record(const LedgerEntry& e) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_,
                         "INSERT INTO rounds (round, sample_rate, noise_multiplier, steps, "
                         "max_grad_norm, delta, epsilon_after, recorded_at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         -1, &stmt, nullptr) != SQLITE_OK) {
    return Error("cannot record a round");
  }
  sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(e.round));
  sqlite3_bind_double(stmt, 2, e.sample_rate);
  sqlite3_bind_double(stmt, 3, e.noise_multiplier);
  sqlite3_bind_int64(stmt, 4, e.steps);
  sqlite3_bind_double(stmt, 5, e.max_grad_norm);
  sqlite3_bind_double(stmt, 6, e.delta);
  sqlite3_bind_double(stmt, 7, e.epsilon_after);
  sqlite3_bind_double(stmt, 8, absl::ToDoubleSeconds(e.recorded_at - absl::UnixEpoch()));
  int rc = sqlite3_step(stmt);
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return Error("cannot record a round");
  return absl::OkStatus();
}

DpRoundPlan PlanDpRound(int64_t examples, int64_t batch_size, int64_t epochs) {
  DpRoundPlan plan;
  if (examples <= 0 || batch_size <= 0) return plan;
  plan.sample_rate = std::min(1.0, static_cast<double>(batch_size) / examples);
  plan.steps = epochs * ((examples + batch_size - 1) / batch_size);
  return plan;
}

absl::Status CheckDpTask(const SitePrivacyPolicy& policy, PrivacyLedger& ledger,
                         bool task_uses_dp, double noise_multiplier, double max_grad_norm,
                         const DpRoundPlan& plan, DpRefusal* refusal) {
  DpRefusal unused;
  if (refusal == nullptr) refusal = &unused;
  *refusal = DpRefusal::kNone;
  if (!task_uses_dp) {
    *refusal = DpRefusal::kNotDp;
    return absl::PermissionDeniedError(
        "site policy requires DP-SGD; the task asks for non-private training");
  }
  if (noise_multiplier < policy.min_noise_multiplier) {
    *refusal = DpRefusal::kNoise;
    return absl::PermissionDeniedError(absl::StrFormat(
        "site policy requires noise_multiplier >= %g; the task asks for %g",
        policy.min_noise_multiplier, noise_multiplier));
  }
  if (max_grad_norm > policy.max_grad_norm) {
    *refusal = DpRefusal::kClip;
    return absl::PermissionDeniedError(absl::StrFormat(
        "site policy allows max_grad_norm <= %g; the task asks for %g", policy.max_grad_norm,
        max_grad_norm));
  }
  absl::StatusOr<double> spent = ledger.Epsilon(policy.delta);
  if (!spent.ok()) {
    *refusal = DpRefusal::kLedger;
    return spent.status();
  }
  absl::StatusOr<double> after =
      ledger.Epsilon(policy.delta, plan.sample_rate, noise_multiplier, plan.steps);
  if (!after.ok()) {
    // The ledger's own errors are FailedPrecondition; anything else is the accountant
    // refusing this task's plan, which leaves the budget check undecided.
    *refusal = absl::IsFailedPrecondition(after.status()) ? DpRefusal::kLedger
                                                          : DpRefusal::kBudget;
    return after.status();
  }
  if (*after > policy.max_epsilon) {
    *refusal = DpRefusal::kBudget;
    return absl::PermissionDeniedError(absl::StrFormat(
        "round would bring this site's epsilon from %.4f to %.4f (delta %g), over its budget "
        "of %g",
        *spent, *after, policy.delta, policy.max_epsilon));
  }
  return absl::OkStatus();
}

}  // namespace cohort::dp
