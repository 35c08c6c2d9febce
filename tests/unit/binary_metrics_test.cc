// Federated evaluation of two-class models: confusion counts, AUC (rank-sum with ties), and the
// pooled figures of a round.
#include <cmath>
#include <vector>

#include <catch2/catch.hpp>

#include "common/data/binary_metrics.h"
#include "common/state/state_store.h"

namespace cohort {

TEST_CASE("Binary metrics count the confusion matrix at the model's decisions", "[eval]") {
  // scores for P(y = 1), labels, and the model's decisions (score >= 0.5 here).
  const std::vector<float> scores = {0.9f, 0.8f, 0.3f, 0.6f, 0.2f, 0.1f};
  const std::vector<int64_t> labels = {1, 1, 1, 0, 0, 0};
  const std::vector<bool> decisions = {true, true, false, true, false, false};
  absl::StatusOr<data::BinaryMetrics> m = data::ComputeBinaryMetrics(scores, labels, decisions);
  REQUIRE(m.ok());
  CHECK(m->true_positives == 2);
  CHECK(m->false_negatives == 1);
  CHECK(m->false_positives == 1);
  CHECK(m->true_negatives == 2);
  CHECK(m->precision() == Approx(2.0 / 3));
  CHECK(m->recall() == Approx(2.0 / 3));
  // Pairs (positive, negative) ordered correctly: 0.9 and 0.8 beat all three negatives (6),
  // 0.3 beats 0.2 and 0.1 (2): 8 of 9.
  REQUIRE(m->auc.has_value());
  CHECK(*m->auc == Approx(8.0 / 9));
}

TEST_CASE("AUC counts tied scores as one half and is undefined with one class", "[eval]") {
  const std::vector<float> tied = {0.5f, 0.5f, 0.5f, 0.5f};
  const std::vector<int64_t> labels = {1, 0, 1, 0};
  absl::StatusOr<data::BinaryMetrics> m =
      data::ComputeBinaryMetrics(tied, labels, {false, false, false, false});
  REQUIRE(m.ok());
  CHECK(*m->auc == Approx(0.5));
  CHECK_FALSE(m->precision().has_value());  // nothing predicted positive
  CHECK(m->recall() == Approx(0.0));

  absl::StatusOr<data::BinaryMetrics> one_class =
      data::ComputeBinaryMetrics(std::vector<float>{0.1f, 0.7f}, std::vector<int64_t>{1, 1},
                                 {false, true});
  REQUIRE(one_class.ok());
  CHECK_FALSE(one_class->auc.has_value());
  CHECK(one_class->recall() == Approx(0.5));

  // Perfect and reversed rankings.
  const std::vector<int64_t> two = {0, 1};
  CHECK(*data::ComputeBinaryMetrics(std::vector<float>{0.2f, 0.8f}, two, {false, true})->auc ==
        1.0);
  CHECK(*data::ComputeBinaryMetrics(std::vector<float>{0.8f, 0.2f}, two, {true, false})->auc ==
        0.0);
}

TEST_CASE("Binary metrics refuse mismatched sizes, labels other than 0 and 1, and NaN scores",
          "[eval]") {
  CHECK(data::ComputeBinaryMetrics(std::vector<float>{0.1f}, std::vector<int64_t>{0, 1},
                                   {false})
            .status()
            .code() == absl::StatusCode::kInvalidArgument);
  CHECK(data::ComputeBinaryMetrics(std::vector<float>{0.1f}, std::vector<int64_t>{2}, {false})
            .status()
            .code() == absl::StatusCode::kInvalidArgument);
  CHECK(data::ComputeBinaryMetrics(std::vector<float>{NAN}, std::vector<int64_t>{1}, {false})
            .status()
            .code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("A round pools precision and recall from the summed counts and weights AUC by "
          "examples",
          "[eval]") {
  state::SiteEvaluation a;
  a.examples = 10;
  a.binary = true;
  a.true_positives = 4;
  a.false_positives = 1;
  a.true_negatives = 4;
  a.false_negatives = 1;
  a.auc = 0.9;
  state::SiteEvaluation b;
  b.examples = 30;
  b.binary = true;
  b.true_positives = 10;
  b.false_positives = 5;
  b.true_negatives = 10;
  b.false_negatives = 5;
  b.auc = 0.7;
  state::SiteEvaluation multiclass;  // not binary: ignored by the pooled binary figures
  multiclass.examples = 100;
  const state::PooledBinaryMetrics pooled =
      state::PoolBinaryMetrics({{"a", a}, {"b", b}, {"c", multiclass}});
  CHECK(*pooled.precision == Approx(14.0 / 20));
  CHECK(*pooled.recall == Approx(14.0 / 20));
  CHECK(*pooled.auc == Approx((0.9 * 10 + 0.7 * 30) / 40));
  const state::PooledBinaryMetrics none = state::PoolBinaryMetrics({{"c", multiclass}});
  CHECK_FALSE(none.precision.has_value());
  CHECK_FALSE(none.auc.has_value());
}

}  // namespace cohort
