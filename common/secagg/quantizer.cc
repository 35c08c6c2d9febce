#include "common/secagg/quantizer.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/secagg/aes_ctr_stream.h"

namespace cohort::secagg {
namespace {

constexpr double kTwoToMinus53 = 1.0 / 9007199254740992.0;

uint64_t MaxEncoding(int bits) { return (uint64_t{1} << bits) - 1; }

// Encodes `count` values into words[0, count) with rounding words from `stream`.
template <typename Word>
absl::Status QuantizeInto(const float* values, size_t count, const QuantizationParams& params,
                          AesCtrStream* stream, Word* words) {
  const uint64_t max_q = MaxEncoding(params.bits);
  const double r = params.clip_range;
  const double scale = static_cast<double>(max_q) / (2 * r);
  // One 64-bit keystream word per value; its top 53 bits are a uniform double in [0, 1).
  constexpr size_t kBatch = AesCtrStream::kBlockBytes / sizeof(uint64_t);
  alignas(64) uint64_t random[kBatch];
  absl::Status status = absl::OkStatus();
  for (size_t start = 0; start < count && status.ok(); start += kBatch) {
    const size_t n = std::min(kBatch, count - start);
    status = stream->Next(reinterpret_cast<uint8_t*>(random), n * sizeof(uint64_t));
    if (!status.ok()) break;
    for (size_t i = 0; i < n; ++i) {
      const double v = values[start + i];
      if (!std::isfinite(v)) {
        status = absl::InvalidArgumentError(absl::StrCat(
            "Quantize: value ", start + i, " is not finite (", v, "); cannot encode it"));
        break;
      }
      const double x = (std::clamp(v, -r, r) + r) * scale;  // in [0, max_q] up to rounding
      const double floor_x = std::floor(x);
      const double fraction = x - floor_x;  // exact: x and floor(x) share an exponent range
      // Round up with probability `fraction` (never when x is an integer): E[q] = x.
      const double u = static_cast<double>(random[i] >> 11) * kTwoToMinus53;
      uint64_t q = static_cast<uint64_t>(floor_x) + (u < fraction ? 1 : 0);
      // For bits > 53, (2^bits - 1) is not a double and x can round up to 2^bits.
      q = std::min(q, max_q);
      words[start + i] = static_cast<Word>(q);
    }
  }
  OPENSSL_cleanse(random, sizeof(random));
  return status;
}

}  // namespace

absl::Status ValidateQuantization(const QuantizationParams& params, int64_t max_summands) {
  if (params.bits < 1 || params.bits > 62) {
    return absl::InvalidArgumentError(absl::StrCat(
        "aggregation.secure.bits: must be between 1 and 62, got ", params.bits));
  }
  if (!std::isfinite(params.clip_range) || !(params.clip_range > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "aggregation.secure.clip_range: must be finite and > 0, got ", params.clip_range));
  }
  if (params.modulus_bits != 32 && params.modulus_bits != 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "aggregation.secure.modulus_bits: must be 32 or 64, got ", params.modulus_bits));
  }
  if (max_summands < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "aggregation.secure: the maximum number of summands (sites) must be at least 1, got ",
        max_summands));
  }
  // max_summands < 2^63 and 2^bits - 1 < 2^62, so the product fits in 128 bits.
  const unsigned __int128 largest_sum =
      static_cast<unsigned __int128>(max_summands) * MaxEncoding(params.bits);
  const unsigned __int128 modulus = static_cast<unsigned __int128>(1) << params.modulus_bits;
  if (largest_sum >= modulus) {
    return absl::InvalidArgumentError(absl::StrCat(
        "aggregation.secure.bits: ", params.bits, "-bit values from ", max_summands,
        " sites can wrap modulo 2^", params.modulus_bits, " (need max_sites * (2^bits - 1) < 2^",
        params.modulus_bits, "; lower bits or use modulus_bits 64)"));
  }
  return absl::OkStatus();
}

absl::Status Quantize(absl::Span<const float> values, const QuantizationParams& params,
                      const SecretBytes& rounding_seed, ModVector* out, size_t offset) {
  if (absl::Status s = ValidateQuantization(params, 1); !s.ok()) return s;
  if (out->modulus_bits() != params.modulus_bits) {
    return absl::InvalidArgumentError(
        absl::StrCat("Quantize: output vector is mod 2^", out->modulus_bits(),
                     " but the parameters say mod 2^", params.modulus_bits));
  }
  if (offset > out->size() || values.size() > out->size() - offset) {
    return absl::InvalidArgumentError(
        absl::StrCat("Quantize: ", values.size(), " values at offset ", offset,
                     " run past the end of a ", out->size(), "-word vector"));
  }
  // The rounding randomness always starts at keystream position 0: a rounding seed must be
  // used for one Quantize call only.
  absl::StatusOr<AesCtrStream> stream = AesCtrStream::Create(rounding_seed, "rounding seed");
  if (!stream.ok()) return stream.status();
  if (out->modulus_bits() == 32) {
    return QuantizeInto(values.data(), values.size(), params, &*stream,
                        out->words32().data() + offset);
  }
  return QuantizeInto(values.data(), values.size(), params, &*stream,
                      out->words64().data() + offset);
}

std::vector<double> DequantizeSum(const ModVector& sum, size_t begin, size_t count,
                                  int64_t summands, const QuantizationParams& params) {
  // Out-of-range requests give an empty result rather than reading past the vector.
  if (begin > sum.size() || count > sum.size() - begin) return {};
  const uint64_t max_q = MaxEncoding(params.bits);
  // sum / scale - m * r = (2 * sum - m * (2^bits - 1)) * r / (2^bits - 1). The difference
  // is computed exactly in 128-bit integers and divided last, so whenever the difference
  // times r is exact in a double the result is correctly rounded (exact if representable).
  const __int128 offset = static_cast<__int128>(summands) * max_q;
  const double max_d = static_cast<double>(max_q);
  std::vector<double> decoded(count);
  for (size_t i = 0; i < count; ++i) {
    const __int128 twice_centered = 2 * static_cast<__int128>(sum.Get(begin + i)) - offset;
    decoded[i] = static_cast<double>(twice_centered) * params.clip_range / max_d;
  }
  return decoded;
}

}  // namespace cohort::secagg
