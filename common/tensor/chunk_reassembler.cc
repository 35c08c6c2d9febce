#include "common/tensor/chunk_reassembler.h"

#include <cstring>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "common/tensor/layout.h"

namespace cohort::tensor {

template <typename Value>
BasicChunkReassembler<Value>::BasicChunkReassembler(uint64_t expected_values,
                                                    uint64_t max_chunk_bytes)
    : values_(expected_values),
      expected_bytes_(expected_values * sizeof(Value)),
      max_chunk_bytes_(max_chunk_bytes) {}

template <typename Value>
absl::Status BasicChunkReassembler<Value>::Add(uint64_t offset, absl::string_view bytes) {
  auto fail = [&](const std::string& why) {
    failed_ = true;
    return absl::InvalidArgumentError(absl::StrCat("chunk ", chunks_, " at offset ", offset,
                                                   " (", bytes.size(), " bytes): ", why));
  };
  if (failed_) return absl::FailedPreconditionError("stream already refused");
  if (offset != received_) {
    return fail(absl::StrCat("expected offset ", received_, " (chunks must be contiguous)"));
  }
  if (bytes.empty()) return fail("empty chunk");
  if (bytes.size() > max_chunk_bytes_) {
    return fail(absl::StrCat("larger than the limit of ", max_chunk_bytes_, " bytes"));
  }
  if (bytes.size() % sizeof(Value) != 0) {
    return fail(std::is_same_v<Value, float>
                    ? std::string("not a whole number of float32 values")
                    : absl::StrCat("not a whole number of ", sizeof(Value), "-byte words"));
  }
  if (bytes.size() > expected_bytes_ - received_) {
    return fail(absl::StrCat("runs past the announced size of ", expected_bytes_, " bytes"));
  }
  Value* dest = values_.data() + received_ / sizeof(Value);
  std::memcpy(dest, bytes.data(), bytes.size());
  if constexpr (std::is_same_v<Value, float>) {
    absl::Status finite =
        CheckFinite(dest, bytes.size() / sizeof(float), received_ / sizeof(float));
    if (!finite.ok()) return fail(std::string(finite.message()));
  }
  received_ += bytes.size();
  ++chunks_;
  return absl::OkStatus();
}

template <typename Value>
absl::Status BasicChunkReassembler<Value>::Finish() const {
  if (failed_) return absl::FailedPreconditionError("stream was refused");
  if (received_ != expected_bytes_) {
    return absl::InvalidArgumentError(absl::StrCat("stream truncated: received ", received_,
                                                   " of ", expected_bytes_, " bytes"));
  }
  return absl::OkStatus();
}

template class BasicChunkReassembler<float>;
template class BasicChunkReassembler<uint32_t>;
template class BasicChunkReassembler<uint64_t>;

}  // namespace cohort::tensor
