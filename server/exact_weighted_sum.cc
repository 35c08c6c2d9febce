#include "server/exact_weighted_sum.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace cohort::server {
namespace {

// GCC and Clang on 64-bit targets; __extension__ keeps -Wpedantic quiet.
__extension__ typedef __int128 Int128;
__extension__ typedef unsigned __int128 UInt128;

// |w * v| must stay below 2^64: with 2^40 units per 1, a term is below 2^104 units and
// kMaxTerms = 2^22 of them below 2^126, inside a signed 128-bit sum.
constexpr double kTermLimit = 0x1p64;
// Scaled terms below this fit in 64 bits (a double this large converts exactly).
constexpr double kNarrowTermLimit = 0x1p63;

// x rounded to the nearest integer, ties to even (the default rounding mode), as a double.
// Adding 2^52 to |x| < 2^52 leaves no bits for a fraction and subtracting it again is exact;
// larger doubles are integers already. (Inline, unlike std::nearbyint and std::llrint.)
double RoundToIntegral(double x) {
  const double magnitude = std::fabs(x);
  return magnitude < 0x1p52 ? std::copysign((magnitude + 0x1p52) - 0x1p52, x) : x;
}

uint32_t FloatBits(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  return bits;
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
  // The largest |value|, from the bits: without the sign bit, the bits of floats order as
  // their magnitudes do, and infinity and NaN come above every finite value.
  uint32_t max_abs_bits = 0;
  for (float v : values) max_abs_bits = std::max(max_abs_bits, FloatBits(v) & 0x7fffffffu);
  if (max_abs_bits >= FloatBits(std::numeric_limits<float>::infinity())) {
    return absl::InvalidArgumentError("a value to add is not finite");
  }
  float max_abs;
  std::memcpy(&max_abs, &max_abs_bits, sizeof(max_abs));
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
    i = AddNarrow(scaled_weight, values.data());
    // The rest, from the first term or sum that does not fit in 64 bits, in 128 bits.
    if (i < size_) Widen();
  }
  for (; i < size_; ++i) {
    // Unsigned (modular) addition: no overflow to worry about, and exact because the true
    // sum stays below 2^127 in magnitude.
    const UInt128 sum =
        Join(high_[i], low_[i]) +
        static_cast<UInt128>(static_cast<Int128>(
            RoundToIntegral(scaled_weight * static_cast<double>(values[i]))));
    low_[i] = static_cast<int64_t>(static_cast<uint64_t>(sum));
    high_[i] = static_cast<int64_t>(static_cast<uint64_t>(sum >> 64));
  }
  ++terms_;
  return absl::OkStatus();
}

size_t ExactWeightedSum::AddNarrow(double scaled_weight, const float* values) {
  // One value at a time: the loop is bound by memory traffic (4 bytes read, 8 read and
  // written per value), and blocked, vectorized variants measured no faster.
  int64_t* low = low_.data();
  for (size_t i = 0; i < size_; ++i) {
    const double term = RoundToIntegral(scaled_weight * static_cast<double>(values[i]));
    int64_t sum;
    if (!(std::fabs(term) < kNarrowTermLimit) ||
        __builtin_add_overflow(low[i], static_cast<int64_t>(term), &sum)) {
      return i;
    }
    low[i] = sum;
  }
  return size_;
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
