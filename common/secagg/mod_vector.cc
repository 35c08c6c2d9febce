#include "common/secagg/mod_vector.h"

#include <cstdlib>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cohort::secagg {
namespace {

// Words travel little-endian; on a little-endian host that is the in-memory layout, so the
// conversions below are a memcpy the compiler emits as such.
template <typename Word>
void StoreLittleEndian(Word value, char* out) {
  for (size_t b = 0; b < sizeof(Word); ++b) out[b] = static_cast<char>(value >> (8 * b));
}

template <typename Word>
Word LoadLittleEndian(const char* in) {
  Word value = 0;
  for (size_t b = 0; b < sizeof(Word); ++b) {
    value |= static_cast<Word>(static_cast<uint8_t>(in[b])) << (8 * b);
  }
  return value;
}

template <typename Word>
std::string WordsToBytes(const std::vector<Word>& words) {
  std::string bytes(words.size() * sizeof(Word), '\0');
  for (size_t i = 0; i < words.size(); ++i) {
    StoreLittleEndian(words[i], &bytes[i * sizeof(Word)]);
  }
  return bytes;
}

template <typename Word>
void BytesToWords(absl::string_view bytes, std::vector<Word>* words) {
  words->resize(bytes.size() / sizeof(Word));
  for (size_t i = 0; i < words->size(); ++i) {
    (*words)[i] = LoadLittleEndian<Word>(bytes.data() + i * sizeof(Word));
  }
}

absl::Status CheckCompatible(const ModVector& a, const ModVector& b, const char* operation) {
  if (a.modulus_bits() != b.modulus_bits() || a.size() != b.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ModVector ", operation, ": operands differ (", a.size(), " words mod 2^",
        a.modulus_bits(), " vs ", b.size(), " words mod 2^", b.modulus_bits(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

ModVector::ModVector(int modulus_bits, size_t size) : modulus_bits_(modulus_bits) {
  // Config validation (ValidateQuantization) runs before any vector exists, so another
  // modulus here is a programming error.
  if (modulus_bits == 32) {
    words32_.assign(size, 0);
  } else if (modulus_bits == 64) {
    words64_.assign(size, 0);
  } else {
    std::abort();
  }
}

size_t ModVector::size() const {
  return modulus_bits_ == 32 ? words32_.size() : words64_.size();
}

uint64_t ModVector::Get(size_t i) const {
  return modulus_bits_ == 32 ? words32_[i] : words64_[i];
}

void ModVector::Set(size_t i, uint64_t value) {
  if (modulus_bits_ == 32) {
    words32_[i] = static_cast<uint32_t>(value);  // truncation is the reduction mod 2^32
  } else {
    words64_[i] = value;
  }
}

absl::Status ModVector::AddAssign(const ModVector& other) {
  if (absl::Status s = CheckCompatible(*this, other, "AddAssign"); !s.ok()) return s;
  // Unsigned arithmetic wraps, which is exactly reduction mod 2^bits.
  if (modulus_bits_ == 32) {
    for (size_t i = 0; i < words32_.size(); ++i) words32_[i] += other.words32_[i];
  } else {
    for (size_t i = 0; i < words64_.size(); ++i) words64_[i] += other.words64_[i];
  }
  return absl::OkStatus();
}

absl::Status ModVector::SubtractAssign(const ModVector& other) {
  if (absl::Status s = CheckCompatible(*this, other, "SubtractAssign"); !s.ok()) return s;
  if (modulus_bits_ == 32) {
    for (size_t i = 0; i < words32_.size(); ++i) words32_[i] -= other.words32_[i];
  } else {
    for (size_t i = 0; i < words64_.size(); ++i) words64_[i] -= other.words64_[i];
  }
  return absl::OkStatus();
}

std::string ModVector::ToBytes() const {
  return modulus_bits_ == 32 ? WordsToBytes(words32_) : WordsToBytes(words64_);
}

absl::StatusOr<ModVector> ModVector::FromBytes(int modulus_bits, absl::string_view bytes) {
  if (modulus_bits != 32 && modulus_bits != 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("ModVector::FromBytes: modulus must be 2^32 or 2^64, got 2^", modulus_bits));
  }
  const size_t word_bytes = static_cast<size_t>(modulus_bits / 8);
  if (bytes.size() % word_bytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ModVector::FromBytes: ", bytes.size(), " bytes is not a whole number of ", word_bytes,
        "-byte words mod 2^", modulus_bits));
  }
  ModVector vector(modulus_bits, 0);
  if (modulus_bits == 32) {
    BytesToWords(bytes, &vector.words32_);
  } else {
    BytesToWords(bytes, &vector.words64_);
  }
  return vector;
}

}  // namespace cohort::secagg
