#include "common/secagg/prg.h"

#include <openssl/crypto.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/secagg/aes_ctr_stream.h"

namespace cohort::secagg {
namespace {

// The keystream is read as little-endian words by reinterpreting the bytes OpenSSL writes;
// that is only the specified byte order on a little-endian host.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the mask PRG reads keystream bytes as native little-endian words");

enum class Fold { kAdd, kSubtract };

// The fold loops, one per word size and sign: out[i] +/-= keystream[i] (unsigned arithmetic
// wraps, which is the reduction mod 2^bits). On x86-64 each is compiled for AVX-512, AVX2 and
// the SSE2 baseline and the loader picks the best the CPU has: the fold runs between AES
// blocks (nothing overlaps it), so fewer, wider instructions go straight to throughput.
#if defined(__x86_64__) && defined(__GNUC__)
#define COHORT_FOLD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define COHORT_FOLD_CLONES
#endif

COHORT_FOLD_CLONES void Add32(uint32_t* __restrict out, const uint32_t* __restrict keystream,
                              size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] += keystream[i];
}
COHORT_FOLD_CLONES void Subtract32(uint32_t* __restrict out,
                                   const uint32_t* __restrict keystream, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] -= keystream[i];
}
COHORT_FOLD_CLONES void Add64(uint64_t* __restrict out, const uint64_t* __restrict keystream,
                              size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] += keystream[i];
}
COHORT_FOLD_CLONES void Subtract64(uint64_t* __restrict out,
                                   const uint64_t* __restrict keystream, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] -= keystream[i];
}

void FoldBlock(uint32_t* out, const uint32_t* keystream, size_t n, Fold fold) {
  fold == Fold::kAdd ? Add32(out, keystream, n) : Subtract32(out, keystream, n);
}
void FoldBlock(uint64_t* out, const uint64_t* keystream, size_t n, Fold fold) {
  fold == Fold::kAdd ? Add64(out, keystream, n) : Subtract64(out, keystream, n);
}

// words[i] (op)= keystream word i, for i < count. The keystream goes through one stack block
// of AesCtrStream::kBlockBytes that is folded in while it is still in cache, so no second
// model-sized buffer is ever written.
template <typename Word, Fold kFold>
absl::Status FoldKeystream(const SecretBytes& seed, Word* words, size_t count) {
  absl::StatusOr<AesCtrStream> stream = AesCtrStream::Create(seed, "mask seed");
  if (!stream.ok()) return stream.status();
  constexpr size_t kWordsPerBlock = AesCtrStream::kBlockBytes / sizeof(Word);
  alignas(64) Word block[kWordsPerBlock];
  absl::Status status = absl::OkStatus();
  for (size_t start = 0; start < count; start += kWordsPerBlock) {
    const size_t n = std::min(kWordsPerBlock, count - start);
    Word* out = words + start;
    // Ask for this block's words now: the loads from L3/memory overlap with the AES work
    // below instead of stalling the fold after it (the vector is far larger than L2).
    for (size_t line = 0; line < n * sizeof(Word); line += 64) {
      __builtin_prefetch(reinterpret_cast<const char*>(out) + line, /*rw=*/1, /*locality=*/2);
    }
    status = stream->Next(reinterpret_cast<uint8_t*>(block), n * sizeof(Word));
    if (!status.ok()) break;
    FoldBlock(out, block, n, kFold);
  }
  // The block held mask words (enough to unmask part of a client's input).
  OPENSSL_cleanse(block, sizeof(block));
  return status;
}

template <Fold kFold>
absl::Status FoldInto(const SecretBytes& seed, ModVector* vector) {
  if (vector->modulus_bits() == 32) {
    return FoldKeystream<uint32_t, kFold>(seed, vector->words32().data(), vector->size());
  }
  return FoldKeystream<uint64_t, kFold>(seed, vector->words64().data(), vector->size());
}

}  // namespace

absl::Status ApplyMask(const SecretBytes& seed, MaskSign sign, ModVector* vector) {
  return sign == MaskSign::kAdd ? FoldInto<Fold::kAdd>(seed, vector)
                                : FoldInto<Fold::kSubtract>(seed, vector);
}

absl::Status ExpandMask(const SecretBytes& seed, ModVector* out) {
  absl::StatusOr<AesCtrStream> stream = AesCtrStream::Create(seed, "mask seed");
  if (!stream.ok()) return stream.status();
  // No fold: the keystream bytes are the words, written straight into the vector.
  uint8_t* bytes = out->modulus_bits() == 32
                       ? reinterpret_cast<uint8_t*>(out->words32().data())
                       : reinterpret_cast<uint8_t*>(out->words64().data());
  return stream->Next(bytes, out->byte_size());
}

absl::Status RawKeystream(const SecretBytes& seed, uint8_t* out, size_t bytes) {
  absl::StatusOr<AesCtrStream> stream = AesCtrStream::Create(seed, "keystream seed");
  if (!stream.ok()) return stream.status();
  return stream->Next(out, bytes);
}

}  // namespace cohort::secagg
