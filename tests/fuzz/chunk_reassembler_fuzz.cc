// Fuzzes chunk reassembly (tensor::BasicChunkReassembler for float32, uint32 and uint64
// values) with a stream of (offset, bytes) chunks decoded from the input:
//   byte 0: value type (float, uint32_t, uint64_t: byte % 3)
//   bytes 1-2: expected values (little-endian, at most 1023), byte 3: max chunk bytes / 4
//   then per chunk: a control byte (bit 0 set: an explicit 8-byte offset follows, otherwise
//   the offset is the bytes received so far), a 2-byte length, then that many payload bytes
//   (fewer at the end of the input).
// A reference model of the rules in chunk_reassembler.h predicts every Add: it must succeed
// exactly when the chunk is contiguous, non-empty, within the chunk limit, whole values, not
// past the announced end and (float32) finite; a refused chunk poisons the stream; Finish is
// OK exactly when every announced byte arrived; Release returns the accepted bytes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/tensor/chunk_reassembler.h"

namespace {

class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint64_t Uint(int bytes) {
    uint64_t value = 0;
    for (int i = 0; i < bytes && pos_ < size_; ++i) value |= uint64_t{data_[pos_++]} << (8 * i);
    return value;
  }
  absl::string_view Bytes(size_t count) {
    count = std::min(count, size_ - pos_);
    absl::string_view out(reinterpret_cast<const char*>(data_ + pos_), count);
    pos_ += count;
    return out;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

template <typename Value>
bool AllFinite(absl::string_view bytes) {
  if constexpr (std::is_same_v<Value, float>) {
    for (size_t i = 0; i + sizeof(float) <= bytes.size(); i += sizeof(float)) {
      float value;
      std::memcpy(&value, bytes.data() + i, sizeof(float));
      if (!std::isfinite(value)) return false;
    }
  }
  return true;
}

template <typename Value>
void Run(Input& in) {
  const uint64_t expected_values = in.Uint(2) % 1024;
  const uint64_t max_chunk_bytes = in.Uint(1) * 4;
  const uint64_t expected_bytes = expected_values * sizeof(Value);
  cohort::tensor::BasicChunkReassembler<Value> assembler(expected_values, max_chunk_bytes);
  std::string accepted;
  uint64_t chunks = 0;
  bool poisoned = false;
  while (!in.empty()) {
    const uint64_t control = in.Uint(1);
    const uint64_t offset = (control & 1) != 0 ? in.Uint(8) : assembler.bytes_received();
    const absl::string_view bytes = in.Bytes(in.Uint(2));
    const bool should_accept =
        !poisoned && offset == accepted.size() && !bytes.empty() &&
        bytes.size() <= max_chunk_bytes && bytes.size() % sizeof(Value) == 0 &&
        bytes.size() <= expected_bytes - accepted.size() && AllFinite<Value>(bytes);
    const absl::Status status = assembler.Add(offset, bytes);
    if (status.ok() != should_accept) std::abort();
    if (status.ok()) {
      accepted.append(bytes.data(), bytes.size());
      ++chunks;
    } else {
      if (!poisoned && !absl::IsInvalidArgument(status)) std::abort();
      poisoned = true;
    }
    if (assembler.bytes_received() != accepted.size() || assembler.chunks_received() != chunks ||
        accepted.size() > expected_bytes) {
      std::abort();
    }
  }
  const absl::Status finish = assembler.Finish();
  if (finish.ok() != (!poisoned && accepted.size() == expected_bytes)) std::abort();
  if (!finish.ok()) return;
  std::vector<Value> values = assembler.Release();
  if (values.size() != expected_values ||
      (expected_bytes != 0 && std::memcmp(values.data(), accepted.data(), expected_bytes) != 0)) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Input in(data, size);
  switch (in.Uint(1) % 3) {
    case 0:
      Run<float>(in);
      break;
    case 1:
      Run<uint32_t>(in);
      break;
    default:
      Run<uint64_t>(in);
      break;
  }
  return 0;
}
