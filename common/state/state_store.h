#ifndef COHORT_COMMON_STATE_STATE_STORE_H_
#define COHORT_COMMON_STATE_STATE_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

struct sqlite3;

namespace cohort::state {

// One site's DP-SGD in one round, and its total epsilon after it.
struct SiteEpsilon {
  double sample_rate = 0;
  double noise_multiplier = 0;
  int64_t steps = 0;
  double epsilon = 0;
};

// One site's evaluation of a round's committed model on its held-out split.
struct SiteEvaluation {
  uint64_t examples = 0;
  double loss = 0;     // mean
  uint64_t correct = 0;
  // Two-class models only (binary == true): confusion counts at the model's decision and the
  // ROC AUC of its positive-class score (absent when the split lacks a class).
  bool binary = false;
  uint64_t true_positives = 0;
  uint64_t false_positives = 0;
  uint64_t true_negatives = 0;
  uint64_t false_negatives = 0;
  std::optional<double> auc;
};

// Pooled binary figures of a round: precision and recall from the summed confusion counts
// (exact), AUC as the example-weighted mean of the sites' AUCs (the sites never send their
// scores, so the pooled ROC curve is not available). Each nullopt when undefined.
struct PooledBinaryMetrics {
  std::optional<double> precision;
  std::optional<double> recall;
  std::optional<double> auc;
};
PooledBinaryMetrics PoolBinaryMetrics(const std::map<std::string, SiteEvaluation>& sites);

// One row of the round history.
struct RoundRecord {
  uint64_t round = 0;
  std::string status;  // "started", "committed" or "aborted"
  absl::Time started_at = absl::UnixEpoch();
  double duration_s = 0;
  std::vector<std::string> participants;  // sites whose update is in the aggregate
  std::vector<std::string> dropped;       // sites selected but dropped from the round
  std::map<std::string, std::string> drop_reasons;  // why, per dropped site (e.g. a refusal)
  // DP-SGD per contributing site: epsilon after this round as the coordinator accounts it
  // from what the site reported (the site's own ledger is authoritative).
  std::map<std::string, SiteEpsilon> site_epsilon;
  // Each evaluating site's figures on the committed model.
  std::map<std::string, SiteEvaluation> site_evaluations;
  // The coordinator's own evaluation of the committed model on the central test file
  // (evaluation.server), recorded after the commit by RecordServerEvaluation.
  std::optional<SiteEvaluation> server_evaluation;
  uint64_t examples = 0;                  // training examples behind the aggregate
  std::optional<double> train_loss;       // example-weighted mean over participants
  std::optional<double> test_loss;        // example-weighted, of the committed model
  std::optional<double> test_accuracy;    // pooled over the sites' held-out splits
  uint64_t test_examples = 0;
  std::string checkpoint;                 // file name of the checkpoint, relative to state_dir
  std::string reason;                     // why a round was aborted
};

// The coordinator's durable state in one SQLite file (`state_dir/state.db`). Writes are
// transactions with synchronous=FULL, so a crash leaves the last committed row intact.
// Invariant: a round number is inserted once (BeginRound) before any task of that round
// leaves the coordinator, so a number is never reused, even across restarts.
class StateStore {
 public:
  // Opens or creates the database and its schema.
  static absl::StatusOr<std::unique_ptr<StateStore>> Open(const std::string& path);
  // Opens an existing database for reading only (NotFound if it does not exist).
  static absl::StatusOr<std::unique_ptr<StateStore>> OpenReadOnly(const std::string& path);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  // Records that `round` started. AlreadyExists if that number was ever used.
  absl::Status BeginRound(uint64_t round, absl::Time started_at);
  // Marks a started round committed with its results.
  absl::Status CommitRound(const RoundRecord& record);
  // Marks a started round aborted; its number stays consumed.
  absl::Status AbortRound(uint64_t round, absl::Duration duration, const std::string& reason);
  // Marks every round still 'started' aborted with `reason` (a coordinator that was killed
  // mid-round leaves one behind); returns how many. Their numbers stay consumed.
  absl::StatusOr<int> AbortInterruptedRounds(absl::Time now, const std::string& reason);

  // Highest round number ever begun (0 when none).
  absl::StatusOr<uint64_t> LastRoundNumber();
  // The most recent committed round, if any.
  absl::StatusOr<std::optional<RoundRecord>> LastCommittedRound();
  absl::StatusOr<std::vector<RoundRecord>> ListRounds(bool committed_only);
  // Records the server-side evaluation of committed round `round` (once; AlreadyExists for a
  // second, FailedPrecondition when the round is not committed).
  absl::Status RecordServerEvaluation(uint64_t round, const SiteEvaluation& evaluation);
  // Every committed (q, sigma, steps) per site, in round order, to rebuild the accounting.
  absl::StatusOr<std::map<std::string, std::vector<SiteEpsilon>>> SitePrivacyHistory();

  // Writes a consistent copy of the whole database to `path` (which must not exist) with
  // SQLite's online backup, while this store stays usable: a coordinator need not stop.
  absl::Status BackupTo(const std::string& path);

  // Small durable operator settings (e.g. "paused"), committed before returning.
  absl::Status PutSetting(const std::string& key, const std::string& value);
  absl::Status DeleteSetting(const std::string& key);
  // The setting's value, or nullopt when it is not set.
  absl::StatusOr<std::optional<std::string>> GetSetting(const std::string& key);

 private:
  explicit StateStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  absl::Status Exec(const std::string& sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<RoundRecord>> ListRoundsLocked(bool committed_only)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CommitRoundRows(const RoundRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Error(const std::string& what) const;

  // One connection, used by the round loop and the Admin service's threads: each public
  // method holds the mutex, so a transaction never interleaves with another thread's call.
  absl::Mutex mu_;
  sqlite3* db_;
  std::string path_;
};

}  // namespace cohort::state

#endif  // COHORT_COMMON_STATE_STATE_STORE_H_
