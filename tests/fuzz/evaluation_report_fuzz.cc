// Fuzzes the parser of cohort-evaluator's report (state::ParseEvaluationReport). A report
// that parses must be consistent (correct <= examples; for a binary model the confusion
// counts add up to examples and to correct, each at most examples; AUC in [0, 1]) and must
// survive FormatEvaluationReport/ParseEvaluationReport unchanged.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "common/state/evaluation_report.h"

namespace {

bool Same(const cohort::state::SiteEvaluation& a, const cohort::state::SiteEvaluation& b) {
  return a.examples == b.examples && a.loss == b.loss && a.correct == b.correct &&
         a.binary == b.binary && a.true_positives == b.true_positives &&
         a.false_positives == b.false_positives && a.true_negatives == b.true_negatives &&
         a.false_negatives == b.false_negatives && a.auc == b.auc;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<cohort::state::SiteEvaluation> report =
      cohort::state::ParseEvaluationReport(text);
  if (!report.ok()) {
    if (!absl::IsInvalidArgument(report.status())) std::abort();
    return 0;
  }
  const cohort::state::SiteEvaluation& e = *report;
  if (e.examples == 0 || e.correct > e.examples) std::abort();
  if (!std::isfinite(e.loss) || e.loss < 0) std::abort();
  if (e.binary) {
    for (uint64_t count :
         {e.true_positives, e.false_positives, e.true_negatives, e.false_negatives}) {
      if (count > e.examples) std::abort();
    }
    if (e.true_positives + e.false_positives + e.true_negatives + e.false_negatives !=
            e.examples ||
        e.true_positives + e.true_negatives != e.correct) {
      std::abort();
    }
    if (e.auc.has_value() && !(*e.auc >= 0 && *e.auc <= 1)) std::abort();
  } else if (e.true_positives != 0 || e.false_positives != 0 || e.true_negatives != 0 ||
             e.false_negatives != 0 || e.auc.has_value()) {
    std::abort();
  }
  absl::StatusOr<cohort::state::SiteEvaluation> again =
      cohort::state::ParseEvaluationReport(cohort::state::FormatEvaluationReport(e));
  if (!again.ok() || !Same(*again, e)) std::abort();
  return 0;
}
