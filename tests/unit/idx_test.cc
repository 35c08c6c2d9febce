// Unit tests for common/data/idx: IDX parsing and encoding, gzip, labelled image files and
// their validation (corrupt, truncated, mismatched files), pixel scaling and normalization.
#include "common/data/idx.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/util/files.h"
#include "tests/support/status_assertions.h"
#include "tests/support/temp_dir.h"

namespace cohort::data {
namespace {

using ::cohort::testing::RequireInvalid;

// `count` images of rows x cols pixels; pixel p of image i is (i * 7 + p) % 256. Label i % 10.
IdxImages MakeImages(int64_t count, int64_t rows, int64_t cols) {
  IdxImages out;
  out.images.dims = {count, rows, cols};
  out.labels.dims = {count};
  for (int64_t i = 0; i < count; ++i) {
    for (int64_t p = 0; p < rows * cols; ++p) {
      out.images.values.push_back(static_cast<char>((i * 7 + p) % 256));
    }
    out.labels.values.push_back(static_cast<char>(i % 10));
  }
  return out;
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  REQUIRE(WriteFileDurably(path, bytes).ok());
}

}  // namespace

TEST_CASE("IDX encoding round-trips through ParseIdx", "[data][idx]") {
  IdxImages images = MakeImages(5, 3, 4);
  std::string bytes = EncodeIdx(images.images);
  REQUIRE(bytes.size() == 16 + 5 * 12);
  CHECK(bytes.substr(0, 4) == std::string("\x00\x00\x08\x03", 4));
  CHECK(bytes.substr(4, 4) == std::string("\x00\x00\x00\x05", 4));
  auto parsed = ParseIdx(bytes, "x.idx");
  REQUIRE(parsed.ok());
  CHECK(parsed->dims == std::vector<int64_t>{5, 3, 4});
  CHECK(parsed->values == images.images.values);
  CHECK(parsed->ItemSize() == 12);
}

TEST_CASE("IdxArray Take picks items in the given order", "[data][idx]") {
  IdxImages images = MakeImages(4, 2, 2);
  IdxArray taken = images.images.Take({3, 0});
  CHECK(taken.dims == std::vector<int64_t>{2, 2, 2});
  CHECK(taken.values == images.images.values.substr(12, 4) + images.images.values.substr(0, 4));
}

TEST_CASE("ReadIdxFile reads gzipped and plain files alike", "[data][idx]") {
  testing::TempDir dir;
  IdxImages images = MakeImages(20, 28, 28);
  REQUIRE(WriteIdxFile(dir.File("plain.idx"), images.images, /*gzip=*/false).ok());
  REQUIRE(WriteIdxFile(dir.File("packed.idx.gz"), images.images, /*gzip=*/true).ok());
  auto packed_bytes = ReadFileToString(dir.File("packed.idx.gz"));
  REQUIRE(packed_bytes.ok());
  CHECK(packed_bytes->substr(0, 2) == "\x1f\x8b");
  for (const char* name : {"plain.idx", "packed.idx.gz"}) {
    INFO(name);
    auto read = ReadIdxFile(dir.File(name));
    REQUIRE(read.ok());
    CHECK(read->dims == images.images.dims);
    CHECK(read->values == images.images.values);
  }
}

TEST_CASE("Gzip output is deterministic and Gunzip reads concatenated members", "[data][idx]") {
  auto a = Gzip("hello ");
  auto b = Gzip("world");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a == *Gzip("hello "));
  auto both = Gunzip(*a + *b, "two.gz");
  REQUIRE(both.ok());
  CHECK(*both == "hello world");
}

TEST_CASE("ParseIdx refuses a wrong magic, type or dimension count naming the file",
          "[data][idx]") {
  std::string good = EncodeIdx(MakeImages(2, 2, 2).images);
  SECTION("magic") {
    std::string bad = good;
    bad[0] = 'P';
    RequireInvalid(ParseIdx(bad, "f.idx").status(), {"f.idx", "not a valid IDX file",
                                                     "magic bytes 50 00 08 03"});
  }
  SECTION("value type") {
    std::string bad = good;
    bad[2] = 0x0D;
    RequireInvalid(ParseIdx(bad, "f.idx").status(), {"f.idx", "0x0d (float) is not supported"});
  }
  SECTION("zero dimensions") {
    std::string bad = good;
    bad[3] = 0;
    RequireInvalid(ParseIdx(bad, "f.idx").status(), {"f.idx", "0 dimensions"});
  }
  SECTION("too short for a header") {
    RequireInvalid(ParseIdx(std::string("\x00\x00", 2), "f.idx").status(), {"only 2 bytes"});
    RequireInvalid(ParseIdx(good.substr(0, 10), "f.idx").status(), {"truncated header"});
  }
}

TEST_CASE("ParseIdx refuses truncated data and trailing bytes with the sizes", "[data][idx]") {
  std::string good = EncodeIdx(MakeImages(2, 2, 2).images);
  RequireInvalid(ParseIdx(good.substr(0, good.size() - 1), "f.idx").status(),
                 {"f.idx", "dimensions 2x2x2 need 8 values (24 bytes)", "has 23 bytes",
                  "truncated"});
  RequireInvalid(ParseIdx(good + "x", "f.idx").status(), {"has 25 bytes", "trailing data"});
}

TEST_CASE("ParseIdx refuses dimensions beyond the size limit before allocating", "[data][idx]") {
  // 3 dimensions of 65536: 2^48 values, far beyond the limit, in a 16-byte file.
  std::string huge("\x00\x00\x08\x03\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00", 16);
  RequireInvalid(ParseIdx(huge, "huge.idx").status(), {"huge.idx", "exceed the limit"});
}

TEST_CASE("ParseIdx bounds the item size of an empty array", "[data][idx]") {
  // Found by idx_fuzz: 0 x 4294967295 x 4294967295 holds no values, yet its item size
  // (2^64 - 2^33 + 1) overflowed int64 in ItemSize().
  std::string empty_huge(
      "\x00\x00\x08\x03\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff", 16);
  RequireInvalid(ParseIdx(empty_huge, "e.idx").status(), {"e.idx", "exceed the limit"});
  // An empty array of a sane item size still parses.
  IdxArray empty;
  empty.dims = {0, 28, 28};
  auto parsed = ParseIdx(EncodeIdx(empty), "e.idx");
  REQUIRE(parsed.ok());
  CHECK(parsed->dims == std::vector<int64_t>{0, 28, 28});
  CHECK(parsed->ItemSize() == 784);
  CHECK(parsed->values.empty());
}

TEST_CASE("ReadIdxFile refuses corrupt and truncated gzip data", "[data][idx]") {
  testing::TempDir dir;
  auto packed = Gzip(EncodeIdx(MakeImages(50, 8, 8).images));
  REQUIRE(packed.ok());
  WriteBytes(dir.File("cut.gz"), packed->substr(0, packed->size() / 2));
  RequireInvalid(ReadIdxFile(dir.File("cut.gz")).status(), {"cut.gz", "truncated gzip data"});
  std::string corrupt = *packed;
  for (size_t i = 12; i < 40; ++i) corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  WriteBytes(dir.File("corrupt.gz"), corrupt);
  RequireInvalid(ReadIdxFile(dir.File("corrupt.gz")).status(), {"corrupt.gz"});
}

TEST_CASE("ReadIdxFile of a missing file is NotFound with its path", "[data][idx]") {
  auto read = ReadIdxFile("/nonexistent/images.idx");
  CHECK(read.status().code() == absl::StatusCode::kNotFound);
  CHECK(std::string(read.status().message()).find("/nonexistent/images.idx") !=
        std::string::npos);
}

TEST_CASE("ReadIdxImages checks image and label dimensions and that the counts match",
          "[data][idx]") {
  testing::TempDir dir;
  IdxImages images = MakeImages(6, 4, 4);
  REQUIRE(WriteIdxFile(dir.File("images"), images.images, false).ok());
  REQUIRE(WriteIdxFile(dir.File("labels"), images.labels, true).ok());
  SECTION("good pair") {
    auto read = ReadIdxImages(dir.File("images"), dir.File("labels"));
    REQUIRE(read.ok());
    CHECK(read->images.items() == 6);
    CHECK(read->labels.values == images.labels.values);
  }
  SECTION("fewer labels than images") {
    REQUIRE(WriteIdxFile(dir.File("five"), images.labels.Take({0, 1, 2, 3, 4}), false).ok());
    RequireInvalid(ReadIdxImages(dir.File("images"), dir.File("five")).status(),
                   {"five", "5 labels for the 6 images", "must match"});
  }
  SECTION("images and labels swapped") {
    RequireInvalid(ReadIdxImages(dir.File("labels"), dir.File("images")).status(),
                   {"labels", "not an IDX image file", "1 dimensions"});
  }
  SECTION("labels with two dimensions") {
    RequireInvalid(ReadIdxImages(dir.File("images"), dir.File("images")).status(),
                   {"not an IDX label file", "3 dimensions (6x4x4)"});
  }
  SECTION("no images") {
    IdxArray empty;
    empty.dims = {0, 4, 4};
    REQUIRE(WriteIdxFile(dir.File("empty"), empty, false).ok());
    RequireInvalid(ReadIdxImages(dir.File("empty"), dir.File("labels")).status(),
                   {"empty", "no images"});
  }
}

TEST_CASE("ImagesToDataset scales pixels to 0..1 and keeps the image shape", "[data][idx]") {
  IdxImages images = MakeImages(3, 2, 5);
  images.images.values[0] = static_cast<char>(255);
  images.images.values[1] = 0;
  Dataset data = ImagesToDataset(images);
  CHECK(data.rows() == 3);
  CHECK(data.cols() == 10);
  CHECK(data.shape == std::vector<int64_t>{1, 2, 5});
  CHECK(data.labels == std::vector<int64_t>{0, 1, 2});
  CHECK(data.features[0] == 1.0f);
  CHECK(data.features[1] == 0.0f);
  CHECK(data.features[12] == Approx(((1 * 7 + 2) % 256) / 255.0));
  for (float v : data.features) CHECK((v >= 0.0f && v <= 1.0f));
  // Subsets keep the shape.
  CHECK(data.Subset({2}).shape == data.shape);
}

TEST_CASE("PixelNormalizer standardizes with the training pixels' mean and deviation",
          "[data][idx]") {
  Dataset train = ImagesToDataset(MakeImages(40, 4, 4));
  Dataset test = ImagesToDataset(MakeImages(5, 4, 4));
  PixelNormalizer normalizer = PixelNormalizer::Fit(train);
  Dataset fitted = train;
  normalizer.Apply(&fitted);
  double sum = 0, squares = 0;
  for (float v : fitted.features) sum += v;
  const double mean = sum / fitted.features.size();
  for (float v : fitted.features) squares += (v - mean) * (v - mean);
  CHECK(mean == Approx(0).margin(1e-5));
  CHECK(std::sqrt(squares / fitted.features.size()) == Approx(1).epsilon(1e-4));
  // The test set is mapped with the training statistics, not its own.
  Dataset mapped = test;
  normalizer.Apply(&mapped);
  CHECK(mapped.features[0] == Approx(fitted.features[0]).epsilon(1e-6));
}

}  // namespace cohort::data
