#ifndef COHORT_SERVER_ROUND_H_
#define COHORT_SERVER_ROUND_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/data/binary_metrics.h"
#include "common/secagg/mod_vector.h"
#include "server/aggregator.h"
#include "server/model_blob.h"
#include "server/secure_aggregation.h"

namespace cohort::server {

// What a site announces at the start of its upload.
struct UploadAnnouncement {
  uint64_t round = 0;
  std::string base_model_id;
  uint64_t num_values = 0;
  double weight = 0;
  double train_loss = 0;
  uint64_t train_examples = 0;
  // DP-SGD the site reports having run (0 steps without DP).
  int64_t dp_steps = 0;
  double dp_sample_rate = 0;
  // Non-zero: a masked input for secure aggregation, in words modulo 2^this.
  uint32_t masked_modulus_bits = 0;
};

// What a contributing site reported about its DP-SGD in a round.
struct SiteDpReport {
  int64_t steps = 0;
  double sample_rate = 0;
};

// A site's evaluation of the round's candidate model.
struct EvaluationResult {
  uint64_t examples = 0;
  double loss = 0;
  uint64_t correct = 0;
  std::optional<data::BinaryMetrics> binary = std::nullopt;  // two-class models
};

// The state of one open round, shared by the round loop and the RPC handlers.
//
// Invariants: a site's update enters the aggregate at most once, and only whole: an upload
// is staged by the caller and folded in by CompleteUpload after every chunk was validated;
// a failed or abandoned upload never touches the aggregate. After CloseTraining() nothing
// more is folded in, so late uploads are refused rather than racing the aggregation.
class Round {
 public:
  enum class Stage { kTrain, kEvaluate, kClosed };

  // `secure` is set when the round's updates go through secure aggregation: then only
  // masked inputs are accepted (CompleteMaskedUpload) and the aggregate is the secure sum.
  // `aggregator` combines plain uploads (null: weighted FedAvg).
  Round(uint64_t number, std::vector<std::string> participants,
        std::shared_ptr<const ModelBlob> global,
        std::shared_ptr<SecureAggregation> secure = nullptr,
        std::unique_ptr<Aggregator> aggregator = nullptr);

  uint64_t number() const { return number_; }
  SecureAggregation* secure() const { return secure_.get(); }
  const std::vector<std::string>& participants() const { return participants_; }

  // The model a participant may download under `model_id` in the current stage.
  absl::StatusOr<std::shared_ptr<const ModelBlob>> ModelFor(const std::string& site,
                                                            const std::string& model_id);

  // Checks an announced upload and marks it in flight. FailedPrecondition when the round or
  // stage is not open for it, AlreadyExists for a second upload, PermissionDenied for a site
  // not selected, InvalidArgument for a wrong size or weight.
  // `cancel` ends the upload's stream; CloseTraining calls it for uploads still in flight,
  // so a stalled stream cannot hold an upload slot past its stage.
  absl::Status BeginUpload(const std::string& site, const UploadAnnouncement& announcement,
                           std::function<void()> cancel = nullptr);
  // Folds a fully received and validated delta into the aggregate. When the aggregator
  // refuses it (e.g. values out of its range) nothing is folded in and the error is returned.
  absl::Status CompleteUpload(const std::string& site, const UploadAnnouncement& announcement,
                              const std::vector<float>& delta);
  // Adds a fully received masked input to the secure sum (secure rounds).
  absl::Status CompleteMaskedUpload(const std::string& site, const UploadAnnouncement& announcement,
                                    const secagg::ModVector& masked);
  // Forgets an in-flight upload that failed; the site may try again before the deadline.
  void AbandonUpload(const std::string& site);
  // The site reports it cannot do its task this round; it is dropped at once.
  void ReportFailure(const std::string& site, const std::string& reason);
  // The site's session ended. A secure round drops it from the stage under way (its peers'
  // shares still recover what it contributed); a plain round waits for its upload. In the
  // evaluation stage the site is no longer waited for.
  void ReportSessionLost(const std::string& site);

  // Blocks until every participant uploaded or failed, or `deadline`. Returns true when all
  // answered in time.
  bool WaitForUploads(absl::Time deadline);
  // Ends the training stage: refuses further uploads. Returns the sites whose update is in
  // the aggregate.
  std::vector<std::string> CloseTraining();

  // Starts the evaluation stage for `candidate`, asked of `evaluators`.
  void StartEvaluation(std::shared_ptr<const ModelBlob> candidate,
                       std::vector<std::string> evaluators);
  absl::Status ReportEvaluation(const std::string& site, const std::string& model_id,
                                const EvaluationResult& result);
  bool WaitForEvaluations(absl::Time deadline);
  void Close();
  // Wakes every waiter (coordinator shutdown); waits then return false.
  void Cancel();

  // Results, valid after CloseTraining().
  const Aggregator& aggregate() const { return *aggregator_; }
  // The aggregated delta (e.g. the weighted mean of the sites' deltas); frees the
  // aggregator's buffers. Call once, after CloseTraining().
  std::vector<float> TakeAggregatedDelta();
  double weighted_train_loss() const;
  uint64_t train_examples() const;
  std::map<std::string, EvaluationResult> evaluations() const;
  std::map<std::string, std::string> failures() const;
  std::map<std::string, SiteDpReport> dp_reports() const;
  // Where `site` is in this round, for the status page: "" (not selected), "training",
  // "uploading", "uploaded", "dropped", "evaluating" or "evaluated".
  std::string SiteProgress(const std::string& site) const;

 private:
  bool AllUploadsAnswered() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AllEvaluationsAnswered() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool IsParticipant(const std::string& site) const;
  // Counts an accepted update's metrics (weight, loss, DP report).
  void RecordContribution(const std::string& site, const UploadAnnouncement& announcement)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint64_t number_;
  const std::vector<std::string> participants_;
  const std::shared_ptr<const ModelBlob> global_;
  const std::shared_ptr<SecureAggregation> secure_;

  mutable absl::Mutex mu_;
  Stage stage_ ABSL_GUARDED_BY(mu_) = Stage::kTrain;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  const std::unique_ptr<Aggregator> aggregator_ ABSL_PT_GUARDED_BY(mu_);
  std::map<std::string, std::function<void()>> in_flight_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> uploaded_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> failed_ ABSL_GUARDED_BY(mu_);
  // Each contributor's announced weight and training loss.
  std::map<std::string, std::pair<double, double>> train_losses_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, SiteDpReport> dp_reports_ ABSL_GUARDED_BY(mu_);
  uint64_t examples_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const ModelBlob> candidate_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> evaluators_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, EvaluationResult> evaluations_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cohort::server

#endif  // COHORT_SERVER_ROUND_H_
