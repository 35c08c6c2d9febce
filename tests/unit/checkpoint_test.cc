#include "common/model/checkpoint.h"

#include <catch2/catch.hpp>
#include <limits>

#include "common/model/models.h"
#include "common/util/files.h"
#include "tests/support/status_assertions.h"
#include "tests/support/temp_dir.h"

namespace cohort::model {
namespace {

using ::cohort::testing::RequireInvalid;

tensor::ParameterLayout SmallLayout() {
  return tensor::ParameterLayout({{"fc0.weight", {2, 3}}, {"fc0.bias", {2}}});
}

std::vector<float> SmallValues() { return {1.5f, -2.0f, 3.25f, 0.0f, -0.5f, 7.0f, 0.125f, -1.0f}; }

// Protocol-2 pickle bytes of a string (BINUNICODE).
std::string PickleString(const std::string& s) {
  std::string out = "X";
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((s.size() >> (8 * i)) & 0xff));
  return out + s;
}

// torch._utils._rebuild_tensor_v2 of FloatStorage `key` at `offset` (LONG1, 8 bytes), with
// the given size and contiguous stride (each below 256).
std::string PickleTensor(const std::string& key, int64_t offset, const std::string& size,
                         const std::string& stride) {
  std::string out = "ctorch._utils\n_rebuild_tensor_v2\n(";
  out += "(" + PickleString("storage") + "ctorch\nFloatStorage\n" + PickleString(key) +
         PickleString("cpu") + "K\x06tQ";
  out += "\x8a\x08";
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>((static_cast<uint64_t>(offset) >> (8 * i)) & 0xff));
  }
  out += "(" + size + "t(" + stride + "t\x89tR";
  return out;
}

// SmallLayout's state dict with fc0.weight stored at `weight_offset` of its storage.
std::string SmallArchive(int64_t weight_offset) {
  const std::string pickle =
      "\x80\x02}(" + PickleString("fc0.weight") +
      PickleTensor("0", weight_offset, "K\x02K\x03", "K\x03K\x01") + PickleString("fc0.bias") +
      PickleTensor("1", 0, "K\x02", "K\x01") + "u.";
  const std::vector<float> weight = {1, 2, 3, 4, 5, 6};
  const std::vector<float> bias = {7, 8};
  auto archive = EncodeArchive({{"archive/data.pkl", pickle},
                                {"archive/data/0", std::string(tensor::AsBytes(weight))},
                                {"archive/data/1", std::string(tensor::AsBytes(bias))}});
  REQUIRE(archive.ok());
  return *archive;
}

}  // namespace

TEST_CASE("A checkpoint round-trips every value exactly", "[checkpoint]") {
  auto bytes = EncodeCheckpoint(SmallLayout(), SmallValues());
  REQUIRE(bytes.ok());
  auto values = DecodeCheckpoint(*bytes, SmallLayout());
  REQUIRE(values.ok());
  CHECK(*values == SmallValues());
}

TEST_CASE("A checkpoint is a zip archive with PyTorch's records", "[checkpoint]") {
  auto bytes = EncodeCheckpoint(SmallLayout(), SmallValues());
  REQUIRE(bytes.ok());
  CHECK(bytes->substr(0, 4) == std::string("PK\x03\x04", 4));
  for (const char* record : {"archive/data.pkl", "archive/data/0", "archive/data/1",
                             "archive/version", "archive/byteorder"}) {
    CHECK(bytes->find(record) != std::string::npos);
  }
}

TEST_CASE("Checkpoints of a built-in model survive a write to disk and a read back",
          "[checkpoint]") {
  testing::TempDir dir;
  config::ModelSpec spec;
  spec.arch = "mlp";
  spec.inputs = 30;
  spec.hidden = {32};
  spec.classes = 2;
  tensor::ParameterLayout layout = LayoutFor(spec);
  std::vector<float> values = InitialParameters(spec, 3);
  REQUIRE(static_cast<int64_t>(values.size()) == layout.TotalValues());
  REQUIRE(WriteCheckpoint(dir.File("model.pt"), layout, values).ok());
  auto read = ReadCheckpoint(dir.File("model.pt"), layout);
  REQUIRE(read.ok());
  CHECK(*read == values);
}

TEST_CASE("A state dict saved by Python's torch.save is read", "[checkpoint]") {
  auto values = ReadCheckpoint(testing::SourcePath("tests/data/torch_save_linear_3x2.pt"),
                               tensor::ParameterLayout({{"fc0.weight", {2, 3}},
                                                        {"fc0.bias", {2}}}));
  INFO(values.status().ToString());
  REQUIRE(values.ok());
  const std::vector<float> expected = {-0.004322517663240433f, 0.3097158372402191f,
                                       -0.4751853346824646f,  -0.4248946011066437f,
                                       -0.2223689705133438f,  0.15482072532176971f,
                                       -0.011439144611358643f, 0.45777493715286255f};
  CHECK(*values == expected);
}

TEST_CASE("A checkpoint that does not match the model is refused with the reason",
          "[checkpoint]") {
  auto bytes = EncodeCheckpoint(SmallLayout(), SmallValues());
  REQUIRE(bytes.ok());
  RequireInvalid(
      DecodeCheckpoint(*bytes, tensor::ParameterLayout({{"fc0.weight", {3, 2}}, {"fc0.bias", {2}}}))
          .status(),
      {"fc0.weight has the wrong shape"});
  RequireInvalid(
      DecodeCheckpoint(*bytes, tensor::ParameterLayout({{"fc9.weight", {2, 3}}, {"fc0.bias", {2}}}))
          .status(),
      {"fc9.weight is missing"});
  RequireInvalid(DecodeCheckpoint(*bytes, tensor::ParameterLayout({{"fc0.weight", {2, 3}}}))
                     .status(),
                 {"has 2 tensors, the model has 1"});
  RequireInvalid(EncodeCheckpoint(SmallLayout(), {1.0f}).status(), {"needs 8"});
}

TEST_CASE("A damaged checkpoint is refused, never half-read", "[checkpoint]") {
  auto bytes = EncodeCheckpoint(SmallLayout(), SmallValues());
  REQUIRE(bytes.ok());
  // Truncated: the zip directory is gone.
  RequireInvalid(DecodeCheckpoint(bytes->substr(0, bytes->size() / 2), SmallLayout()).status(),
                 {"not a valid checkpoint"});
  // A flipped bit in the tensor data fails the CRC.
  std::string flipped = *bytes;
  size_t at = flipped.find("archive/data/0");
  REQUIRE(at != std::string::npos);
  // Data starts at the next 64-byte boundary after the local header.
  size_t data = ((at + 14 + 4 + 63) / 64) * 64;
  flipped[data + 1] ^= 0x10;
  RequireInvalid(DecodeCheckpoint(flipped, SmallLayout()).status(), {"CRC"});
  // Garbage.
  RequireInvalid(DecodeCheckpoint(std::string(100, 'x'), SmallLayout()).status(),
                 {"not a valid checkpoint"});
  RequireInvalid(DecodeCheckpoint("", SmallLayout()).status(), {"too short"});
}

TEST_CASE("A checkpoint pickle that would call anything but tensor rebuilding is refused",
          "[checkpoint]") {
  // {"x": os.system("true")} as a protocol-2 pickle: a checkpoint is data, never code.
  static constexpr char kPickle[] =
      "\x80\x02}(X\x01\x00\x00\x00x"
      "cos\nsystem\nX\x04\x00\x00\x00true\x85Ru.";
  const std::string pickle(kPickle, sizeof(kPickle) - 1);
  auto archive = EncodeArchive({{"archive/data.pkl", pickle}, {"archive/version", "3\n"}});
  REQUIRE(archive.ok());
  RequireInvalid(DecodeCheckpoint(*archive, SmallLayout()).status(),
                 {"refusing to call os.system"});
  // An opcode outside the state-dict subset (INST) is refused too.
  static constexpr char kInst[] = "\x80\x02ios\nsystem\n.";
  auto inst = EncodeArchive({{"archive/data.pkl", std::string(kInst, sizeof(kInst) - 1)}});
  REQUIRE(inst.ok());
  RequireInvalid(DecodeCheckpoint(*inst, SmallLayout()).status(), {"unsupported pickle opcode"});
  // A pickle that stops before producing a dict.
  auto empty = EncodeArchive({{"archive/data.pkl", std::string("\x80\x02N.", 4)}});
  REQUIRE(empty.ok());
  RequireInvalid(DecodeCheckpoint(*empty, SmallLayout()).status(), {"dict of tensors"});
}

TEST_CASE("A tensor offset whose byte count wraps around is refused", "[checkpoint]") {
  // Found by reading the decoder next to checkpoint_fuzz: offset 2^62 - 1 made the byte
  // offset 2^64 - 4, the bounds check wrapped around, and the copy started 4 bytes before
  // the storage.
  auto values = DecodeCheckpoint(SmallArchive(0), SmallLayout());
  REQUIRE(values.ok());
  CHECK(*values == std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8});
  for (int64_t offset : {(int64_t{1} << 62) - 1, int64_t{1} << 62, int64_t{1}, int64_t{7},
                         std::numeric_limits<int64_t>::max()}) {
    INFO("offset " << offset);
    RequireInvalid(DecodeCheckpoint(SmallArchive(offset), SmallLayout()).status(),
                   {"storage of fc0.weight is too short"});
  }
}

TEST_CASE("Pickles that would exhaust memory, the stack or time are refused", "[checkpoint]") {
  // Found while hardening the unpickler behind checkpoint_fuzz (libFuzzer's 4 KB inputs do not
  // reach the last two): each was a few hundred bytes to a megabyte of data.pkl.
  auto decode = [](const std::string& pickle) {
    auto archive = EncodeArchive({{"archive/data.pkl", pickle}});
    REQUIRE(archive.ok());
    return DecodeCheckpoint(*archive, SmallLayout()).status();
  };
  // A tuple of two memo copies of the previous tuple, memoized again, 40 times: 2^40 values
  // from 290 bytes (it ran out of memory).
  std::string memo_bomb = std::string("\x80\x02K\x01\x85q\x00", 7);
  for (int i = 0; i < 40; ++i) memo_bomb += std::string("h\x00h\x00\x86q\x00", 7);
  RequireInvalid(decode(memo_bomb + "."), {"values through its memo"});
  // A 64 KB string memoized under 20000 keys: 1.3 GB of copies from 164 KB of pickle.
  std::string string_bomb = "\x80\x02" + PickleString(std::string(1 << 16, 's'));
  for (uint32_t key = 0; key < 20000; ++key) {
    string_bomb += 'r';
    for (int i = 0; i < 4; ++i) string_bomb.push_back(static_cast<char>((key >> (8 * i)) & 0xff));
  }
  RequireInvalid(decode(string_bomb + "."), {"values through its memo"});
  // A tuple nested 100000 deep (its destructor overflowed the stack).
  RequireInvalid(decode("\x80\x02K\x01" + std::string(100000, '\x85') + "."),
                 {"nests lists deeper than 32"});
  // A MARK followed by 200000 items: popped in linear time (it was quadratic), then refused
  // for not being a state dict.
  RequireInvalid(decode("\x80\x02(" + std::string(200000, 'N') + "t."), {"dict of tensors"});
}

TEST_CASE("A missing checkpoint file is NotFound with its path", "[checkpoint]") {
  auto values = ReadCheckpoint("/nonexistent/round-000001.pt", SmallLayout());
  CHECK(values.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(values.status().message()), Catch::Contains("round-000001.pt"));
}

}  // namespace cohort::model
