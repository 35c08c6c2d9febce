#ifndef COHORT_SERVER_EXACT_WEIGHTED_SUM_H_
#define COHORT_SERVER_EXACT_WEIGHTED_SUM_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"

namespace cohort::server {

// sum_i(w_i * v_i) over float32 vectors v_i, with a result that does not depend on the order
// of the Add calls. Float addition is not associative, so a float running sum depends on the
// order in which uploads arrive; here each term w * v is rounded once, on its own, to the
// nearest multiple of 2^-kFractionBits, and the multiples are added as integers, which is
// exact and hence associative. The order of Adds changes nothing but, possibly, the memory
// used (see below).
//
// Accuracy: each term is fl64(w * v) rounded to the grid, so the sum is off by at most
// n * 2^-(kFractionBits + 1) (plus 2^-53 relative per term); divided by sum(w_i) >= n (weights
// are example counts) that is < 5e-13 absolute on a weighted mean.
//
// Memory: 8 bytes per value while every term and running sum fits in 64 bits (magnitude
// below 2^23, about 8.4e6), then 16 bytes: the first Add that needs more widens every sum to
// 128 bits.
//
// Range: a term must have |w * v| < 2^64 and at most kMaxTerms vectors are added, so that
// every sum stays below 2^127 units; Add refuses anything else and then changes nothing.
class ExactWeightedSum {
 public:
  static constexpr int kFractionBits = 40;
  static constexpr int kMaxTerms = 1 << 22;

  explicit ExactWeightedSum(size_t size) : size_(size) {}

  // Adds weight * values. InvalidArgument (nothing added) when values has another size than
  // size() or a term is out of range (including non-finite ones); ResourceExhausted after
  // kMaxTerms vectors.
  absl::Status Add(double weight, const std::vector<float>& values);

  // float32(sum * factor) per value, each rounded from the exact sum through float64 (so the
  // same sums always give the same floats). Zeros before the first Add.
  std::vector<float> Scaled(double factor) const;

  // Frees the sums (terms() stays readable); the object is empty afterwards.
  void Release();

  size_t size() const { return size_; }
  int terms() const { return terms_; }
  // True once some sum needed more than 64 bits (16 bytes per value).
  bool wide() const { return !high_.empty(); }

 private:
  // Adds round(scaled_weight * values[i]) to the 64-bit sums from i = 0 on, and returns the
  // first i whose term or sum does not fit in 64 bits (size() when all did); the sums from
  // there on are unchanged.
  size_t AddNarrow(double scaled_weight, const float* values);
  // Makes every sum 128 bits wide: high_ holds the upper words, low_ the lower ones.
  void Widen();

  size_t size_;
  int terms_ = 0;
  // Sums in units of 2^-kFractionBits, allocated by the first Add. While high_ is empty each
  // sum is low_[i] (two's complement); afterwards it is high_[i] * 2^64 + uint64(low_[i]).
  std::vector<int64_t> low_;
  std::vector<int64_t> high_;
};

}  // namespace cohort::server

#endif  // COHORT_SERVER_EXACT_WEIGHTED_SUM_H_
