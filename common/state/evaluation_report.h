#ifndef COHORT_COMMON_STATE_EVALUATION_REPORT_H_
#define COHORT_COMMON_STATE_EVALUATION_REPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/state/state_store.h"

// The text cohort-evaluator prints on stdout and the coordinator parses: one "key value" per
// line, a version line first, doubles printed exactly (%a), e.g.
//   cohort-evaluation 1
//   examples 114
//   loss 0x1.3cp-3
//   correct 110
//   binary 1
//   true_positives 41 ... auc 0x1.fcp-1 (auc absent when the set lacks a class)
namespace cohort::state {

std::string FormatEvaluationReport(const SiteEvaluation& evaluation);

// Parses FormatEvaluationReport's text. InvalidArgument (naming the line) for anything else:
// a missing version line or key, an unknown key, a value that is not a number, correct >
// examples, confusion counts that do not add up to examples, a loss or AUC out of range.
absl::StatusOr<SiteEvaluation> ParseEvaluationReport(absl::string_view text);

}  // namespace cohort::state

#endif  // COHORT_COMMON_STATE_EVALUATION_REPORT_H_
