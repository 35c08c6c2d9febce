#ifndef COHORT_COMMON_DP_LEDGER_H_
#define COHORT_COMMON_DP_LEDGER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

struct sqlite3;

namespace cohort::dp {

// One round of DP-SGD that left the site.
struct LedgerEntry {
  uint64_t round = 0;
  double sample_rate = 0;       // q
  double noise_multiplier = 0;  // sigma
  int64_t steps = 0;
  double max_grad_norm = 0;
  double delta = 0;
  double epsilon_after = 0;  // the site's total epsilon at `delta` including this round
  absl::Time recorded_at = absl::UnixEpoch();
};

// The site's privacy ledger: a SQLite file (WAL, synchronous=FULL) holding every DP-SGD
// round the site trained. It is the site's own record of what left it: an entry is written
// (and synced) before the update is uploaded, and the spent budget is recomputed from it.
// It fails closed: a missing, foreign or corrupt file is refused, never silently recreated;
// an operator creates it once with Initialize (`cohortctl ledger init`).
class PrivacyLedger {
 public:
  // Creates a new, empty ledger for `site`. AlreadyExists if the file exists.
  static absl::Status Initialize(const std::string& path, const std::string& site);
  // Opens an initialised ledger. FailedPrecondition with the reason (missing, not a cohort
  // ledger, fails SQLite's integrity check, belongs to another site). An empty `site`
  // accepts any owner (for reading it, e.g. cohortctl ledger).
  static absl::StatusOr<std::unique_ptr<PrivacyLedger>> Open(const std::string& path,
                                                             const std::string& site);
  ~PrivacyLedger();
  PrivacyLedger(const PrivacyLedger&) = delete;
  PrivacyLedger& operator=(const PrivacyLedger&) = delete;

  absl::StatusOr<std::vector<LedgerEntry>> Entries();
  // The site's epsilon at `delta` after its recorded rounds plus, optionally, one more round
  // of `steps` steps at (q, sigma) (pass steps = 0 for the spent budget alone).
  absl::StatusOr<double> Epsilon(double delta, double q = 0, double sigma = 0,
                                 int64_t steps = 0);
  // Appends an entry in one synced transaction.
  absl::Status Record(const LedgerEntry& entry);
  const std::string& site() const { return site_; }

 private:
  PrivacyLedger(sqlite3* db, std::string path, std::string site)
      : db_(db), path_(std::move(path)), site_(std::move(site)) {}
  absl::Status Error(const std::string& what) const;

  sqlite3* db_;
  std::string path_;
  std::string site_;
};

// What one round of DP-SGD at a site spends: Poisson rate q = min(1, batch / n) and
// epochs x ceil(n / batch) steps. The trainer runs exactly this; the site's policy checks it.
struct DpRoundPlan {
  double sample_rate = 0;
  int64_t steps = 0;
};
DpRoundPlan PlanDpRound(int64_t examples, int64_t batch_size, int64_t epochs);

// The site's own privacy rules; the coordinator cannot override them.
struct SitePrivacyPolicy {
  double max_epsilon = 0;
  double delta = 1e-5;
  double min_noise_multiplier = 0;
  double max_grad_norm = 0;  // the largest clipping norm the site accepts
};

// Which rule of the site's policy a task broke (a fixed set, e.g. for a metric's label;
// the Status message carries the details).
enum class DpRefusal {
  kNone,
  kNotDp,   // the task asks for non-private training
  kNoise,   // less noise than min_noise_multiplier
  kClip,    // a larger clipping norm than max_grad_norm
  kBudget,  // the round would take the site over max_epsilon
  kLedger,  // the ledger could not be read, so the spent budget is unknown
};

// OK when the site may run a round of DP-SGD at (sigma, C) for `plan`; otherwise
// PermissionDenied with a reason meant for the coordinator's round history (or the ledger's
// error when it cannot be read). `refusal`, if given, is set to the rule that refused it.
absl::Status CheckDpTask(const SitePrivacyPolicy& policy, PrivacyLedger& ledger,
                         bool task_uses_dp, double noise_multiplier, double max_grad_norm,
                         const DpRoundPlan& plan, DpRefusal* refusal = nullptr);

}  // namespace cohort::dp

#endif  // COHORT_COMMON_DP_LEDGER_H_
