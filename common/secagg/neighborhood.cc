#include "common/secagg/neighborhood.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/crypto/sha256.h"

namespace cohort::secagg {
namespace {

// log P[Binomial(k, p) > d], computed in log space (k is at most a few thousand).
double LogBinomialTailAbove(int k, double p, int d) {
  if (d >= k) return -INFINITY;
  if (p <= 0) return -INFINITY;
  if (p >= 1) return 0;
  double max_term = -INFINITY;
  std::vector<double> terms;
  for (int j = d + 1; j <= k; ++j) {
    double t = std::lgamma(k + 1.0) - std::lgamma(j + 1.0) - std::lgamma(k - j + 1.0) +
               j * std::log(p) + (k - j) * std::log1p(-p);
    terms.push_back(t);
    max_term = std::max(max_term, t);
  }
  double sum = 0;
  for (double t : terms) sum += std::exp(t - max_term);
  return max_term + std::log(sum);
}

// A deterministic stream of 64-bit words: SHA-256(seed || counter), 4 words per block.
class SeedStream {
 public:
  explicit SeedStream(const std::string& seed) : seed_(seed) {}
  uint64_t Next() {
    if (available_ == 0) {
      std::string block = seed_;
      for (int i = 0; i < 8; ++i) block.push_back(static_cast<char>((counter_ >> (8 * i)) & 0xff));
      ++counter_;
      std::string digest = crypto::Sha256(block);
      std::memcpy(words_, digest.data(), sizeof(words_));
      available_ = 4;
    }
    return words_[--available_];
  }
  // Uniform in [0, bound) without modulo bias.
  uint64_t Below(uint64_t bound) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do {
      x = Next();
    } while (x >= limit);
    return x % bound;
  }

 private:
  std::string seed_;
  uint64_t counter_ = 0;
  uint64_t words_[4] = {};
  int available_ = 0;
};

}  // namespace

absl::StatusOr<GraphParameters> ChooseGraphParameters(int n, double tolerance) {
  if (n < 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "secure aggregation needs at least 3 sites (got ", n,
        "): with 2, each site learns the other's update from the sum"));
  }
  if (!(tolerance >= 0 && tolerance < 0.5)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "aggregation.secure.dropout_tolerance must be in [0, 0.5) (got ", tolerance,
        "): the threshold must exceed half a neighbourhood"));
  }
  GraphParameters complete;
  complete.cohort_size = n;
  complete.degree = n - 1;
  const int holders = n;  // every site, itself included
  const int dropouts = std::min(static_cast<int>(std::floor(tolerance * n + 1e-9)),
                                holders - (holders / 2 + 1));
  complete.threshold = holders - dropouts;
  complete.tolerated_neighbour_dropouts = dropouts;
  complete.complete = true;

  // A sparse graph is worth it only if it has fewer neighbours than the complete one.
  const double log_target = -20 * std::log(2.0) - std::log(static_cast<double>(n));
  for (int k = 4; k < n - 1; k += 2) {
    int d = 0;
    while (d < k && LogBinomialTailAbove(k, tolerance, d) > log_target) ++d;
    const int t = k - d;
    if (2 * t > k + 1) {
      GraphParameters sparse;
      sparse.cohort_size = n;
      sparse.degree = k;
      sparse.threshold = t;
      sparse.tolerated_neighbour_dropouts = d;
      sparse.complete = false;
      return sparse;
    }
  }
  return complete;
}

absl::Status ValidateGraphParameters(int n, int k, int t) {
  if (n < 3 || k < 1 || k > n - 1 || t < 1 || t > k + 1) {
    return absl::InvalidArgumentError(absl::StrCat("neighbourhood degree ", k, " and threshold ",
                                                   t, " do not fit a cohort of ", n));
  }
  if (2 * t <= k + 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "threshold ", t, " is not more than half of the ", k + 1,
        " share holders: a coordinator could collect both shares of a site's secrets"));
  }
  if (k != n - 1 && k % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("a sparse neighbourhood degree must be even (got ", k, ")"));
  }
  return absl::OkStatus();
}

std::vector<int> Neighbours(int n, int k, const std::string& graph_seed, int index) {
  std::vector<int> result;
  if (index < 0 || index >= n) return result;
  if (k >= n - 1) {
    for (int i = 0; i < n; ++i) {
      if (i != index) result.push_back(i);
    }
    return result;
  }
  // Ring order: a Fisher-Yates shuffle driven by the seed.
  std::vector<int> ring(n);
  std::iota(ring.begin(), ring.end(), 0);
  SeedStream stream(graph_seed);
  for (int i = n - 1; i > 0; --i) {
    std::swap(ring[i], ring[stream.Below(static_cast<uint64_t>(i) + 1)]);
  }
  const int position = static_cast<int>(std::find(ring.begin(), ring.end(), index) - ring.begin());
  for (int j = 1; j <= k / 2; ++j) {
    result.push_back(ring[(position + j) % n]);
    result.push_back(ring[(position - j + n) % n]);
  }
  std::sort(result.begin(), result.end());
  result.erase(std::unique(result.begin(), result.end()), result.end());
  return result;
}

}  // namespace cohort::secagg
