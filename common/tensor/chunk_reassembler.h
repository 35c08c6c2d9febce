#ifndef COHORT_COMMON_TENSOR_CHUNK_REASSEMBLER_H_
#define COHORT_COMMON_TENSOR_CHUNK_REASSEMBLER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace cohort::tensor {

// Rebuilds a vector of a size announced up front from a stream of little-endian byte chunks:
// float32 model values (ChunkReassembler) or the uint32/uint64 words of a masked input.
// It refuses, with InvalidArgument naming the chunk and the reason, anything that is not
// exactly that payload: a gap or overlap (offset != bytes received so far), an empty or
// oversized chunk, a chunk that is not a whole number of values, bytes past the end, and
// (float32 only) NaN or infinite values. After an error the assembler is poisoned: the
// caller discards it.
template <typename Value>
class BasicChunkReassembler {
 public:
  // Allocates the destination once; `expected_values` must already be validated by the
  // caller (never sized from an unchecked peer field).
  BasicChunkReassembler(uint64_t expected_values, uint64_t max_chunk_bytes);

  absl::Status Add(uint64_t offset, absl::string_view bytes);
  // OK only when every announced byte arrived.
  absl::Status Finish() const;
  uint64_t bytes_received() const { return received_; }
  uint64_t chunks_received() const { return chunks_; }
  // Moves the assembled values out; call only after Finish() returned OK.
  std::vector<Value> Release() { return std::move(values_); }

 private:
  std::vector<Value> values_;
  uint64_t expected_bytes_;
  uint64_t max_chunk_bytes_;
  uint64_t received_ = 0;
  uint64_t chunks_ = 0;
  bool failed_ = false;
};

using ChunkReassembler = BasicChunkReassembler<float>;
extern template class BasicChunkReassembler<float>;
extern template class BasicChunkReassembler<uint32_t>;
extern template class BasicChunkReassembler<uint64_t>;

}  // namespace cohort::tensor

#endif  // COHORT_COMMON_TENSOR_CHUNK_REASSEMBLER_H_
