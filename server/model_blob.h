#ifndef COHORT_SERVER_MODEL_BLOB_H_
#define COHORT_SERVER_MODEL_BLOB_H_

#include <memory>
#include <string>
#include <vector>

#include "common/tensor/layout.h"

namespace cohort::server {

// One immutable model buffer. Its float32 values are also its wire bytes, so every download
// of a round streams from this single copy (shared_ptr keeps it alive while streams run).
struct ModelBlob {
  std::string id;
  std::vector<float> values;
  std::string sha256;  // raw 32 bytes of SHA-256 over the wire bytes

  static std::shared_ptr<const ModelBlob> Make(std::string id, std::vector<float> values);
};

}  // namespace cohort::server

#endif  // COHORT_SERVER_MODEL_BLOB_H_
