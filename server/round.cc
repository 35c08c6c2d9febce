#include "server/round.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/crypto/sha256.h"
#include "common/tensor/layout.h"

namespace cohort::server {

std::shared_ptr<const ModelBlob> ModelBlob::Make(std::string id, std::vector<float> values) {
  auto blob = std::make_shared<ModelBlob>();
  blob->id = std::move(id);
  blob->values = std::move(values);
  blob->sha256 = crypto::Sha256(tensor::AsBytes(blob->values));
  return blob;
}

Round::Round(uint64_t number, std::vector<std::string> participants,
             std::shared_ptr<const ModelBlob> global, std::shared_ptr<SecureAggregation> secure,
             std::unique_ptr<Aggregator> aggregator)
    : number_(number),
      participants_(std::move(participants)),
      global_(std::move(global)),
      secure_(std::move(secure)),
      aggregator_(aggregator != nullptr
                      ? std::move(aggregator)
                      : std::make_unique<FedAvgAggregator>(global_->values.size())) {}

bool Round::IsParticipant(const std::string& site) const {
  return std::find(participants_.begin(), participants_.end(), site) != participants_.end();
}

absl::StatusOr<std::shared_ptr<const ModelBlob>> Round::ModelFor(const std::string& site,
                                                                 const std::string& model_id) {
  absl::MutexLock lock(&mu_);
  if (stage_ == Stage::kTrain && model_id == global_->id) {
    if (!IsParticipant(site)) {
      return absl::PermissionDeniedError(
          absl::StrCat("site ", site, " was not selected for round ", number_));
    }
    return global_;
  }
  if (stage_ == Stage::kEvaluate && candidate_ && model_id == candidate_->id) {
    if (evaluators_.count(site) == 0) {
      return absl::PermissionDeniedError(
          absl::StrCat("site ", site, " was not asked to evaluate round ", number_));
    }
    return candidate_;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("model '", model_id, "' is not served in the current stage of round ", number_));
}

absl::Status Round::BeginUpload(const std::string& site, const UploadAnnouncement& a,
                                std::function<void()> cancel) {
  if (a.round != number_) {
    return absl::FailedPreconditionError(
        absl::StrCat("round ", a.round, " is not open (the open round is ", number_, ")"));
  }
  if (!IsParticipant(site)) {
    return absl::PermissionDeniedError(
        absl::StrCat("site ", site, " was not selected for round ", number_));
  }
  if (a.base_model_id != global_->id) {
    return absl::FailedPreconditionError(absl::StrCat(
        "update was trained from model '", a.base_model_id, "', round ", number_, " serves '",
        global_->id, "'"));
  }
  if (secure_ != nullptr) {
    if (a.masked_modulus_bits == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "round ", number_, " uses secure aggregation: updates in the clear are refused"));
    }
    const v1::SecAggConfig& config =
        secure_->Locked([](secagg::SecAggServer& s) -> const v1::SecAggConfig& { return s.config(); });
    if (a.masked_modulus_bits != config.modulus_bits() || a.num_values != config.vector_length()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "masked input of ", a.num_values, " words mod 2^", a.masked_modulus_bits,
          ", round ", number_, " expects ", config.vector_length(), " mod 2^",
          config.modulus_bits()));
    }
    if (absl::Status s = secure_->CheckMaskedInput(site); !s.ok()) return s;
  } else if (a.masked_modulus_bits != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("round ", number_, " does not use secure aggregation"));
  } else if (a.num_values != global_->values.size()) {
    return absl::InvalidArgumentError(absl::StrCat("update has ", a.num_values,
                                                   " values, the model has ",
                                                   global_->values.size()));
  }
  if (!std::isfinite(a.weight) || a.weight <= 0 || a.weight > 1e12) {
    return absl::InvalidArgumentError(
        absl::StrCat("update weight must be a positive example count (got ", a.weight, ")"));
  }
  if (!std::isfinite(a.train_loss)) {
    return absl::InvalidArgumentError("reported training loss is not finite");
  }
  if (a.dp_steps < 0 || a.dp_steps > 100000000 ||
      (a.dp_steps > 0 && !(a.dp_sample_rate > 0 && a.dp_sample_rate <= 1))) {
    return absl::InvalidArgumentError("reported DP-SGD steps or sample rate out of range");
  }
  absl::MutexLock lock(&mu_);
  if (uploaded_.count(site) > 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("site ", site, " already uploaded its update for round ", number_));
  }
  if (stage_ != Stage::kTrain) {
    return absl::FailedPreconditionError(
        absl::StrCat("round ", number_, " no longer accepts updates (training stage closed)"));
  }
  if (failed_.count(site) > 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("site ", site, " was dropped from round ", number_));
  }
  if (!in_flight_.emplace(site, std::move(cancel)).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("site ", site, " already has an upload in flight for round ", number_));
  }
  return absl::OkStatus();
}

absl::Status Round::CompleteUpload(const std::string& site, const UploadAnnouncement& a,
                                   const std::vector<float>& delta) {
  absl::MutexLock lock(&mu_);
  if (in_flight_.erase(site) == 0 || uploaded_.count(site) > 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("site ", site, " has no upload in flight for round ", number_));
  }
  if (stage_ != Stage::kTrain) {
    return absl::DeadlineExceededError(
        absl::StrCat("round ", number_, " closed its training stage before the upload finished"));
  }
  if (delta.size() != aggregator_->num_values()) {
    return absl::InvalidArgumentError("update size changed during upload");
  }
  if (absl::Status s = aggregator_->Add(a.weight, delta); !s.ok()) return s;
  RecordContribution(site, a);
  return absl::OkStatus();
}

absl::Status Round::CompleteMaskedUpload(const std::string& site, const UploadAnnouncement& a,
                                         const secagg::ModVector& masked) {
  absl::MutexLock lock(&mu_);
  if (in_flight_.erase(site) == 0 || uploaded_.count(site) > 0 || secure_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("site ", site, " has no masked upload in flight for round ", number_));
  }
  if (stage_ != Stage::kTrain) {
    return absl::DeadlineExceededError(absl::StrCat(
        "round ", number_, " closed its masked-input stage before the upload finished"));
  }
  if (absl::Status s = secure_->OnMaskedInput(site, masked); !s.ok()) return s;
  RecordContribution(site, a);
  return absl::OkStatus();
}

void Round::RecordContribution(const std::string& site, const UploadAnnouncement& a) {
  uploaded_.insert(site);
  // A site whose session broke while its upload stream went on is counted once: as a
  // contributor (uploaded_ and failed_ stay disjoint).
  failed_.erase(site);
  train_losses_[site] = {a.weight, a.train_loss};
  if (a.dp_steps > 0) dp_reports_[site] = SiteDpReport{a.dp_steps, a.dp_sample_rate};
  examples_ += static_cast<uint64_t>(a.weight);
}

void Round::AbandonUpload(const std::string& site) {
  absl::MutexLock lock(&mu_);
  in_flight_.erase(site);
}

void Round::ReportFailure(const std::string& site, const std::string& reason) {
  if (secure_ != nullptr) secure_->DropSite(site, reason);
  absl::MutexLock lock(&mu_);
  if (!IsParticipant(site) || uploaded_.count(site) > 0) return;
  failed_.emplace(site, reason);
}

void Round::ReportSessionLost(const std::string& site) {
  if (secure_ != nullptr) secure_->DropSite(site, "session lost");
  // A site that left cannot evaluate: stop waiting for it.
  absl::MutexLock lock(&mu_);
  if (stage_ == Stage::kEvaluate && evaluations_.count(site) == 0) evaluators_.erase(site);
}

bool Round::AllUploadsAnswered() const {
  return cancelled_ || uploaded_.size() + failed_.size() >= participants_.size();
}

bool Round::WaitForUploads(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(absl::Condition(this, &Round::AllUploadsAnswered), deadline) &&
         !cancelled_;
}

std::vector<std::string> Round::CloseTraining() {
  absl::MutexLock lock(&mu_);
  stage_ = Stage::kEvaluate;
  for (auto& [site, cancel] : in_flight_) {
    if (cancel) cancel();
  }
  return std::vector<std::string>(uploaded_.begin(), uploaded_.end());
}

void Round::StartEvaluation(std::shared_ptr<const ModelBlob> candidate,
                            std::vector<std::string> evaluators) {
  absl::MutexLock lock(&mu_);
  candidate_ = std::move(candidate);
  evaluators_ = std::set<std::string>(evaluators.begin(), evaluators.end());
}

absl::Status Round::ReportEvaluation(const std::string& site, const std::string& model_id,
                                     const EvaluationResult& result) {
  absl::MutexLock lock(&mu_);
  if (stage_ != Stage::kEvaluate || !candidate_ || model_id != candidate_->id) {
    return absl::FailedPreconditionError(
        absl::StrCat("no evaluation of model '", model_id, "' is open in round ", number_));
  }
  if (evaluators_.count(site) == 0) {
    return absl::PermissionDeniedError(absl::StrCat("site ", site, " was not asked to evaluate"));
  }
  if (evaluations_.count(site) > 0) {
    return absl::AlreadyExistsError(absl::StrCat("site ", site, " already reported"));
  }
  if (result.correct > result.examples || !std::isfinite(result.loss) || result.loss < 0) {
    return absl::InvalidArgumentError("evaluation report is inconsistent");
  }
  if (result.binary.has_value()) {
    const data::BinaryMetrics& b = *result.binary;
    if (b.examples() != result.examples || b.true_positives + b.true_negatives != result.correct ||
        (b.auc.has_value() && !(*b.auc >= 0 && *b.auc <= 1))) {
      return absl::InvalidArgumentError(
          "binary evaluation report is inconsistent (confusion counts must add up to the "
          "examples and the correct ones, AUC must be in [0, 1])");
    }
  }
  evaluations_.emplace(site, result);
  return absl::OkStatus();
}

bool Round::AllEvaluationsAnswered() const {
  return cancelled_ || evaluations_.size() >= evaluators_.size();
}

bool Round::WaitForEvaluations(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(absl::Condition(this, &Round::AllEvaluationsAnswered),
                               deadline) &&
         !cancelled_;
}

std::string Round::SiteProgress(const std::string& site) const {
  if (!IsParticipant(site)) return "";
  absl::MutexLock lock(&mu_);
  if (failed_.count(site) > 0) return "dropped";
  if (evaluations_.count(site) > 0) return "evaluated";
  if (evaluators_.count(site) > 0) return "evaluating";
  if (uploaded_.count(site) > 0) return "uploaded";
  if (in_flight_.count(site) > 0) return "uploading";
  return stage_ == Stage::kTrain ? "training" : "dropped";
}

void Round::Cancel() {
  if (secure_ != nullptr) secure_->Cancel();
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
}

void Round::Close() {
  absl::MutexLock lock(&mu_);
  stage_ = Stage::kClosed;
}

std::vector<float> Round::TakeAggregatedDelta() {
  absl::MutexLock lock(&mu_);
  std::vector<float> delta = aggregator_->Delta();
  aggregator_->Release();
  return delta;
}

double Round::weighted_train_loss() const {
  absl::MutexLock lock(&mu_);
  // In site order, not upload order, so that the figure repeats bit for bit.
  double loss_sum = 0, weight_sum = 0;
  for (const auto& [site, weight_and_loss] : train_losses_) {
    loss_sum += weight_and_loss.first * weight_and_loss.second;
    weight_sum += weight_and_loss.first;
  }
  return weight_sum > 0 ? loss_sum / weight_sum : 0;
}

uint64_t Round::train_examples() const {
  absl::MutexLock lock(&mu_);
  return examples_;
}

std::map<std::string, EvaluationResult> Round::evaluations() const {
  absl::MutexLock lock(&mu_);
  return evaluations_;
}

std::map<std::string, SiteDpReport> Round::dp_reports() const {
  absl::MutexLock lock(&mu_);
  return dp_reports_;
}

std::map<std::string, std::string> Round::failures() const {
  absl::MutexLock lock(&mu_);
  return failed_;
}

}  // namespace cohort::server
