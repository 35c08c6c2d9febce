#ifndef COHORT_SERVER_FEDERATION_ACTIVITY_H_
#define COHORT_SERVER_FEDERATION_ACTIVITY_H_

#include <cstdint>
#include <deque>
#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/coordinator_metrics.h"

namespace cohort::server {

// What the round loop is doing right now (round, stage, since when), the last errors, and
// why each site last left a round: the live half of the Admin status and the status page
// (the round history is the other half, in the state database). Stage durations go to the
// metrics as the loop leaves each stage. Thread-safe.
class FederationActivity {
 public:
  // Stages of the loop. Round stages (timed): train, share_keys, masked_input, unmask,
  // evaluate, commit. Between rounds: waiting, paused, done.
  static constexpr absl::string_view kWaiting = "waiting";
  static constexpr absl::string_view kPaused = "paused";
  static constexpr absl::string_view kDone = "done";

  static constexpr size_t kMaxErrors = 20;

  struct Error {
    absl::Time at;
    uint64_t round = 0;
    std::string site;
    std::string message;
  };

  struct Snapshot {
    uint64_t round = 0;  // 0 between rounds
    std::string stage;
    absl::Time stage_started;
    std::deque<Error> errors;                        // oldest first
    std::map<std::string, std::string> drop_reasons;  // per site, the last one
  };

  explicit FederationActivity(CoordinatorMetrics* metrics, absl::Time now);

  // The loop enters `stage` of `round` (0 between rounds); the stage it leaves, if a round
  // stage, is timed into the metrics.
  void Enter(uint64_t round, absl::string_view stage, absl::Time now);
  void RecordError(uint64_t round, std::string site, std::string message, absl::Time now);
  void RecordDrop(uint64_t round, const std::string& site, const std::string& reason,
                  absl::Time now);
  Snapshot Get() const;

 private:
  CoordinatorMetrics* const metrics_;
  mutable absl::Mutex mu_;
  Snapshot now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cohort::server

#endif  // COHORT_SERVER_FEDERATION_ACTIVITY_H_
