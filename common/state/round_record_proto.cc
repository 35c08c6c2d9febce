#include "common/state/round_record_proto.h"

namespace cohort::state {
namespace {

void EvaluationToProto(const std::string& site, const SiteEvaluation& e,
                       cohort::v1::SiteEvaluationRecord* out) {
  out->set_site_id(site);
  out->set_examples(e.examples);
  out->set_loss(e.loss);
  out->set_correct(e.correct);
  out->set_binary(e.binary);
  out->set_true_positives(e.true_positives);
  out->set_false_positives(e.false_positives);
  out->set_true_negatives(e.true_negatives);
  out->set_false_negatives(e.false_negatives);
  if (e.auc.has_value()) out->set_auc(*e.auc);
}

SiteEvaluation EvaluationFromProto(const cohort::v1::SiteEvaluationRecord& e) {
  SiteEvaluation out;
  out.examples = e.examples();
  out.loss = e.loss();
  out.correct = e.correct();
  out.binary = e.binary();
  out.true_positives = e.true_positives();
  out.false_positives = e.false_positives();
  out.true_negatives = e.true_negatives();
  out.false_negatives = e.false_negatives();
  if (e.has_auc()) out.auc = e.auc();
  return out;
}

}  // namespace

cohort::v1::RoundSummary ToProto(const RoundRecord& record) {
  cohort::v1::RoundSummary summary;
  summary.set_round(record.round);
  summary.set_status(record.status);
  summary.set_started_unix_ms(absl::ToUnixMillis(record.started_at));
  summary.set_duration_s(record.duration_s);
  for (const std::string& site : record.participants) summary.add_participants(site);
  for (const std::string& site : record.dropped) summary.add_dropped(site);
  for (const auto& [site, reason] : record.drop_reasons) {
    (*summary.mutable_drop_reasons())[site] = reason;
  }
  for (const auto& [site, e] : record.site_epsilon) {
    cohort::v1::SiteEpsilonRecord* out = summary.add_site_epsilon();
    out->set_site_id(site);
    out->set_sample_rate(e.sample_rate);
    out->set_noise_multiplier(e.noise_multiplier);
    out->set_steps(static_cast<uint64_t>(e.steps));
    out->set_epsilon(e.epsilon);
  }
  summary.set_examples(record.examples);
  if (record.train_loss) summary.set_train_loss(*record.train_loss);
  if (record.test_loss) summary.set_test_loss(*record.test_loss);
  if (record.test_accuracy) summary.set_test_accuracy(*record.test_accuracy);
  summary.set_test_examples(record.test_examples);
  summary.set_checkpoint(record.checkpoint);
  summary.set_reason(record.reason);
  for (const auto& [site, e] : record.site_evaluations) {
    EvaluationToProto(site, e, summary.add_site_evaluations());
  }
  if (record.server_evaluation) {
    EvaluationToProto("", *record.server_evaluation, summary.mutable_server_evaluation());
  }
  return summary;
}

RoundRecord FromProto(const cohort::v1::RoundSummary& summary) {
  RoundRecord record;
  record.round = summary.round();
  record.status = summary.status();
  record.started_at = absl::FromUnixMillis(summary.started_unix_ms());
  record.duration_s = summary.duration_s();
  record.participants.assign(summary.participants().begin(), summary.participants().end());
  record.dropped.assign(summary.dropped().begin(), summary.dropped().end());
  for (const auto& [site, reason] : summary.drop_reasons()) record.drop_reasons[site] = reason;
  for (const cohort::v1::SiteEpsilonRecord& e : summary.site_epsilon()) {
    record.site_epsilon[e.site_id()] = SiteEpsilon{e.sample_rate(), e.noise_multiplier(),
                                                   static_cast<int64_t>(e.steps()), e.epsilon()};
  }
  record.examples = summary.examples();
  if (summary.has_train_loss()) record.train_loss = summary.train_loss();
  if (summary.has_test_loss()) record.test_loss = summary.test_loss();
  if (summary.has_test_accuracy()) record.test_accuracy = summary.test_accuracy();
  record.test_examples = summary.test_examples();
  record.checkpoint = summary.checkpoint();
  record.reason = summary.reason();
  for (const cohort::v1::SiteEvaluationRecord& e : summary.site_evaluations()) {
    record.site_evaluations[e.site_id()] = EvaluationFromProto(e);
  }
  if (summary.has_server_evaluation()) {
    record.server_evaluation = EvaluationFromProto(summary.server_evaluation());
  }
  return record;
}

}  // namespace cohort::state
