#ifndef COHORT_COMMON_SECAGG_LOCAL_ROUND_H_
#define COHORT_COMMON_SECAGG_LOCAL_ROUND_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "cohort/v1/secagg.pb.h"
#include "common/secagg/mod_vector.h"
#include "common/secagg/secagg_client.h"

namespace cohort::secagg {

// Stages at which a site may vanish in a LocalRound (it sends nothing from then on).
enum class VanishStage { kNever = -1, kAdvertise = 0, kShareKeys = 1, kMaskedInput = 2, kUnmask = 3 };

// One site of a LocalRound: its credentials, its input, and when (if ever) it vanishes.
struct LocalSite {
  SiteCredentials credentials;
  ModVector input{32, 0};
  VanishStage vanish = VanishStage::kNever;
};

struct LocalRoundResult {
  absl::Status status;               // OK when the sum was unmasked
  std::optional<ModVector> sum;      // the unmasked sum (status OK only)
  std::vector<std::string> survivors;
  std::map<std::string, std::string> drop_reasons;
  absl::Duration unmask_time;        // the coordinator's CloseUnmask
  uint64_t regenerated_mask_words = 0;
};

// Runs every party of one secure aggregation round in this process, passing the state
// machines' messages directly (no transport): for tests, benchmarks and protocol research.
// A site whose state machine refuses a message is dropped, as the daemons do.
LocalRoundResult RunLocalRound(const v1::SecAggConfig& config, const std::string& federation,
                               uint64_t round, const std::string& ca_pem,
                               std::vector<LocalSite>& sites, absl::Time now);

}  // namespace cohort::secagg

#endif  // COHORT_COMMON_SECAGG_LOCAL_ROUND_H_
