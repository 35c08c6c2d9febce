// Unit tests for server/exact_weighted_sum: a sum that does not depend on the order of its
// terms, bit for bit.
#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "server/exact_weighted_sum.h"

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

}  // namespace
}  // namespace cohort::server
