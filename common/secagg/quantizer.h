#ifndef COHORT_COMMON_SECAGG_QUANTIZER_H_
#define COHORT_COMMON_SECAGG_QUANTIZER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/secagg/mod_vector.h"
#include "common/secagg/secret.h"

namespace cohort::secagg {

// Fixed-point encoding of real vectors for summation modulo 2^modulus_bits.
// A value v is clipped to [-r, r] and mapped to (v + r) * scale with
// scale = (2^bits - 1) / (2r), then rounded stochastically (up with probability equal to the
// fractional part, so E[q] = (v + r) * scale exactly): q is in [0, 2^bits - 1].
// A sum of m such encodings decodes to sum / scale - m * r.
struct QuantizationParams {
  int bits = 16;             // 1..62
  double clip_range = 1.0;   // r > 0, finite
  int modulus_bits = 32;     // 32 or 64
};

// InvalidArgument (naming the field and the limit) unless the parameters are in range and
// max_summands encodings of (2^bits - 1) sum below 2^modulus_bits without wrapping.
absl::Status ValidateQuantization(const QuantizationParams& params, int64_t max_summands);

// Writes the encodings of `values` into out[offset, offset + values.size()). The rounding
// randomness is the AES-256-CTR keystream under `rounding_seed` (32 bytes): from the OS in
// production, fixed in tests. InvalidArgument for a non-finite value, a wrong seed size or
// a range past the end of `out`.
absl::Status Quantize(absl::Span<const float> values, const QuantizationParams& params,
                      const SecretBytes& rounding_seed, ModVector* out, size_t offset = 0);

// Decodes words [begin, begin + count) of a sum of `summands` encodings.
std::vector<double> DequantizeSum(const ModVector& sum, size_t begin, size_t count,
                                  int64_t summands, const QuantizationParams& params);

}  // namespace cohort::secagg

#endif  // COHORT_COMMON_SECAGG_QUANTIZER_H_
