// Unit tests for server/round, server/aggregator and server/model_blob: the state of one
// open round (uploads, evaluation, waits) and the FedAvg arithmetic.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/crypto/sha256.h"
#include "common/tensor/layout.h"
#include "server/aggregator.h"
#include "server/model_blob.h"
#include "server/round.h"

namespace cohort::server {
namespace {

constexpr uint64_t kRound = 4;
const std::vector<float> kGlobal = {1.0f, 2.0f, -3.0f, 0.5f};

std::shared_ptr<const ModelBlob> Global() { return ModelBlob::Make("model-3", kGlobal); }

UploadAnnouncement Announce(double weight = 10, double train_loss = 0.5) {
  UploadAnnouncement a;
  a.round = kRound;
  a.base_model_id = "model-3";
  a.num_values = kGlobal.size();
  a.weight = weight;
  a.train_loss = train_loss;
  a.train_examples = static_cast<uint64_t>(weight);
  return a;
}

// A round with participants a, b and c serving the global model "model-3".
std::unique_ptr<Round> MakeRound(std::vector<std::string> participants = {"a", "b", "c"}) {
  return std::make_unique<Round>(kRound, std::move(participants), Global());
}

void Upload(Round& round, const std::string& site, const std::vector<float>& delta,
            double weight, double loss = 0.5) {
  UploadAnnouncement a = Announce(weight, loss);
  REQUIRE(round.BeginUpload(site, a).ok());
  REQUIRE(round.CompleteUpload(site, a, delta).ok());
}

void RequireCode(const absl::Status& status, absl::StatusCode code,
                 const std::vector<std::string>& fragments = {}) {
  INFO("status: " << status.ToString());
  REQUIRE(status.code() == code);
  for (const std::string& fragment : fragments) {
    INFO("expected fragment: " << fragment);
    CHECK(absl::StrContains(status.message(), fragment));
  }
}

// --- ModelBlob and FedAvgAggregator -----------------------------------------------------

TEST_CASE("ModelBlob::Make keeps id and values and hashes the wire bytes", "[server]") {
  std::shared_ptr<const ModelBlob> blob = ModelBlob::Make("m", kGlobal);
  CHECK(blob->id == "m");
  CHECK(blob->values == kGlobal);
  CHECK(blob->sha256.size() == 32);
  CHECK(blob->sha256 == crypto::Sha256(tensor::AsBytes(kGlobal)));
  CHECK(ModelBlob::Make("other", {1.0f})->sha256 != blob->sha256);
}

TEST_CASE("FedAvgAggregator computes base + sum(w*d)/sum(w) exactly", "[server]") {
  FedAvgAggregator aggregator(3);
  CHECK(aggregator.num_values() == 3);
  CHECK(aggregator.count() == 0);
  REQUIRE(aggregator.Add(1.0, {1.0f, 2.0f, -4.0f}).ok());
  REQUIRE(aggregator.Add(3.0, {5.0f, -2.0f, 0.0f}).ok());
  CHECK(aggregator.count() == 2);
  CHECK(aggregator.total_weight() == 4.0);
  // sum(w*d) = {1 + 15, 2 - 6, -4 + 0} = {16, -4, -4}; / 4 = {4, -1, -1}.
  std::vector<float> out = aggregator.Apply({10.0f, 20.0f, 0.5f});
  CHECK(out == std::vector<float>{14.0f, 19.0f, -0.5f});
}

TEST_CASE("FedAvgAggregator with one update applies that delta exactly", "[server]") {
  FedAvgAggregator aggregator(2);
  REQUIRE(aggregator.Add(123.0, {0.25f, -0.75f}).ok());
  CHECK(aggregator.Apply({1.0f, 1.0f}) == std::vector<float>{1.25f, 0.25f});
}

TEST_CASE("FedAvgAggregator weights are relative: scaling all weights changes nothing",
          "[server]") {
  FedAvgAggregator small(2);
  REQUIRE(small.Add(1, {2.0f, 4.0f}).ok());
  REQUIRE(small.Add(2, {8.0f, -2.0f}).ok());
  FedAvgAggregator large(2);
  REQUIRE(large.Add(1000, {2.0f, 4.0f}).ok());
  REQUIRE(large.Add(2000, {8.0f, -2.0f}).ok());
  // (2 + 16) / 3 = 6, (4 - 4) / 3 = 0.
  CHECK(small.Apply({0.0f, 0.0f}) == std::vector<float>{6.0f, 0.0f});
  CHECK(large.Apply({0.0f, 0.0f}) == std::vector<float>{6.0f, 0.0f});
}

// --- Round: uploads ---------------------------------------------------------------------

TEST_CASE("Round folds completed uploads into a weighted average", "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  Upload(*round, "a", {1.0f, 1.0f, 1.0f, 1.0f}, 1, 1.0);
  Upload(*round, "b", {5.0f, -3.0f, 1.0f, 0.0f}, 3, 2.0);
  std::vector<std::string> contributors = round->CloseTraining();
  CHECK(contributors == std::vector<std::string>{"a", "b"});
  CHECK(round->aggregate().count() == 2);
  CHECK(round->aggregate().total_weight() == 4.0);
  // delta = {(1 + 15)/4, (1 - 9)/4, (1 + 3)/4, (1 + 0)/4} = {4, -2, 1, 0.25}.
  CHECK(round->aggregate().Apply(kGlobal) == std::vector<float>{5.0f, 0.0f, -2.0f, 0.75f});
  CHECK(round->weighted_train_loss() == Approx((1 * 1.0 + 3 * 2.0) / 4));
  CHECK(round->train_examples() == 4);
}

TEST_CASE("Round refuses an upload for another round number", "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  UploadAnnouncement a = Announce();
  a.round = kRound - 1;
  RequireCode(round->BeginUpload("a", a), absl::StatusCode::kFailedPrecondition,
              {"round 3 is not open", "open round is 4"});
  a.round = kRound + 1;
  RequireCode(round->BeginUpload("a", a), absl::StatusCode::kFailedPrecondition);
  // The refusals left no in-flight mark: a correct upload still goes through.
  CHECK(round->BeginUpload("a", Announce()).ok());
}

TEST_CASE("Round refuses an upload from a site that was not selected", "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  RequireCode(round->BeginUpload("z", Announce()), absl::StatusCode::kPermissionDenied,
              {"site z", "not selected"});
}

TEST_CASE("Round refuses an update trained from another base model", "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  UploadAnnouncement a = Announce();
  a.base_model_id = "model-2";
  absl::Status status = round->BeginUpload("a", a);
  REQUIRE_FALSE(status.ok());
  CHECK(status.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(status.message(), "model-2"));
  CHECK(absl::StrContains(status.message(), "model-3"));
}

TEST_CASE("Round refuses an update with the wrong number of values", "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  const uint64_t n = GENERATE(uint64_t{0}, uint64_t{3}, uint64_t{5}, uint64_t{1} << 40);
  UploadAnnouncement a = Announce();
  a.num_values = n;
  INFO("num_values " << n);
  RequireCode(round->BeginUpload("a", a), absl::StatusCode::kInvalidArgument,
              {"the model has 4"});
}

TEST_CASE("Round refuses a weight that is not a positive finite count", "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  const double weight = GENERATE(0.0, -1.0, std::numeric_limits<double>::quiet_NaN(),
                                 std::numeric_limits<double>::infinity(),
                                 -std::numeric_limits<double>::infinity(), 1e13);
  INFO("weight " << weight);
  RequireCode(round->BeginUpload("a", Announce(weight)), absl::StatusCode::kInvalidArgument,
              {"weight"});
}

TEST_CASE("Round refuses a non-finite training loss", "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  const double loss = GENERATE(std::numeric_limits<double>::quiet_NaN(),
                               std::numeric_limits<double>::infinity(),
                               -std::numeric_limits<double>::infinity());
  INFO("loss " << loss);
  RequireCode(round->BeginUpload("a", Announce(10, loss)), absl::StatusCode::kInvalidArgument,
              {"loss"});
}

TEST_CASE("Round refuses a second upload after a completed one", "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  Upload(*round, "a", {1.0f, 1.0f, 1.0f, 1.0f}, 2);
  RequireCode(round->BeginUpload("a", Announce()), absl::StatusCode::kAlreadyExists,
              {"already uploaded"});
  CHECK(round->aggregate().count() == 1);
}

TEST_CASE("Round refuses a concurrent second upload while one is in flight", "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  REQUIRE(round->BeginUpload("a", Announce()).ok());
  RequireCode(round->BeginUpload("a", Announce()), absl::StatusCode::kAlreadyExists,
              {"in flight"});
  // Another site is not affected.
  CHECK(round->BeginUpload("b", Announce()).ok());
}

TEST_CASE("Round refuses uploads after CloseTraining", "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  round->CloseTraining();
  RequireCode(round->BeginUpload("a", Announce()), absl::StatusCode::kFailedPrecondition,
              {"no longer accepts updates"});
}

TEST_CASE("Round refuses an upload from a site that reported failure", "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  round->ReportFailure("a", "out of memory");
  RequireCode(round->BeginUpload("a", Announce()), absl::StatusCode::kFailedPrecondition,
              {"dropped"});
  CHECK(round->failures().at("a") == "out of memory");
}

TEST_CASE("Round AbandonUpload lets the site retry and leaves the aggregate untouched",
          "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  Upload(*round, "b", {2.0f, 2.0f, 2.0f, 2.0f}, 1);
  REQUIRE(round->BeginUpload("a", Announce(1)).ok());
  round->AbandonUpload("a");
  CHECK(round->aggregate().count() == 1);
  CHECK(round->aggregate().total_weight() == 1.0);
  // The retry is accepted.
  UploadAnnouncement retry = Announce(1);
  REQUIRE(round->BeginUpload("a", retry).ok());
  REQUIRE(round->CompleteUpload("a", retry, {4.0f, 0.0f, 0.0f, 0.0f}).ok());
  round->CloseTraining();
  CHECK(round->aggregate().count() == 2);
  // Only b's and the retried update count: (2 + 4) / 2 = 3, (2 + 0) / 2 = 1.
  CHECK(round->aggregate().Apply(kGlobal) == std::vector<float>{4.0f, 3.0f, -2.0f, 1.5f});
}

TEST_CASE("Round CompleteUpload after CloseTraining is refused and leaves the aggregate",
          "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  Upload(*round, "b", {2.0f, 2.0f, 2.0f, 2.0f}, 1);
  UploadAnnouncement late = Announce(5);
  REQUIRE(round->BeginUpload("a", late).ok());
  std::vector<std::string> contributors = round->CloseTraining();
  CHECK(contributors == std::vector<std::string>{"b"});
  absl::Status status = round->CompleteUpload("a", late, {100.0f, 100.0f, 100.0f, 100.0f});
  REQUIRE_FALSE(status.ok());
  CHECK(absl::StrContains(status.message(), "closed its training stage"));
  CHECK(round->aggregate().count() == 1);
  CHECK(round->aggregate().total_weight() == 1.0);
  CHECK(round->aggregate().Apply(kGlobal) == std::vector<float>{3.0f, 4.0f, -1.0f, 2.5f});
  CHECK(round->train_examples() == 1);
}

TEST_CASE("Round CompleteUpload refuses a delta of the wrong size", "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  UploadAnnouncement a = Announce();
  REQUIRE(round->BeginUpload("a", a).ok());
  RequireCode(round->CompleteUpload("a", a, {1.0f, 2.0f}), absl::StatusCode::kInvalidArgument);
  CHECK(round->aggregate().count() == 0);
  // The in-flight mark is cleared: the site may try again.
  CHECK(round->BeginUpload("a", a).ok());
}

// --- Round: waiting ---------------------------------------------------------------------

TEST_CASE("Round WaitForUploads is true once every participant uploaded or failed",
          "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  Upload(*round, "a", {0, 0, 0, 0}, 1);
  round->ReportFailure("b", "no data");
  Upload(*round, "c", {0, 0, 0, 0}, 1);
  // Everyone answered: no need to wait for the (far) deadline.
  CHECK(round->WaitForUploads(absl::Now() + absl::Hours(1)));
}

TEST_CASE("Round WaitForUploads is false at the deadline while a participant is missing",
          "[server]") {
  std::unique_ptr<Round> round = MakeRound();
  Upload(*round, "a", {0, 0, 0, 0}, 1);
  round->ReportFailure("b", "no data");
  // c neither uploaded nor failed; an in-flight upload is not an answer.
  REQUIRE(round->BeginUpload("c", Announce()).ok());
  // A non-participant's failure does not count either.
  round->ReportFailure("z", "not selected anyway");
  CHECK_FALSE(round->WaitForUploads(absl::Now() + absl::Milliseconds(50)));
  CHECK(round->failures().count("z") == 0);
}

TEST_CASE("Round WaitForUploads is false after Cancel", "[server]") {
  std::unique_ptr<Round> round = MakeRound({"a"});
  SECTION("cancelled with a participant missing") {
    round->Cancel();
    CHECK_FALSE(round->WaitForUploads(absl::Now() + absl::Hours(1)));
  }
  SECTION("cancelled even though everyone answered") {
    Upload(*round, "a", {0, 0, 0, 0}, 1);
    round->Cancel();
    CHECK_FALSE(round->WaitForUploads(absl::Now() + absl::Hours(1)));
  }
}

TEST_CASE("Round ReportFailure after a completed upload keeps the site a contributor",
          "[server]") {
  std::unique_ptr<Round> round = MakeRound({"a", "b"});
  Upload(*round, "a", {0, 0, 0, 0}, 1);
  round->ReportFailure("a", "late failure");
  CHECK(round->failures().empty());
  // b has not answered: a's upload must not count twice.
  CHECK_FALSE(round->WaitForUploads(absl::Now() + absl::Milliseconds(50)));
  CHECK(round->CloseTraining() == std::vector<std::string>{"a"});
}

// Regression (fixed; found while writing these tests) (server/round.cc, Round::ReportFailure / Round::CompleteUpload /
// Round::AllUploadsAnswered): a site that reports failure while its upload is in flight is
// recorded in failed_, and the upload then still completes into uploaded_, so the site is
// counted twice by `uploaded_.size() + failed_.size() >= participants_.size()`.
// WaitForUploads then returns true although another participant never answered.
TEST_CASE("Round counts a site once when it fails while its upload is in flight", "[server]") {
  std::unique_ptr<Round> round = MakeRound({"a", "b"});
  UploadAnnouncement a = Announce(1);
  REQUIRE(round->BeginUpload("a", a).ok());
  round->ReportFailure("a", "session lost");
  (void)round->CompleteUpload("a", a, {0, 0, 0, 0});
  // b neither uploaded nor failed.
  CHECK_FALSE(round->WaitForUploads(absl::Now() + absl::Milliseconds(50)));
}

// --- Round: model downloads -------------------------------------------------------------

TEST_CASE("Round serves the global model to participants in the training stage", "[server]") {
  std::shared_ptr<const ModelBlob> global = Global();
  Round round(kRound, {"a", "b"}, global);
  absl::StatusOr<std::shared_ptr<const ModelBlob>> model = round.ModelFor("a", "model-3");
  REQUIRE(model.ok());
  CHECK(model->get() == global.get());  // the single shared copy
  CHECK((*model)->values == kGlobal);
}

TEST_CASE("Round refuses the global model to a site that was not selected", "[server]") {
  std::unique_ptr<Round> round = MakeRound({"a", "b"});
  RequireCode(round->ModelFor("z", "model-3").status(), absl::StatusCode::kPermissionDenied,
              {"site z"});
}

TEST_CASE("Round refuses an unknown model id", "[server]") {
  std::unique_ptr<Round> round = MakeRound({"a", "b"});
  RequireCode(round->ModelFor("a", "model-2").status(), absl::StatusCode::kFailedPrecondition,
              {"model-2"});
}

TEST_CASE("Round serves the candidate only in the evaluation stage and only to evaluators",
          "[server]") {
  std::unique_ptr<Round> round = MakeRound({"a", "b", "c"});
  std::shared_ptr<const ModelBlob> candidate = ModelBlob::Make("model-4", {9, 9, 9, 9});

  // Training stage: the candidate does not exist yet.
  RequireCode(round->ModelFor("a", "model-4").status(), absl::StatusCode::kFailedPrecondition);

  Upload(*round, "a", {0, 0, 0, 0}, 1);
  Upload(*round, "b", {0, 0, 0, 0}, 1);
  round->CloseTraining();
  round->StartEvaluation(candidate, {"a", "b"});

  absl::StatusOr<std::shared_ptr<const ModelBlob>> served = round->ModelFor("a", "model-4");
  REQUIRE(served.ok());
  CHECK(served->get() == candidate.get());
  CHECK(round->ModelFor("b", "model-4").ok());
  // c is a participant but was not asked to evaluate.
  RequireCode(round->ModelFor("c", "model-4").status(), absl::StatusCode::kPermissionDenied,
              {"not asked to evaluate"});
  RequireCode(round->ModelFor("z", "model-4").status(), absl::StatusCode::kPermissionDenied);
  // The global model is no longer served once training closed.
  RequireCode(round->ModelFor("a", "model-3").status(), absl::StatusCode::kFailedPrecondition);

  round->Close();
  RequireCode(round->ModelFor("a", "model-4").status(), absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("Round does not serve a candidate started before training closed", "[server]") {
  std::unique_ptr<Round> round = MakeRound({"a"});
  round->StartEvaluation(ModelBlob::Make("model-4", {1, 1, 1, 1}), {"a"});
  RequireCode(round->ModelFor("a", "model-4").status(), absl::StatusCode::kFailedPrecondition);
  RequireCode(round->ReportEvaluation("a", "model-4", {10, 0.1, 5}),
              absl::StatusCode::kFailedPrecondition);
}

// --- Round: evaluation ------------------------------------------------------------------

std::unique_ptr<Round> EvaluatingRound() {
  std::unique_ptr<Round> round = MakeRound({"a", "b", "c"});
  Upload(*round, "a", {0, 0, 0, 0}, 1);
  Upload(*round, "b", {0, 0, 0, 0}, 1);
  round->CloseTraining();
  round->StartEvaluation(ModelBlob::Make("model-4", {1, 2, 3, 4}), {"a", "b"});
  return round;
}

TEST_CASE("Round records evaluations and WaitForEvaluations ends when all reported",
          "[server]") {
  std::unique_ptr<Round> round = EvaluatingRound();
  REQUIRE(round->ReportEvaluation("a", "model-4", {100, 0.25, 90}).ok());
  CHECK_FALSE(round->WaitForEvaluations(absl::Now() + absl::Milliseconds(50)));
  REQUIRE(round->ReportEvaluation("b", "model-4", {50, 0.5, 50}).ok());
  CHECK(round->WaitForEvaluations(absl::Now() + absl::Hours(1)));
  std::map<std::string, EvaluationResult> evaluations = round->evaluations();
  REQUIRE(evaluations.size() == 2);
  CHECK(evaluations.at("a").examples == 100);
  CHECK(evaluations.at("a").loss == 0.25);
  CHECK(evaluations.at("a").correct == 90);
  CHECK(evaluations.at("b").correct == 50);
}

TEST_CASE("Round refuses a duplicate evaluation report", "[server]") {
  std::unique_ptr<Round> round = EvaluatingRound();
  REQUIRE(round->ReportEvaluation("a", "model-4", {100, 0.25, 90}).ok());
  RequireCode(round->ReportEvaluation("a", "model-4", {100, 0.1, 99}),
              absl::StatusCode::kAlreadyExists, {"already reported"});
  CHECK(round->evaluations().at("a").correct == 90);  // the first report stands
}

TEST_CASE("Round refuses an evaluation with more correct answers than examples", "[server]") {
  std::unique_ptr<Round> round = EvaluatingRound();
  RequireCode(round->ReportEvaluation("a", "model-4", {10, 0.25, 11}),
              absl::StatusCode::kInvalidArgument);
  CHECK(round->evaluations().empty());
  // correct == examples is fine.
  CHECK(round->ReportEvaluation("a", "model-4", {10, 0.25, 10}).ok());
}

TEST_CASE("Round refuses binary evaluation counts that do not add up, and an AUC outside 0..1",
          "[server]") {
  std::unique_ptr<Round> round = EvaluatingRound();
  data::BinaryMetrics binary;
  binary.true_positives = 4;
  binary.true_negatives = 4;
  binary.false_positives = 1;
  binary.false_negatives = 1;
  binary.auc = 0.8;
  EvaluationResult wrong_total{11, 0.25, 8, binary};  // 10 counted, 11 examples
  RequireCode(round->ReportEvaluation("a", "model-4", wrong_total),
              absl::StatusCode::kInvalidArgument, {"confusion counts"});
  EvaluationResult wrong_correct{10, 0.25, 7, binary};  // TP + TN = 8
  RequireCode(round->ReportEvaluation("a", "model-4", wrong_correct),
              absl::StatusCode::kInvalidArgument);
  binary.auc = 1.5;
  RequireCode(round->ReportEvaluation("a", "model-4", EvaluationResult{10, 0.25, 8, binary}),
              absl::StatusCode::kInvalidArgument);
  CHECK(round->evaluations().empty());
  binary.auc = 0.8;
  REQUIRE(round->ReportEvaluation("a", "model-4", EvaluationResult{10, 0.25, 8, binary}).ok());
  CHECK(round->evaluations().at("a").binary->auc == 0.8);
}

TEST_CASE("Round refuses an evaluation with a negative or non-finite loss", "[server]") {
  std::unique_ptr<Round> round = EvaluatingRound();
  const double loss = GENERATE(-0.1, std::numeric_limits<double>::quiet_NaN(),
                               std::numeric_limits<double>::infinity());
  INFO("loss " << loss);
  RequireCode(round->ReportEvaluation("a", "model-4", {10, loss, 5}),
              absl::StatusCode::kInvalidArgument);
}

TEST_CASE("Round refuses an evaluation of an unknown model id", "[server]") {
  std::unique_ptr<Round> round = EvaluatingRound();
  RequireCode(round->ReportEvaluation("a", "model-3", {10, 0.25, 5}),
              absl::StatusCode::kFailedPrecondition, {"model-3"});
  RequireCode(round->ReportEvaluation("a", "model-9", {10, 0.25, 5}),
              absl::StatusCode::kFailedPrecondition);
  CHECK(round->evaluations().empty());
}

TEST_CASE("Round refuses an evaluation from a site not asked to evaluate", "[server]") {
  std::unique_ptr<Round> round = EvaluatingRound();
  RequireCode(round->ReportEvaluation("c", "model-4", {10, 0.25, 5}),
              absl::StatusCode::kPermissionDenied);
  CHECK(round->evaluations().empty());
}

TEST_CASE("Round WaitForEvaluations is false after Cancel", "[server]") {
  std::unique_ptr<Round> round = EvaluatingRound();
  REQUIRE(round->ReportEvaluation("a", "model-4", {10, 0.25, 5}).ok());
  REQUIRE(round->ReportEvaluation("b", "model-4", {10, 0.25, 5}).ok());
  round->Cancel();
  CHECK_FALSE(round->WaitForEvaluations(absl::Now() + absl::Hours(1)));
}

}  // namespace
TEST_CASE("CloseTraining cancels the streams of uploads still in flight, and only those",
          "[server]") {
  std::unique_ptr<Round> round = MakeRound({"a", "b"});
  int cancelled_a = 0;
  int cancelled_b = 0;
  REQUIRE(round->BeginUpload("a", Announce(), [&] { ++cancelled_a; }).ok());
  REQUIRE(round->BeginUpload("b", Announce(), [&] { ++cancelled_b; }).ok());
  REQUIRE(round->CompleteUpload("b", Announce(), std::vector<float>(4, 1.0f)).ok());
  std::vector<std::string> contributors = round->CloseTraining();
  CHECK(contributors == std::vector<std::string>{"b"});
  CHECK(cancelled_a == 1);
  CHECK(cancelled_b == 0);
  // The cancelled stream then ends as an abandoned upload; the aggregate holds b only.
  round->AbandonUpload("a");
  CHECK(round->aggregate().count() == 1);
}

}  // namespace cohort::server
