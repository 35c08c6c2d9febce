#include "common/model/checkpoint.h"

#include <catch2/catch.hpp>

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
  auto inst = EncodeArchive({{"archive/data.pkl", std::string("\x80\x02ios\nsystem\n.", 16)}});
  REQUIRE(inst.ok());
  RequireInvalid(DecodeCheckpoint(*inst, SmallLayout()).status(), {"unsupported pickle opcode"});
  // A pickle that stops before producing a dict.
  auto empty = EncodeArchive({{"archive/data.pkl", std::string("\x80\x02N.", 4)}});
  REQUIRE(empty.ok());
  RequireInvalid(DecodeCheckpoint(*empty, SmallLayout()).status(), {"dict of tensors"});
}

TEST_CASE("A missing checkpoint file is NotFound with its path", "[checkpoint]") {
  auto values = ReadCheckpoint("/nonexistent/round-000001.pt", SmallLayout());
  CHECK(values.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(values.status().message()), Catch::Contains("round-000001.pt"));
}

}  // namespace cohort::model
