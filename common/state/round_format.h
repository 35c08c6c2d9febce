#ifndef COHORT_COMMON_STATE_ROUND_FORMAT_H_
#define COHORT_COMMON_STATE_ROUND_FORMAT_H_

#include <string>
#include <vector>

#include "common/state/state_store.h"

namespace cohort::state {

// `s` as a JSON string literal (quoted and escaped).
std::string JsonString(const std::string& s);

// The round history as a JSON array, one object per round (cohortctl rounds --json, the
// status page's /api/rounds).
std::string RoundsAsJson(const std::vector<RoundRecord>& rounds);

// The round history as an aligned text table, one line per round (cohortctl rounds).
std::string RoundsAsTable(const std::vector<RoundRecord>& rounds);

}  // namespace cohort::state

#endif  // COHORT_COMMON_STATE_ROUND_FORMAT_H_
