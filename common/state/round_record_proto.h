#ifndef COHORT_COMMON_STATE_ROUND_RECORD_PROTO_H_
#define COHORT_COMMON_STATE_ROUND_RECORD_PROTO_H_

#include "cohort/v1/admin.pb.h"
#include "common/state/state_store.h"

namespace cohort::state {

// A round of the history as the Admin API sends it, and back (lossless, to the
// millisecond for the start time).
cohort::v1::RoundSummary ToProto(const RoundRecord& record);
RoundRecord FromProto(const cohort::v1::RoundSummary& summary);

}  // namespace cohort::state

#endif  // COHORT_COMMON_STATE_ROUND_RECORD_PROTO_H_
