// Unit tests for server/exact_weighted_sum and the order independence of server/aggregator
// and server/round: the aggregate of a round must not depend on the order in which the
// sites' uploads arrive, bit for bit, so that a seeded run repeats exactly.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/aggregator.h"
#include "server/exact_weighted_sum.h"
#include "server/model_blob.h"
#include "server/round.h"

namespace cohort::server {
namespace {

// The bit patterns of `values`: equal vectors of floats can differ here (-0 and +0).
std::vector<uint32_t> Bits(const std::vector<float>& values) {
  std::vector<uint32_t> bits(values.size());
  std::memcpy(bits.data(), values.data(), values.size() * sizeof(float));
  return bits;
}

// Every order of 0..n-1, the identity first.
std::vector<std::vector<size_t>> AllOrders(size_t n) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::vector<std::vector<size_t>> orders;
  do {
    orders.push_back(order);
  } while (std::next_permutation(order.begin(), order.end()));
  return orders;
}

struct Update {
  double weight;
  std::vector<float> delta;
};

// Four sites' updates whose float32 sums depend on the order of addition: large terms that
// cancel (1e8 against 2 x -5e7), terms far below the ulp of the others, everyday values.
const std::vector<Update> kUpdates = {
    {1, {1e8f, 1.0f, 0.1f, 3.0f}},
    {2, {-5e7f, 0x1p-24f, 0.2f, -1.0f}},
    {3, {1.0f, 0x1p-24f, 0.3f, 0x1p-20f}},
    {4, {0.25f, 0x1p-24f, 0.4f, -0.5f}},
};

// What FedAvgAggregator computed before it summed exactly: a float32 running sum (each term
// w * d in float64, rounded to float32 after every addition) divided by the total weight.
std::vector<float> FloatRunningMean(const std::vector<Update>& updates,
                                    const std::vector<size_t>& order) {
  std::vector<float> sum(updates[0].delta.size(), 0.0f);
  double total_weight = 0;
  for (size_t site : order) {
    const Update& u = updates[site];
    for (size_t i = 0; i < sum.size(); ++i) {
      sum[i] = static_cast<float>(sum[i] + u.weight * static_cast<double>(u.delta[i]));
    }
    total_weight += u.weight;
  }
  for (float& s : sum) s = static_cast<float>(static_cast<double>(s) * (1.0 / total_weight));
  return sum;
}

std::vector<float> FedAvgDelta(const std::vector<Update>& updates,
                               const std::vector<size_t>& order) {
  FedAvgAggregator aggregator(updates[0].delta.size());
  for (size_t site : order) {
    REQUIRE(aggregator.Add(updates[site].weight, updates[site].delta).ok());
  }
  return aggregator.Delta();
}

TEST_CASE("FedAvg of the same updates in every order of arrival is bitwise identical",
          "[server][reproducible]") {
  const std::vector<std::vector<size_t>> orders = AllOrders(kUpdates.size());
  REQUIRE(orders.size() == 24);
  // The check below can fail: a float32 running sum of these updates depends on the order.
  std::set<std::vector<uint32_t>> float_results;
  for (const auto& order : orders) float_results.insert(Bits(FloatRunningMean(kUpdates, order)));
  REQUIRE(float_results.size() > 1);

  std::set<std::vector<uint32_t>> results;
  for (const auto& order : orders) results.insert(Bits(FedAvgDelta(kUpdates, order)));
  CHECK(results.size() == 1);

  // And the one result is the weighted mean to within one float32 ulp (a float32 running sum
  // loses the 1 and the 0.25 of the first value next to 1e8 - 2 x 5e7 entirely).
  const std::vector<float> delta = FedAvgDelta(kUpdates, orders[0]);
  for (size_t i = 0; i < delta.size(); ++i) {
    long double sum = 0, weight = 0;
    for (const Update& u : kUpdates) {
      sum += static_cast<long double>(u.weight) * u.delta[i];
      weight += u.weight;
    }
    const auto mean = static_cast<double>(sum / weight);
    const float ulp = std::nextafter(std::fabs(delta[i]), INFINITY) - std::fabs(delta[i]);
    INFO("value " << i << ": " << delta[i] << " against " << mean);
    CHECK(std::fabs(delta[i] - mean) <= ulp);
  }
}

TEST_CASE("ExactWeightedSum gives the same sum whether or not an order needed 128 bits",
          "[server][reproducible]") {
  // In 2^-40 units a running sum beyond 2^23 (about 8.4e6) needs more than 64 bits: three
  // terms of 3e6 before the -3e6 get there, any other order does not.
  const std::vector<Update> updates = {
      {1, {3e6f, 0.5f}}, {1, {3e6f, 0x1p-30f}}, {1, {3e6f, 3.0f}}, {1, {-3e6f, -1e-3f}}};
  std::set<std::vector<uint32_t>> results;
  std::set<bool> widened;
  for (const auto& order : AllOrders(updates.size())) {
    ExactWeightedSum sum(2);
    for (size_t site : order) REQUIRE(sum.Add(updates[site].weight, updates[site].delta).ok());
    widened.insert(sum.wide());
    results.insert(Bits(sum.Scaled(1.0)));
  }
  CHECK(widened == std::set<bool>{false, true});
  REQUIRE(results.size() == 1);
  ExactWeightedSum sum(2);
  for (const Update& u : updates) REQUIRE(sum.Add(u.weight, u.delta).ok());
  CHECK(sum.Scaled(1.0) ==
        std::vector<float>{6e6f, static_cast<float>(3.5 + 0x1p-30 - 1e-3f)});
}

TEST_CASE("FedAvg stays exact and order independent with sums far beyond 64 bits",
          "[server][reproducible]") {
  // Weights up to the coordinator's limit of 1e12 examples: sums of about 1e15.
  const std::vector<Update> updates = {
      {1e12, {1000.0f, -0.125f, 0x1p-40f}},
      {3e9, {-333.0f, 1e-7f, 2.0f}},
      {1, {0x1p-20f, 1.0f, -7.0f}},
      {7, {0.5f, 5e6f, 1e-3f}},
  };
  std::set<std::vector<uint32_t>> results;
  for (const auto& order : AllOrders(updates.size())) {
    results.insert(Bits(FedAvgDelta(updates, order)));
  }
  CHECK(results.size() == 1);
  ExactWeightedSum sum(3);
  REQUIRE(sum.Add(updates[0].weight, updates[0].delta).ok());
  CHECK(sum.wide());
}

TEST_CASE("ExactWeightedSum rounds each term to the nearest multiple of 2^-40, ties to even",
          "[server]") {
  ExactWeightedSum sum(6);
  // In units of 2^-40: 0.5, 1.5, -0.5, -1.5, 1.25, 1.75.
  REQUIRE(sum.Add(1, {0x1p-41f, 0x1.8p-40f, -0x1p-41f, -0x1.8p-40f, 0x1.4p-40f, 0x1.cp-40f}).ok());
  CHECK(sum.Scaled(1.0) == std::vector<float>{0.0f, 0x1p-39f, 0.0f, -0x1p-39f, 0x1p-40f, 0x1p-39f});
  // Each term is rounded on its own: two halves do not make a unit.
  REQUIRE(sum.Add(1, {0x1p-41f, 0, 0, 0, 0, 0}).ok());
  CHECK(sum.Scaled(1.0)[0] == 0.0f);
}

TEST_CASE("ExactWeightedSum refuses what it cannot hold exactly and is then unchanged",
          "[server]") {
  ExactWeightedSum sum(2);
  REQUIRE(sum.Add(2, {1.5f, -4.0f}).ok());
  // |w x value| must stay below 2^64 (about 1.8e19).
  absl::Status too_large = sum.Add(1e12, {1.0f, 2e7f});
  CHECK(too_large.code() == absl::StatusCode::kInvalidArgument);
  CHECK(sum.Add(1, {NAN, 0.0f}).code() == absl::StatusCode::kInvalidArgument);
  CHECK(sum.Add(1, {INFINITY, 0.0f}).code() == absl::StatusCode::kInvalidArgument);
  CHECK(sum.Add(INFINITY, {0.0f, 0.0f}).code() == absl::StatusCode::kInvalidArgument);
  CHECK(sum.Add(1, {1.0f}).code() == absl::StatusCode::kInvalidArgument);
  CHECK(sum.terms() == 1);
  CHECK_FALSE(sum.wide());
  CHECK(sum.Scaled(0.5) == std::vector<float>{1.5f, -4.0f});
  // Just inside the range: 1e12 x 1.8e7 = 1.8e19 < 2^64.
  REQUIRE(sum.Add(1e12, {0.0f, 1.8e7f}).ok());
  CHECK(sum.terms() == 2);
  CHECK(sum.Scaled(1.0) == std::vector<float>{3.0f, static_cast<float>(1.8e19 - 8.0)});
}

TEST_CASE("FedAvgAggregator refuses an out-of-range delta without counting it", "[server]") {
  FedAvgAggregator aggregator(1);
  REQUIRE(aggregator.Add(4, {2.0f}).ok());
  CHECK(aggregator.Add(1e12, {1e30f}).code() == absl::StatusCode::kInvalidArgument);
  CHECK(aggregator.count() == 1);
  CHECK(aggregator.total_weight() == 4.0);
  CHECK(aggregator.Delta() == std::vector<float>{2.0f});
}

TEST_CASE("Total weight does not depend on the order of the weights", "[server][reproducible]") {
  // In float64, (0.1 + 0.2) + 0.3 != 0.1 + (0.2 + 0.3).
  REQUIRE((0.1 + 0.2) + 0.3 != 0.1 + (0.2 + 0.3));
  std::set<double> totals;
  for (const auto& order : AllOrders(3)) {
    FedAvgAggregator aggregator(1);
    const double weights[] = {0.1, 0.2, 0.3};
    for (size_t site : order) REQUIRE(aggregator.Add(weights[site], {1.0f}).ok());
    totals.insert(aggregator.total_weight());
  }
  CHECK(totals.size() == 1);
}

TEST_CASE("Robust aggregation is bitwise independent of the order of the sites",
          "[server][robust][reproducible]") {
  // -0 and +0 compare equal, so which one a selection picks depends on the order; the
  // result is always +0.
  const std::vector<std::vector<float>> deltas = {
      {-0.0f, -0.0f, 1.0f, 0.3f},
      {0.0f, -0.0f, -0.0f, 0.1f},
      {-0.0f, 0.0f, -0.0f, 1e8f},
      {-0.0f, -0.0f, 0.0f, 0.7f},
      {-0.0f, 2.0f, -3.0f, 0.2f},
  };
  for (auto statistic :
       {RobustAggregator::Statistic::kMedian, RobustAggregator::Statistic::kTrimmedMean}) {
    for (size_t sites : {size_t{4}, size_t{5}}) {  // an even and an odd count
      std::set<std::vector<uint32_t>> results;
      for (const auto& order : AllOrders(sites)) {
        RobustAggregator aggregator(4, statistic, 0.2);
        for (size_t site : order) REQUIRE(aggregator.Add(1, deltas[site]).ok());
        results.insert(Bits(aggregator.Delta()));
      }
      INFO("statistic " << static_cast<int>(statistic) << ", " << sites << " sites");
      REQUIRE(results.size() == 1);
      const std::vector<uint32_t> bits = *results.begin();
      // Coordinates 0 and 1 are zeros of both signs (all of them, or all but an outlier
      // that is trimmed or not the median): +0.
      CHECK(bits[0] == 0);
      CHECK(bits[1] == 0);
    }
  }
}

// --- Round ------------------------------------------------------------------------------

TEST_CASE("A round's aggregate and training loss do not depend on the upload order",
          "[server][reproducible]") {
  const std::vector<std::string> sites = {"a", "b", "c", "d"};
  const std::vector<double> losses = {0.1, 0.7, 0.2, 1.3};
  std::shared_ptr<const ModelBlob> global = ModelBlob::Make("model-0", {0, 0, 0, 0});
  std::set<std::vector<uint32_t>> deltas;
  std::set<double> train_losses, total_weights;
  for (const auto& order : AllOrders(sites.size())) {
    Round round(1, sites, global);
    for (size_t s : order) {
      UploadAnnouncement a;
      a.round = 1;
      a.base_model_id = "model-0";
      a.num_values = 4;
      a.weight = kUpdates[s].weight;
      a.train_loss = losses[s];
      a.train_examples = static_cast<uint64_t>(a.weight);
      REQUIRE(round.BeginUpload(sites[s], a).ok());
      REQUIRE(round.CompleteUpload(sites[s], a, kUpdates[s].delta).ok());
    }
    round.CloseTraining();
    total_weights.insert(round.aggregate().total_weight());
    train_losses.insert(round.weighted_train_loss());
    deltas.insert(Bits(round.TakeAggregatedDelta()));
  }
  CHECK(deltas.size() == 1);
  CHECK(train_losses.size() == 1);
  CHECK(total_weights == std::set<double>{10.0});
}

TEST_CASE("A round refuses an upload the aggregator cannot hold, and the site may retry",
          "[server]") {
  Round round(1, {"a", "b"}, ModelBlob::Make("model-0", {0, 0}));
  UploadAnnouncement a;
  a.round = 1;
  a.base_model_id = "model-0";
  a.num_values = 2;
  a.weight = 1e12;
  a.train_examples = 1000000000000;
  REQUIRE(round.BeginUpload("a", a).ok());
  CHECK(round.CompleteUpload("a", a, {1e30f, 0.0f}).code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(round.aggregate().count() == 0);
  CHECK(round.SiteProgress("a") == "training");
  REQUIRE(round.BeginUpload("a", a).ok());
  REQUIRE(round.CompleteUpload("a", a, {1.0f, -2.0f}).ok());
  CHECK(round.CloseTraining() == std::vector<std::string>{"a"});
  CHECK(round.TakeAggregatedDelta() == std::vector<float>{1.0f, -2.0f});
}

}  // namespace
}  // namespace cohort::server
