#include "common/state/state_store.h"

#include <sqlite3.h>

#include <filesystem>
#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace cohort::state {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS rounds (
  round         INTEGER PRIMARY KEY,
  status        TEXT NOT NULL CHECK (status IN ('started', 'committed', 'aborted')),
  started_at    REAL NOT NULL,
  duration_s    REAL NOT NULL DEFAULT 0,
  participants  TEXT NOT NULL DEFAULT '',
  dropped       TEXT NOT NULL DEFAULT '',
  examples      INTEGER NOT NULL DEFAULT 0,
  train_loss    REAL,
  test_loss     REAL,
  test_accuracy REAL,
  test_examples INTEGER NOT NULL DEFAULT 0,
  checkpoint    TEXT NOT NULL DEFAULT '',
  reason        TEXT NOT NULL DEFAULT '',
  drop_reasons  TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS site_rounds (
  round            INTEGER NOT NULL REFERENCES rounds(round),
  site             TEXT NOT NULL,
  sample_rate      REAL NOT NULL,
  noise_multiplier REAL NOT NULL,
  steps            INTEGER NOT NULL,
  epsilon          REAL NOT NULL,
  PRIMARY KEY (round, site)
);
CREATE TABLE IF NOT EXISTS site_evaluations (
  round           INTEGER NOT NULL REFERENCES rounds(round),
  site            TEXT NOT NULL,
  examples        INTEGER NOT NULL,
  loss            REAL NOT NULL,
  correct         INTEGER NOT NULL,
  binary          INTEGER NOT NULL DEFAULT 0,
  true_positives  INTEGER NOT NULL DEFAULT 0,
  false_positives INTEGER NOT NULL DEFAULT 0,
  true_negatives  INTEGER NOT NULL DEFAULT 0,
  false_negatives INTEGER NOT NULL DEFAULT 0,
  auc             REAL,
  PRIMARY KEY (round, site)
);
CREATE TABLE IF NOT EXISTS server_evaluations (
  round           INTEGER PRIMARY KEY REFERENCES rounds(round),
  examples        INTEGER NOT NULL,
  loss            REAL NOT NULL,
  correct         INTEGER NOT NULL,
  binary          INTEGER NOT NULL DEFAULT 0,
  true_positives  INTEGER NOT NULL DEFAULT 0,
  false_positives INTEGER NOT NULL DEFAULT 0,
  true_negatives  INTEGER NOT NULL DEFAULT 0,
  false_negatives INTEGER NOT NULL DEFAULT 0,
  auc             REAL
);
CREATE TABLE IF NOT EXISTS settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
)sql";

// RAII prepared statement.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr); }
  ~Statement() { sqlite3_finalize(stmt_); }
  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }
  void BindText(int i, const std::string& s) {
    sqlite3_bind_text(stmt_, i, s.c_str(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  }
  void BindOptional(int i, const std::optional<double>& v) {
    if (v.has_value()) {
      sqlite3_bind_double(stmt_, i, *v);
    } else {
      sqlite3_bind_null(stmt_, i);
    }
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

std::optional<double> ColumnOptional(sqlite3_stmt* stmt, int i) {
  if (sqlite3_column_type(stmt, i) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_double(stmt, i);
}

std::string ColumnText(sqlite3_stmt* stmt, int i) {
  const unsigned char* text = sqlite3_column_text(stmt, i);
  return text == nullptr ? "" : reinterpret_cast<const char*>(text);
}

// Site ids are validated ([a-z0-9._-]), so a comma-separated list is unambiguous.
std::vector<std::string> SplitIds(const std::string& text) {
  if (text.empty()) return {};
  return absl::StrSplit(text, ',');
}

// Binds an evaluation's columns (examples, loss, correct, binary, the four confusion counts,
// auc) to parameters first..first + 8.
void BindEvaluation(Statement& statement, int first, const SiteEvaluation& e) {
  sqlite3_stmt* s = statement.get();
  sqlite3_bind_int64(s, first, static_cast<sqlite3_int64>(e.examples));
  sqlite3_bind_double(s, first + 1, e.loss);
  sqlite3_bind_int64(s, first + 2, static_cast<sqlite3_int64>(e.correct));
  sqlite3_bind_int(s, first + 3, e.binary ? 1 : 0);
  sqlite3_bind_int64(s, first + 4, static_cast<sqlite3_int64>(e.true_positives));
  sqlite3_bind_int64(s, first + 5, static_cast<sqlite3_int64>(e.false_positives));
  sqlite3_bind_int64(s, first + 6, static_cast<sqlite3_int64>(e.true_negatives));
  sqlite3_bind_int64(s, first + 7, static_cast<sqlite3_int64>(e.false_negatives));
  if (e.auc.has_value()) {
    sqlite3_bind_double(s, first + 8, *e.auc);
  } else {
    sqlite3_bind_null(s, first + 8);
  }
}

// Reads the columns BindEvaluation binds, starting at column `first` of the current row.
SiteEvaluation ColumnEvaluation(sqlite3_stmt* s, int first) {
  SiteEvaluation e;
  e.examples = static_cast<uint64_t>(sqlite3_column_int64(s, first));
  e.loss = sqlite3_column_double(s, first + 1);
  e.correct = static_cast<uint64_t>(sqlite3_column_int64(s, first + 2));
  e.binary = sqlite3_column_int(s, first + 3) != 0;
  e.true_positives = static_cast<uint64_t>(sqlite3_column_int64(s, first + 4));
  e.false_positives = static_cast<uint64_t>(sqlite3_column_int64(s, first + 5));
  e.true_negatives = static_cast<uint64_t>(sqlite3_column_int64(s, first + 6));
  e.false_negatives = static_cast<uint64_t>(sqlite3_column_int64(s, first + 7));
  if (sqlite3_column_type(s, first + 8) != SQLITE_NULL) {
    e.auc = sqlite3_column_double(s, first + 8);
  }
  return e;
}

}  // namespace

PooledBinaryMetrics PoolBinaryMetrics(const std::map<std::string, SiteEvaluation>& sites) {
  PooledBinaryMetrics pooled;
  uint64_t tp = 0, fp = 0, fn = 0, auc_examples = 0;
  double auc_sum = 0;
  bool any = false;
  for (const auto& [site, e] : sites) {
    if (!e.binary) continue;
    any = true;
    tp += e.true_positives;
    fp += e.false_positives;
    fn += e.false_negatives;
    if (e.auc.has_value()) {
      auc_sum += *e.auc * static_cast<double>(e.examples);
      auc_examples += e.examples;
    }
  }
  if (!any) return pooled;
  if (tp + fp > 0) pooled.precision = static_cast<double>(tp) / static_cast<double>(tp + fp);
  if (tp + fn > 0) pooled.recall = static_cast<double>(tp) / static_cast<double>(tp + fn);
  if (auc_examples > 0) pooled.auc = auc_sum / static_cast<double>(auc_examples);
  return pooled;
}

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  std::unique_ptr<StateStore> store(new StateStore(db, path));
  if (rc != SQLITE_OK) return store->Error("cannot open state database");
  sqlite3_busy_timeout(db, 5000);
  absl::MutexLock lock(&store->mu_);
  for (const char* pragma : {"PRAGMA journal_mode=WAL;", "PRAGMA synchronous=FULL;"}) {
    if (absl::Status s = store->Exec(pragma); !s.ok()) return s;
  }
  if (absl::Status s = store->Exec(kSchema); !s.ok()) return s;
  return store;
}

absl::StatusOr<std::unique_ptr<StateStore>> StateStore::OpenReadOnly(const std::string& path) {
  if (!std::filesystem::exists(path)) {
    return absl::NotFoundError(absl::StrCat("no state database at ", path,
                                            " (is --state-dir the coordinator's state_dir?)"));
  }
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  std::unique_ptr<StateStore> store(new StateStore(db, path));
  if (rc != SQLITE_OK) return store->Error("cannot open state database");
  sqlite3_busy_timeout(db, 5000);
  return store;
}

StateStore::~StateStore() { sqlite3_close_v2(db_); }

absl::Status StateStore::Error(const std::string& what) const {
  return absl::InternalError(absl::StrCat(what, " (", path_, "): ",
                                          db_ ? sqlite3_errmsg(db_) : "out of memory"));
}

absl::Status StateStore::Exec(const std::string& sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : "unknown error";
    sqlite3_free(message);
    return absl::InternalError(absl::StrCat("state database ", path_, ": ", text));
  }
  return absl::OkStatus();
}

absl::Status StateStore::BeginRound(uint64_t round, absl::Time started_at) {
  absl::MutexLock lock(&mu_);
  Statement stmt(db_, "INSERT INTO rounds (round, status, started_at) VALUES (?, 'started', ?)");
  if (!stmt.ok()) return Error("prepare BeginRound");
  sqlite3_bind_int64(stmt.get(), 1, static_cast<sqlite3_int64>(round));
  sqlite3_bind_double(stmt.get(), 2, absl::ToDoubleSeconds(started_at - absl::UnixEpoch()));
  int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_CONSTRAINT) {
    return absl::AlreadyExistsError(absl::StrCat("round ", round, " was already used"));
  }
  if (rc != SQLITE_DONE) return Error(absl::StrCat("record start of round ", round));
  return absl::OkStatus();
}

absl::Status StateStore::CommitRound(const RoundRecord& r) {
  absl::MutexLock lock(&mu_);
  // The round row and its per-site rows commit together or not at all.
  if (absl::Status s = Exec("BEGIN IMMEDIATE;"); !s.ok()) return s;
  absl::Status status = CommitRoundRows(r);
  if (!status.ok()) {
    Exec("ROLLBACK;").IgnoreError();
    return status;
  }
  return Exec("COMMIT;");
}

absl::Status StateStore::CommitRoundRows(const RoundRecord& r) {
  Statement stmt(db_,
                 "UPDATE rounds SET status='committed', duration_s=?, participants=?, dropped=?, "
                 "examples=?, train_loss=?, test_loss=?, test_accuracy=?, test_examples=?, "
                 "checkpoint=?, drop_reasons=? WHERE round=? AND status='started'");
  if (!stmt.ok()) return Error("prepare CommitRound");
  sqlite3_bind_double(stmt.get(), 1, r.duration_s);
  stmt.BindText(2, absl::StrJoin(r.participants, ","));
  stmt.BindText(3, absl::StrJoin(r.dropped, ","));
  sqlite3_bind_int64(stmt.get(), 4, static_cast<sqlite3_int64>(r.examples));
  stmt.BindOptional(5, r.train_loss);
  stmt.BindOptional(6, r.test_loss);
  stmt.BindOptional(7, r.test_accuracy);
  sqlite3_bind_int64(stmt.get(), 8, static_cast<sqlite3_int64>(r.test_examples));
  stmt.BindText(9, r.checkpoint);
  std::string reasons;
  for (const auto& [site, why] : r.drop_reasons) {
    // One "site<TAB>reason" line each; tabs and newlines in a reason become spaces.
    std::string clean = why;
    for (char& c : clean) {
      if (c == '\t' || c == '\n') c = ' ';
    }
    absl::StrAppend(&reasons, site, "\t", clean, "\n");
  }
  stmt.BindText(10, reasons);
  sqlite3_bind_int64(stmt.get(), 11, static_cast<sqlite3_int64>(r.round));
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return Error("commit round");
  if (sqlite3_changes(db_) != 1) {
    return absl::FailedPreconditionError(absl::StrCat("round ", r.round, " is not open"));
  }
  for (const auto& [site, e] : r.site_epsilon) {
    Statement insert(db_,
                     "INSERT INTO site_rounds (round, site, sample_rate, noise_multiplier, "
                     "steps, epsilon) VALUES (?, ?, ?, ?, ?, ?)");
    if (!insert.ok()) return Error("prepare site_rounds");
    sqlite3_bind_int64(insert.get(), 1, static_cast<sqlite3_int64>(r.round));
    insert.BindText(2, site);
    sqlite3_bind_double(insert.get(), 3, e.sample_rate);
    sqlite3_bind_double(insert.get(), 4, e.noise_multiplier);
    sqlite3_bind_int64(insert.get(), 5, e.steps);
    sqlite3_bind_double(insert.get(), 6, e.epsilon);
    if (sqlite3_step(insert.get()) != SQLITE_DONE) return Error("record site privacy");
  }
  for (const auto& [site, e] : r.site_evaluations) {
    Statement insert(db_,
                     "INSERT INTO site_evaluations (round, site, examples, loss, correct, binary, "
                     "true_positives, false_positives, true_negatives, false_negatives, auc) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!insert.ok()) return Error("prepare site_evaluations");
    sqlite3_bind_int64(insert.get(), 1, static_cast<sqlite3_int64>(r.round));
    insert.BindText(2, site);
    BindEvaluation(insert, 3, e);
    if (sqlite3_step(insert.get()) != SQLITE_DONE) return Error("record site evaluation");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::vector<SiteEpsilon>>> StateStore::SitePrivacyHistory() {
  absl::MutexLock lock(&mu_);
  Statement stmt(db_,
                 "SELECT site, sample_rate, noise_multiplier, steps, epsilon FROM site_rounds "
                 "ORDER BY round");
  if (!stmt.ok()) return Error("read site privacy");
  std::map<std::string, std::vector<SiteEpsilon>> history;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    SiteEpsilon e;
    e.sample_rate = sqlite3_column_double(stmt.get(), 1);
    e.noise_multiplier = sqlite3_column_double(stmt.get(), 2);
    e.steps = sqlite3_column_int64(stmt.get(), 3);
    e.epsilon = sqlite3_column_double(stmt.get(), 4);
    history[ColumnText(stmt.get(), 0)].push_back(e);
  }
  if (rc != SQLITE_DONE) return Error("read site privacy");
  return history;
}

absl::StatusOr<int> StateStore::AbortInterruptedRounds(absl::Time now, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  Statement stmt(db_,
                 "UPDATE rounds SET status='aborted', duration_s=MAX(0, ? - started_at), "
                 "reason=? WHERE status='started'");
  if (!stmt.ok()) return Error("prepare AbortInterruptedRounds");
  sqlite3_bind_double(stmt.get(), 1, absl::ToDoubleSeconds(now - absl::UnixEpoch()));
  stmt.BindText(2, reason);
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return Error("abort interrupted rounds");
  return sqlite3_changes(db_);
}

absl::Status StateStore::AbortRound(uint64_t round, absl::Duration duration,
                                    const std::string& reason) {
  absl::MutexLock lock(&mu_);
  Statement stmt(db_,
                 "UPDATE rounds SET status='aborted', duration_s=?, reason=? "
                 "WHERE round=? AND status='started'");
  if (!stmt.ok()) return Error("prepare AbortRound");
  sqlite3_bind_double(stmt.get(), 1, absl::ToDoubleSeconds(duration));
  stmt.BindText(2, reason);
  sqlite3_bind_int64(stmt.get(), 3, static_cast<sqlite3_int64>(round));
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return Error("abort round");
  if (sqlite3_changes(db_) != 1) {
    return absl::FailedPreconditionError(absl::StrCat("round ", round, " is not open"));
  }
  return absl::OkStatus();
}

absl::Status StateStore::RecordServerEvaluation(uint64_t round,
                                                const SiteEvaluation& evaluation) {
  absl::MutexLock lock(&mu_);
  Statement status(db_, "SELECT status FROM rounds WHERE round=?");
  if (!status.ok()) return Error("prepare RecordServerEvaluation");
  sqlite3_bind_int64(status.get(), 1, static_cast<sqlite3_int64>(round));
  if (sqlite3_step(status.get()) != SQLITE_ROW || ColumnText(status.get(), 0) != "committed") {
    return absl::FailedPreconditionError(absl::StrCat(
        "round ", round, " is not committed: no server evaluation can be recorded for it"));
  }
  Statement insert(db_,
                   "INSERT INTO server_evaluations (round, examples, loss, correct, binary, "
                   "true_positives, false_positives, true_negatives, false_negatives, auc) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!insert.ok()) return Error("prepare server_evaluations");
  sqlite3_bind_int64(insert.get(), 1, static_cast<sqlite3_int64>(round));
  BindEvaluation(insert, 2, evaluation);
  const int rc = sqlite3_step(insert.get());
  if (rc == SQLITE_CONSTRAINT) {
    return absl::AlreadyExistsError(
        absl::StrCat("round ", round, " already has a server evaluation"));
  }
  if (rc != SQLITE_DONE) return Error("record server evaluation");
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> StateStore::LastRoundNumber() {
  absl::MutexLock lock(&mu_);
  Statement stmt(db_, "SELECT COALESCE(MAX(round), 0) FROM rounds");
  if (!stmt.ok() || sqlite3_step(stmt.get()) != SQLITE_ROW) return Error("read last round");
  return static_cast<uint64_t>(sqlite3_column_int64(stmt.get(), 0));
}

absl::StatusOr<std::vector<RoundRecord>> StateStore::ListRounds(bool committed_only) {
  absl::MutexLock lock(&mu_);
  return ListRoundsLocked(committed_only);
}

absl::StatusOr<std::vector<RoundRecord>> StateStore::ListRoundsLocked(bool committed_only) {
  std::string sql =
      "SELECT round, status, started_at, duration_s, participants, dropped, examples, "
      "train_loss, test_loss, test_accuracy, test_examples, checkpoint, reason, drop_reasons "
      "FROM rounds ";
  if (committed_only) sql += "WHERE status='committed' ";
  sql += "ORDER BY round";
  Statement stmt(db_, sql.c_str());
  if (!stmt.ok()) return Error("read rounds (is this a cohort state database?)");
  std::vector<RoundRecord> out;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    sqlite3_stmt* s = stmt.get();
    RoundRecord r;
    r.round = static_cast<uint64_t>(sqlite3_column_int64(s, 0));
    r.status = ColumnText(s, 1);
    r.started_at = absl::UnixEpoch() + absl::Seconds(sqlite3_column_double(s, 2));
    r.duration_s = sqlite3_column_double(s, 3);
    r.participants = SplitIds(ColumnText(s, 4));
    r.dropped = SplitIds(ColumnText(s, 5));
    r.examples = static_cast<uint64_t>(sqlite3_column_int64(s, 6));
    r.train_loss = ColumnOptional(s, 7);
    r.test_loss = ColumnOptional(s, 8);
    r.test_accuracy = ColumnOptional(s, 9);
    r.test_examples = static_cast<uint64_t>(sqlite3_column_int64(s, 10));
    r.checkpoint = ColumnText(s, 11);
    r.reason = ColumnText(s, 12);
    for (absl::string_view line : absl::StrSplit(ColumnText(s, 13), '\n', absl::SkipEmpty())) {
      std::pair<std::string, std::string> entry = absl::StrSplit(line, absl::MaxSplits('\t', 1));
      r.drop_reasons[entry.first] = entry.second;
    }
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) return Error("read rounds");
  Statement sites(db_,
                  "SELECT round, site, sample_rate, noise_multiplier, steps, epsilon "
                  "FROM site_rounds");
  if (sites.ok()) {  // absent in a database from before per-site privacy was recorded
    std::map<uint64_t, RoundRecord*> by_round;
    for (RoundRecord& r : out) by_round[r.round] = &r;
    while (sqlite3_step(sites.get()) == SQLITE_ROW) {
      auto it = by_round.find(static_cast<uint64_t>(sqlite3_column_int64(sites.get(), 0)));
      if (it == by_round.end()) continue;
      SiteEpsilon e;
      e.sample_rate = sqlite3_column_double(sites.get(), 2);
      e.noise_multiplier = sqlite3_column_double(sites.get(), 3);
      e.steps = sqlite3_column_int64(sites.get(), 4);
      e.epsilon = sqlite3_column_double(sites.get(), 5);
      it->second->site_epsilon[ColumnText(sites.get(), 1)] = e;
    }
  }
  // Rows of a per-round table, each handed to `attach` with the round's record.
  auto attach_rows = [&out](Statement& rows,
                            const std::function<void(sqlite3_stmt*, RoundRecord&)>& attach) {
    std::map<uint64_t, RoundRecord*> by_round;
    for (RoundRecord& r : out) by_round[r.round] = &r;
    sqlite3_stmt* s = rows.get();
    while (sqlite3_step(s) == SQLITE_ROW) {
      auto it = by_round.find(static_cast<uint64_t>(sqlite3_column_int64(s, 0)));
      if (it != by_round.end()) attach(s, *it->second);
    }
  };
  Statement evaluations(db_,
                        "SELECT round, site, examples, loss, correct, binary, true_positives, "
                        "false_positives, true_negatives, false_negatives, auc "
                        "FROM site_evaluations");
  if (evaluations.ok()) {  // absent in a database from before per-site evaluations
    attach_rows(evaluations, [](sqlite3_stmt* s, RoundRecord& r) {
      r.site_evaluations[ColumnText(s, 1)] = ColumnEvaluation(s, 2);
    });
  }
  Statement server(db_,
                   "SELECT round, examples, loss, correct, binary, true_positives, "
                   "false_positives, true_negatives, false_negatives, auc "
                   "FROM server_evaluations");
  if (server.ok()) {  // absent in a database from before server-side evaluation
    attach_rows(server, [](sqlite3_stmt* s, RoundRecord& r) {
      r.server_evaluation = ColumnEvaluation(s, 1);
    });
  }
  return out;
}

absl::StatusOr<std::optional<RoundRecord>> StateStore::LastCommittedRound() {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::vector<RoundRecord>> rounds = ListRoundsLocked(/*committed_only=*/true);
  if (!rounds.ok()) return rounds.status();
  if (rounds->empty()) return std::optional<RoundRecord>();
  return std::optional<RoundRecord>(rounds->back());
}

absl::Status StateStore::BackupTo(const std::string& path) {
  if (std::filesystem::exists(path)) {
    return absl::AlreadyExistsError(absl::StrCat(path, " exists; back up to a new file"));
  }
  sqlite3* target = nullptr;
  if (sqlite3_open_v2(path.c_str(), &target, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK) {
    std::string why = target ? sqlite3_errmsg(target) : "out of memory";
    sqlite3_close_v2(target);
    return absl::UnavailableError(absl::StrCat("cannot create ", path, ": ", why));
  }
  absl::MutexLock lock(&mu_);
  sqlite3_backup* backup = sqlite3_backup_init(target, "main", db_, "main");
  int rc = SQLITE_ERROR;
  if (backup != nullptr) {
    rc = sqlite3_backup_step(backup, -1);  // all pages in one step: a consistent snapshot
    sqlite3_backup_finish(backup);
  }
  std::string why = sqlite3_errmsg(target);
  sqlite3_close_v2(target);
  if (rc != SQLITE_DONE) {
    std::filesystem::remove(path);
    return absl::InternalError(absl::StrCat("backup of ", path_, " to ", path, " failed: ", why));
  }
  return absl::OkStatus();
}

absl::Status StateStore::PutSetting(const std::string& key, const std::string& value) {
  absl::MutexLock lock(&mu_);
  Statement stmt(db_, "INSERT INTO settings (key, value) VALUES (?, ?) "
                      "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  if (!stmt.ok()) return Error("prepare PutSetting");
  sqlite3_bind_text(stmt.get(), 1, key.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(stmt.get(), 2, value.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return Error(absl::StrCat("store setting ", key));
  return absl::OkStatus();
}

absl::Status StateStore::DeleteSetting(const std::string& key) {
  absl::MutexLock lock(&mu_);
  Statement stmt(db_, "DELETE FROM settings WHERE key = ?");
  if (!stmt.ok()) return Error("prepare DeleteSetting");
  sqlite3_bind_text(stmt.get(), 1, key.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(stmt.get()) != SQLITE_DONE) return Error(absl::StrCat("delete setting ", key));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<std::string>> StateStore::GetSetting(const std::string& key) {
  absl::MutexLock lock(&mu_);
  Statement stmt(db_, "SELECT value FROM settings WHERE key = ?");
  if (!stmt.ok()) return Error("prepare GetSetting");
  sqlite3_bind_text(stmt.get(), 1, key.c_str(), -1, SQLITE_TRANSIENT);
  const int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  if (rc != SQLITE_ROW) return Error(absl::StrCat("read setting ", key));
  const unsigned char* text = sqlite3_column_text(stmt.get(), 0);
  return std::optional<std::string>(text == nullptr ? "" : reinterpret_cast<const char*>(text));
}

}  // namespace cohort::state
