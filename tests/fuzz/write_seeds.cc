// Writes the binary and generated seeds of tests/fuzz/corpus/ with the code's own encoders
// (EncodeIdx, Gzip, EncodeCheckpoint, FormatEvaluationReport) and the chunk streams of
// chunk_reassembler_fuzz.cc. Usage: fuzz_write_seeds <corpus dir>. The text seeds (configs,
// CSV) are copied from the repository by scripts/fuzz.sh --write-seeds.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/data/idx.h"
#include "common/model/checkpoint.h"
#include "common/state/evaluation_report.h"
#include "common/tensor/layout.h"

namespace {

namespace fs = std::filesystem;

void Write(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

template <typename T>
T Check(absl::StatusOr<T> value) {
  if (!value.ok()) {
    std::fprintf(stderr, "%s\n", value.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(value);
}

void WriteIdxSeeds(const fs::path& dir) {
  cohort::data::IdxArray images;
  images.dims = {3, 2, 2};
  images.values = std::string("\x00\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xff", 12);
  cohort::data::IdxArray labels;
  labels.dims = {3};
  labels.values = std::string("\x00\x01\x09", 3);
  const std::string raw_images = cohort::data::EncodeIdx(images);
  const std::string raw_labels = cohort::data::EncodeIdx(labels);
  Write(dir / "images-idx3", raw_images);
  Write(dir / "labels-idx1", raw_labels);
  Write(dir / "images-idx3.gz", Check(cohort::data::Gzip(raw_images)));
  Write(dir / "labels-idx1.gz", Check(cohort::data::Gzip(raw_labels)));
  // Two gzip members, as `cat a.gz b.gz` writes: the reader concatenates them.
  Write(dir / "two-members.gz", Check(cohort::data::Gzip(raw_images.substr(0, 7))) +
                                    Check(cohort::data::Gzip(raw_images.substr(7))));
}

void WriteCheckpointSeeds(const fs::path& dir) {
  const cohort::tensor::ParameterLayout layout({{"fc0.weight", {2, 3}}, {"fc0.bias", {2}}});
  Write(dir / "linear-3x2.pt",
        Check(cohort::model::EncodeCheckpoint(
            layout, {1.5f, -2.0f, 3.25f, 0.0f, -0.5f, 7.0f, 0.125f, -1.0f})));
}

void WriteEvaluationReportSeeds(const fs::path& dir) {
  cohort::state::SiteEvaluation multiclass;
  multiclass.examples = 600;
  multiclass.loss = 0.4375;
  multiclass.correct = 512;
  Write(dir / "multiclass", cohort::state::FormatEvaluationReport(multiclass));
  cohort::state::SiteEvaluation binary;
  binary.examples = 114;
  binary.loss = 0.154296875;
  binary.correct = 110;
  binary.binary = true;
  binary.true_positives = 41;
  binary.false_positives = 1;
  binary.true_negatives = 69;
  binary.false_negatives = 3;
  Write(dir / "binary-no-auc", cohort::state::FormatEvaluationReport(binary));
  binary.auc = 0.994140625;
  Write(dir / "binary-auc", cohort::state::FormatEvaluationReport(binary));
}

// Streams in chunk_reassembler_fuzz.cc's encoding.
void WriteChunkSeeds(const fs::path& dir) {
  auto header = [](uint8_t type, uint16_t values, uint8_t max_chunk_words) {
    return std::string{static_cast<char>(type), static_cast<char>(values & 0xff),
                       static_cast<char>(values >> 8), static_cast<char>(max_chunk_words)};
  };
  auto chunk = [](const std::string& payload) {
    return std::string{'\0', static_cast<char>(payload.size() & 0xff),
                       static_cast<char>(payload.size() >> 8)} +
           payload;
  };
  auto floats = [](std::vector<float> values) {
    std::string out(values.size() * sizeof(float), '\0');
    std::memcpy(out.data(), values.data(), out.size());
    return out;
  };
  // float32: 6 values in chunks of 4 and 2 values.
  Write(dir / "float-two-chunks", header(0, 6, 4) + chunk(floats({1, 2, 3, 4})) +
                                      chunk(floats({-5.5f, 0.25f})));
  // uint32: 4 words in one chunk; uint64: 2 words in two chunks.
  Write(dir / "uint32-one-chunk", header(1, 4, 8) + chunk(std::string(16, '\x7f')));
  Write(dir / "uint64-two-chunks",
        header(2, 2, 2) + chunk(std::string(8, '\x01')) + chunk(std::string(8, '\xfe')));
  // A chunk at an explicit, wrong offset.
  Write(dir / "float-gap", header(0, 2, 4) + std::string{'\x01'} + std::string(8, '\0') +
                               chunk(floats({1, 2})).substr(1));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const fs::path corpus(argv[1]);
  WriteIdxSeeds(corpus / "idx");
  WriteCheckpointSeeds(corpus / "checkpoint");
  WriteEvaluationReportSeeds(corpus / "evaluation_report");
  WriteChunkSeeds(corpus / "chunk_reassembler");
  return 0;
}
