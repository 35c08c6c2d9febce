#ifndef COHORT_COMMON_MODEL_CHECKPOINT_H_
#define COHORT_COMMON_MODEL_CHECKPOINT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/tensor/layout.h"

// Checkpoints in PyTorch's zip serialization format, written and read without LibTorch, so
// that the coordinator needs no LibTorch at all. The file is a zip archive (entries stored,
// 64-byte aligned) with `<name>/data.pkl` (a protocol-2 pickle of a dict
// {parameter name: tensor}, each tensor rebuilt by torch._utils._rebuild_tensor_v2 from a
// FloatStorage), `<name>/data/<i>` (raw little-endian float32 values), `<name>/version` and
// `<name>/byteorder`. Python's torch.load and LibTorch's torch::pickle_load read it.
namespace cohort::model {

// Serialises `values` (flat, in `layout` order) as a checkpoint.
absl::StatusOr<std::string> EncodeCheckpoint(const tensor::ParameterLayout& layout,
                                             const std::vector<float>& values);

// Parses a checkpoint and returns its values in `layout` order. Every tensor of the layout
// must be present with the right shape and dtype float32; extra entries are refused. Besides
// our own files this reads float32 state dicts saved by Python's torch.save.
absl::StatusOr<std::vector<float>> DecodeCheckpoint(const std::string& bytes,
                                                    const tensor::ParameterLayout& layout);

// A zip archive of the given records (name, bytes), stored and 64-byte aligned as PyTorch
// writes them. The building block of EncodeCheckpoint; tests use it to craft archives.
absl::StatusOr<std::string> EncodeArchive(
    const std::vector<std::pair<std::string, std::string>>& records);

// EncodeCheckpoint written atomically (temp file, fsync, rename, fsync of the directory).
absl::Status WriteCheckpoint(const std::string& path, const tensor::ParameterLayout& layout,
                             const std::vector<float>& values);
absl::StatusOr<std::vector<float>> ReadCheckpoint(const std::string& path,
                                                  const tensor::ParameterLayout& layout);

}  // namespace cohort::model

#endif  // COHORT_COMMON_MODEL_CHECKPOINT_H_
