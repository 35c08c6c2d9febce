#ifndef COHORT_COMMON_SECAGG_MOD_VECTOR_H_
#define COHORT_COMMON_SECAGG_MOD_VECTOR_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace cohort::secagg {

// A vector of integers modulo 2^32 or 2^64 (the secure aggregation group). Words are
// stored natively (uint32_t or uint64_t, so arithmetic wraps by itself) and travel as
// little-endian bytes.
class ModVector {
 public:
  // `modulus_bits` must be 32 or 64 (callers validate config first; anything else aborts).
  ModVector(int modulus_bits, size_t size);

  int modulus_bits() const { return modulus_bits_; }
  size_t size() const;
  size_t byte_size() const { return size() * (modulus_bits_ / 8); }

  uint64_t Get(size_t i) const;
  // Stores value mod 2^modulus_bits.
  void Set(size_t i, uint64_t value);

  // this += other (mod 2^bits); InvalidArgument if sizes or moduli differ.
  absl::Status AddAssign(const ModVector& other);
  absl::Status SubtractAssign(const ModVector& other);

  // Little-endian wire encoding, exactly byte_size() bytes.
  std::string ToBytes() const;
  // InvalidArgument unless `bytes` holds a whole number of words of this modulus.
  static absl::StatusOr<ModVector> FromBytes(int modulus_bits, absl::string_view bytes);

  // Direct access for the mask PRG and the quantizer: exactly one of these is non-empty.
  std::vector<uint32_t>& words32() { return words32_; }
  std::vector<uint64_t>& words64() { return words64_; }
  const std::vector<uint32_t>& words32() const { return words32_; }
  const std::vector<uint64_t>& words64() const { return words64_; }

  bool operator==(const ModVector& other) const {
    return modulus_bits_ == other.modulus_bits_ && words32_ == other.words32_ &&
           words64_ == other.words64_;
  }

 private:
  int modulus_bits_;
  std::vector<uint32_t> words32_;
  std::vector<uint64_t> words64_;
};

}  // namespace cohort::secagg

#endif  // COHORT_COMMON_SECAGG_MOD_VECTOR_H_
