#include "server/exact_weighted_sum.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace cohort::server {
namespace {

// GCC and Clang on 64-bit targets; __extension__ keeps -Wpedantic quiet.
__extension__ typedef __int128 Int128;
__extension__ typedef unsigned __int128 UInt128;

// |w * v| must stay below 2^64: with 2^40 units per 1, a term is below 2^104 units and
// kMaxTerms = 2^22 of them below 2^126, inside a signed 128-bit sum.
constexpr double kTermLimit = 0x1p64;
// Scaled terms below this take the 64-bit path (llrint is defined for |x| < 2^63).
constexpr double kNarrowTermLimit = 0x1p62;

// x rounded to the nearest integer (ties to even), for |x| < 2^104.
Int128 RoundToInt128(double x) {
  // nearbyint is exact for any double; from 2^53 on a double is an integer anyway, and the
  // conversion to a 128-bit integer is then exact too.
  return static_cast<Int128>(std::nearbyint(x));
}

UInt128 Join(int64_t high, int64_t low) {
  return (static_cast<UInt128>(static_cast<uint64_t>(high)) << 64) |
         static_cast<uint64_t>(low);
}

}  // namespace

absl::Status ExactWeightedSum::Add(double weight, const std::vector<float>& values) {
  if (values.size() != size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("a vector of ", values.size(), " values added to a sum of ", size_));
  }
  if (terms_ >= kMaxTerms) {
    return absl::ResourceExhaustedError(
        absl::StrCat("an exact sum holds at most ", kMaxTerms, " vectors"));
  }
  float max_abs = 0;
  for (float v : values) {
    if (!std::isfinite(v)) return absl::InvalidArgumentError("a value to add is not finite");
    max_abs = std::max(max_abs, std::fabs(v));
  }
  // Rounding is monotone, so fl(weight * max_abs) bounds every fl(weight * v) below. The
  // negated test also refuses a NaN or infinite weight.
  if (!(std::fabs(weight) * static_cast<double>(max_abs) < kTermLimit) ||
      !std::isfinite(weight)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weight ", weight, " times value ", max_abs,
        " is outside the range of exact aggregation (|weight x value| < 2^64)"));
  }
  if (low_.empty()) low_.assign(size_, 0);
  // fl(weight * 2^40 * v) = fl(weight * v) * 2^40: scaling by a power of two commutes with
  // rounding (no term can overflow, and one small enough to underflow rounds to 0 either way).
  const double scaled_weight = std::ldexp(weight, kFractionBits);
  size_t i = 0;
  if (high_.empty()) {
    for (; i < size_; ++i) {
      const double x = scaled_weight * static_cast<double>(values[i]);
      if (!(std::fabs(x) < kNarrowTermLimit)) break;
      int64_t sum;
      if (__builtin_add_overflow(low_[i], static_cast<int64_t>(std::llrint(x)), &sum)) break;
      low_[i] = sum;
    }
    // The rest, from the first term or sum that does not fit in 64 bits, in 128 bits.
    if (i < size_) Widen();
  }
  for (; i < size_; ++i) {
    // Unsigned (modular) addition: no overflow to worry about, and exact because the true
    // sum stays below 2^127 in magnitude.
    const UInt128 sum =
        Join(high_[i], low_[i]) +
        static_cast<UInt128>(RoundToInt128(scaled_weight * static_cast<double>(values[i])));
    low_[i] = static_cast<int64_t>(static_cast<uint64_t>(sum));
    high_[i] = static_cast<int64_t>(static_cast<uint64_t>(sum >> 64));
  }
  ++terms_;
  return absl::OkStatus();
}

void ExactWeightedSum::Widen() {
  high_.resize(size_);
  for (size_t i = 0; i < size_; ++i) high_[i] = low_[i] < 0 ? -1 : 0;
}

std::vector<float> ExactWeightedSum::Scaled(double factor) const {
  std::vector<float> out(size_, 0.0f);
  if (low_.empty()) return out;
  const double unit_factor = std::ldexp(factor, -kFractionBits);
  if (high_.empty()) {
    for (size_t i = 0; i < size_; ++i) {
      out[i] = static_cast<float>(static_cast<double>(low_[i]) * unit_factor);
    }
  } else {
    for (size_t i = 0; i < size_; ++i) {
      const double sum = static_cast<double>(static_cast<Int128>(Join(high_[i], low_[i])));
      out[i] = static_cast<float>(sum * unit_factor);
    }
  }
  return out;
}

void ExactWeightedSum::Release() {
  std::vector<int64_t>().swap(low_);
  std::vector<int64_t>().swap(high_);
}

}  // namespace cohort::server
