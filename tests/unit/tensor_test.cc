// Unit tests for common/tensor: parameter layouts, finiteness checks and chunk reassembly.
#include <catch2/catch.hpp>

#include "tests/support/status_assertions.h"
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "common/tensor/chunk_reassembler.h"
#include "common/tensor/layout.h"

namespace cohort::tensor {
namespace {

using ::cohort::testing::RequireInvalid;

// 0.5, 1.5, 2.5, ... : exactly representable, all distinct, all finite.
std::vector<float> Ramp(size_t n) {
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) values[i] = 0.5f + static_cast<float>(i);
  return values;
}

std::string Bytes(const std::vector<float>& values) { return std::string(AsBytes(values)); }

// --- ChunkReassembler -------------------------------------------------------------------

TEST_CASE("ChunkReassembler reassembles a payload split into several chunks exactly",
          "[tensor]") {
  const std::vector<float> payload = Ramp(10);
  const std::string bytes = Bytes(payload);
  ChunkReassembler assembler(payload.size(), 16);
  // Chunks of 16, 16, 4 and 4 bytes: uneven sizes, each a whole number of floats.
  const std::vector<size_t> sizes = {16, 16, 4, 4};
  size_t offset = 0;
  for (size_t size : sizes) {
    REQUIRE(assembler.Add(offset, absl::string_view(bytes).substr(offset, size)).ok());
    offset += size;
  }
  REQUIRE(offset == bytes.size());
  CHECK(assembler.bytes_received() == bytes.size());
  CHECK(assembler.chunks_received() == sizes.size());
  REQUIRE(assembler.Finish().ok());
  std::vector<float> out = assembler.Release();
  REQUIRE(out.size() == payload.size());
  CHECK(std::memcmp(out.data(), payload.data(), bytes.size()) == 0);
  CHECK(out == payload);
}

TEST_CASE("ChunkReassembler accepts a payload sent as a single chunk", "[tensor]") {
  const std::vector<float> payload = Ramp(3);
  ChunkReassembler assembler(payload.size(), 1 << 20);
  REQUIRE(assembler.Add(0, AsBytes(payload)).ok());
  REQUIRE(assembler.Finish().ok());
  CHECK(assembler.Release() == payload);
}

TEST_CASE("ChunkReassembler accepts negative values, zero and denormals", "[tensor]") {
  const std::vector<float> payload = {-1.0f, 0.0f, -0.0f, std::numeric_limits<float>::denorm_min(),
                                      std::numeric_limits<float>::max(),
                                      std::numeric_limits<float>::lowest()};
  ChunkReassembler assembler(payload.size(), 1 << 20);
  REQUIRE(assembler.Add(0, AsBytes(payload)).ok());
  REQUIRE(assembler.Finish().ok());
  std::vector<float> out = assembler.Release();
  CHECK(std::memcmp(out.data(), payload.data(), payload.size() * sizeof(float)) == 0);
}

TEST_CASE("ChunkReassembler refuses a chunk that leaves a gap", "[tensor]") {
  const std::string bytes = Bytes(Ramp(4));
  ChunkReassembler assembler(4, 64);
  REQUIRE(assembler.Add(0, absl::string_view(bytes).substr(0, 4)).ok());
  // Offset 8 skips bytes 4..7.
  RequireInvalid(assembler.Add(8, absl::string_view(bytes).substr(8, 4)),
                 {"offset 8", "expected offset 4", "contiguous"});
}

TEST_CASE("ChunkReassembler refuses a first chunk that does not start at offset 0",
          "[tensor]") {
  const std::string bytes = Bytes(Ramp(4));
  ChunkReassembler assembler(4, 64);
  RequireInvalid(assembler.Add(4, absl::string_view(bytes).substr(4, 4)),
                 {"expected offset 0"});
}

TEST_CASE("ChunkReassembler refuses a chunk that overlaps what was received", "[tensor]") {
  const std::string bytes = Bytes(Ramp(4));
  ChunkReassembler assembler(4, 64);
  REQUIRE(assembler.Add(0, absl::string_view(bytes).substr(0, 8)).ok());
  // Offset 4 re-sends bytes 4..7.
  RequireInvalid(assembler.Add(4, absl::string_view(bytes).substr(4, 8)),
                 {"offset 4", "expected offset 8"});
}

TEST_CASE("ChunkReassembler refuses an empty chunk", "[tensor]") {
  ChunkReassembler assembler(4, 64);
  RequireInvalid(assembler.Add(0, absl::string_view()), {"empty chunk"});
}

TEST_CASE("ChunkReassembler refuses a chunk larger than the maximum", "[tensor]") {
  const std::string bytes = Bytes(Ramp(16));
  ChunkReassembler assembler(16, 16);
  // Exactly the maximum is fine.
  REQUIRE(assembler.Add(0, absl::string_view(bytes).substr(0, 16)).ok());
  RequireInvalid(assembler.Add(16, absl::string_view(bytes).substr(16, 16 + 4)),
                 {"larger than the limit of 16 bytes"});
}

TEST_CASE("ChunkReassembler refuses a chunk that is not a whole number of floats", "[tensor]") {
  const std::string bytes = Bytes(Ramp(4));
  const size_t size = GENERATE(1, 2, 3, 5, 6, 7);
  ChunkReassembler assembler(4, 64);
  INFO("chunk size " << size);
  RequireInvalid(assembler.Add(0, absl::string_view(bytes).substr(0, size)),
                 {"not a whole number of float32 values"});
}

TEST_CASE("ChunkReassembler refuses bytes past the announced end", "[tensor]") {
  const std::string bytes = Bytes(Ramp(4));
  SECTION("a first chunk longer than the whole payload") {
    ChunkReassembler assembler(3, 64);
    RequireInvalid(assembler.Add(0, bytes), {"runs past the announced size of 12 bytes"});
  }
  SECTION("a chunk after the payload is complete") {
    ChunkReassembler assembler(3, 64);
    REQUIRE(assembler.Add(0, absl::string_view(bytes).substr(0, 12)).ok());
    REQUIRE(assembler.Finish().ok());
    RequireInvalid(assembler.Add(12, absl::string_view(bytes).substr(12, 4)),
                   {"runs past the announced size"});
  }
  SECTION("a zero-value payload takes no bytes at all") {
    ChunkReassembler assembler(0, 64);
    RequireInvalid(assembler.Add(0, absl::string_view(bytes).substr(0, 4)), {"runs past"});
  }
}

TEST_CASE("ChunkReassembler refuses NaN and infinite values naming the value index",
          "[tensor]") {
  struct Case {
    float value;
    const char* word;
  };
  const Case bad = GENERATE(Case{std::numeric_limits<float>::quiet_NaN(), "NaN"},
                            Case{std::numeric_limits<float>::infinity(), "infinite"},
                            Case{-std::numeric_limits<float>::infinity(), "infinite"});
  std::vector<float> payload = Ramp(8);
  payload[6] = bad.value;  // in the second chunk, at global index 6
  const std::string bytes = Bytes(payload);
  ChunkReassembler assembler(payload.size(), 16);
  REQUIRE(assembler.Add(0, absl::string_view(bytes).substr(0, 16)).ok());
  INFO("value " << bad.value);
  RequireInvalid(assembler.Add(16, absl::string_view(bytes).substr(16, 16)),
                 {"value 6 is", bad.word});
  // A refused chunk is not counted as received.
  CHECK(assembler.bytes_received() == 16);
}

TEST_CASE("ChunkReassembler refuses a signalling NaN", "[tensor]") {
  std::vector<float> payload = Ramp(2);
  payload[0] = std::numeric_limits<float>::signaling_NaN();
  ChunkReassembler assembler(payload.size(), 64);
  RequireInvalid(assembler.Add(0, AsBytes(payload)), {"value 0 is NaN"});
}

TEST_CASE("ChunkReassembler Finish on a truncated stream is InvalidArgument", "[tensor]") {
  const std::string bytes = Bytes(Ramp(4));
  SECTION("nothing received") {
    ChunkReassembler assembler(4, 64);
    RequireInvalid(assembler.Finish(), {"truncated", "received 0 of 16 bytes"});
  }
  SECTION("part received") {
    ChunkReassembler assembler(4, 64);
    REQUIRE(assembler.Add(0, absl::string_view(bytes).substr(0, 12)).ok());
    RequireInvalid(assembler.Finish(), {"truncated", "received 12 of 16 bytes"});
  }
}

TEST_CASE("ChunkReassembler of zero values finishes without any chunk", "[tensor]") {
  ChunkReassembler assembler(0, 64);
  CHECK(assembler.Finish().ok());
  CHECK(assembler.Release().empty());
}

TEST_CASE("ChunkReassembler refuses every call after a refused chunk", "[tensor]") {
  const std::string bytes = Bytes(Ramp(4));
  ChunkReassembler assembler(4, 64);
  REQUIRE(assembler.Add(0, absl::string_view(bytes).substr(0, 4)).ok());
  // Refused: gap.
  REQUIRE(assembler.Add(8, absl::string_view(bytes).substr(8, 4)).code() ==
          absl::StatusCode::kInvalidArgument);
  // The correct next chunk is refused too: the stream is poisoned.
  absl::Status next = assembler.Add(4, absl::string_view(bytes).substr(4, 12));
  CHECK_FALSE(next.ok());
  CHECK(next.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(assembler.bytes_received() == 4);
  // And Finish never reports success.
  absl::Status finish = assembler.Finish();
  CHECK_FALSE(finish.ok());
  CHECK(finish.code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("ChunkReassembler stays refused after a NaN chunk even if the rest is valid",
          "[tensor]") {
  std::vector<float> payload = Ramp(4);
  payload[1] = std::numeric_limits<float>::quiet_NaN();
  const std::string bad = Bytes(payload);
  const std::string good = Bytes(Ramp(4));
  ChunkReassembler assembler(4, 64);
  REQUIRE(assembler.Add(0, absl::string_view(bad).substr(0, 8)).code() ==
          absl::StatusCode::kInvalidArgument);
  // Re-sending a clean chunk at offset 0 must not revive the stream.
  CHECK_FALSE(assembler.Add(0, good).ok());
  CHECK_FALSE(assembler.Finish().ok());
}

TEST_CASE("ChunkReassembler error messages name the chunk number and offset", "[tensor]") {
  const std::string bytes = Bytes(Ramp(6));
  ChunkReassembler assembler(6, 64);
  REQUIRE(assembler.Add(0, absl::string_view(bytes).substr(0, 8)).ok());
  REQUIRE(assembler.Add(8, absl::string_view(bytes).substr(8, 8)).ok());
  RequireInvalid(assembler.Add(16, absl::string_view(bytes).substr(16, 3)),
                 {"chunk 2 at offset 16 (3 bytes)"});
}

// --- Layout -----------------------------------------------------------------------------

TEST_CASE("TensorSpec NumValues multiplies the shape", "[tensor]") {
  CHECK(TensorSpec{"w", {32, 30}}.NumValues() == 960);
  CHECK(TensorSpec{"b", {32}}.NumValues() == 32);
  CHECK(TensorSpec{"s", {}}.NumValues() == 1);  // a scalar
  CHECK(TensorSpec{"z", {4, 0}}.NumValues() == 0);
}

TEST_CASE("ParameterLayout TotalValues sums every tensor and Fingerprint lists them in order",
          "[tensor]") {
  ParameterLayout layout({{"fc0.weight", {32, 30}},
                          {"fc0.bias", {32}},
                          {"fc1.weight", {2, 32}},
                          {"fc1.bias", {2}}});
  CHECK(layout.tensors().size() == 4);
  CHECK(layout.TotalValues() == 32 * 30 + 32 + 2 * 32 + 2);
  CHECK(layout.Fingerprint() == "fc0.weight[32,30];fc0.bias[32];fc1.weight[2,32];fc1.bias[2]");
}

TEST_CASE("ParameterLayout fingerprints differ for different architectures", "[tensor]") {
  ParameterLayout a({{"fc0.weight", {32, 30}}, {"fc0.bias", {32}}});
  ParameterLayout b({{"fc0.weight", {30, 32}}, {"fc0.bias", {32}}});  // same size
  ParameterLayout c({{"fc0.bias", {32}}, {"fc0.weight", {32, 30}}});  // other order
  CHECK(a.TotalValues() == b.TotalValues());
  CHECK(a.Fingerprint() != b.Fingerprint());
  CHECK(a.Fingerprint() != c.Fingerprint());
  ParameterLayout a2({{"fc0.weight", {32, 30}}, {"fc0.bias", {32}}});
  CHECK(a.Fingerprint() == a2.Fingerprint());
}

TEST_CASE("An empty ParameterLayout has no values and an empty fingerprint", "[tensor]") {
  ParameterLayout layout;
  CHECK(layout.TotalValues() == 0);
  CHECK(layout.Fingerprint().empty());
}

TEST_CASE("AsBytes views a float vector as its little-endian wire bytes", "[tensor]") {
  const std::vector<float> values = {1.0f, -2.0f};
  absl::string_view bytes = AsBytes(values);
  REQUIRE(bytes.size() == 8);
  // 1.0f = 0x3F800000, -2.0f = 0xC0000000 (little-endian).
  const std::string expected("\x00\x00\x80\x3F\x00\x00\x00\xC0", 8);
  CHECK(std::string(bytes) == expected);
}

TEST_CASE("CheckFinite accepts finite values and names the first non-finite one", "[tensor]") {
  std::vector<float> values = {0.0f, -1.0f, 3.5f, std::numeric_limits<float>::max()};
  CHECK(CheckFinite(values.data(), values.size()).ok());
  CHECK(CheckFinite(nullptr, 0).ok());

  values[2] = std::numeric_limits<float>::infinity();
  values[3] = std::numeric_limits<float>::quiet_NaN();
  RequireInvalid(CheckFinite(values.data(), values.size()), {"value 2 is infinite"});
  // first_index offsets the reported index.
  RequireInvalid(CheckFinite(values.data(), values.size(), 100), {"value 102 is infinite"});
  RequireInvalid(CheckFinite(values.data() + 3, 1, 3), {"value 3 is NaN"});

  values[2] = -std::numeric_limits<float>::infinity();
  RequireInvalid(CheckFinite(values.data(), 3), {"value 2 is infinite"});
}

}  // namespace
}  // namespace cohort::tensor
