#ifndef COHORT_COMMON_DATA_IDX_H_
#define COHORT_COMMON_DATA_IDX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/data/csv.h"

// IDX files (the format of MNIST and Fashion-MNIST): a 4-byte magic 00 00 <type> <ndims>, then
// ndims big-endian uint32 dimensions, then the values row-major. Only unsigned bytes (type 0x08)
// are supported. Files may be gzipped (detected by the gzip magic 1f 8b).
namespace cohort::data {

// Largest IDX payload (decompressed) read or written: 1 GiB. Fashion-MNIST's training images
// are 47 MB.
inline constexpr int64_t kMaxIdxBytes = int64_t{1} << 30;

// An IDX array of unsigned bytes. dims[0] counts the items (images, labels); each item has
// ItemSize() values.
struct IdxArray {
  std::vector<int64_t> dims;
  std::string values;  // row-major, one byte per value

  int64_t items() const { return dims.empty() ? 0 : dims[0]; }
  int64_t ItemSize() const;
  // The items at `indices`, in that order.
  IdxArray Take(const std::vector<int64_t>& indices) const;
};

// Parses an uncompressed IDX file. Errors name `source` and say what is wrong (magic, type,
// dimensions, size).
absl::StatusOr<IdxArray> ParseIdx(absl::string_view bytes, const std::string& source);
// The IDX encoding of `array` (uncompressed).
std::string EncodeIdx(const IdxArray& array);

// Reads an IDX file, gunzipping it first when it starts with the gzip magic.
absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path);
// Writes `array` durably, gzipped (deterministic bytes) or not.
absl::Status WriteIdxFile(const std::string& path, const IdxArray& array, bool gzip);

// gzip decompression bounded by kMaxIdxBytes; errors name `source`.
absl::StatusOr<std::string> Gunzip(absl::string_view bytes, const std::string& source);
absl::StatusOr<std::string> Gzip(absl::string_view bytes);

// Labelled images: an IDX3 image file [count, rows, cols] and an IDX1 label file [count] with
// the same count.
struct IdxImages {
  IdxArray images;
  IdxArray labels;
};
absl::StatusOr<IdxImages> ReadIdxImages(const std::string& images_path,
                                        const std::string& labels_path);

// The images as a Dataset: one row per image, pixels scaled from 0..255 to [0, 1] (value / 255),
// shape {1, rows, cols}, the label bytes as class indices.
Dataset ImagesToDataset(const IdxImages& images);
// ReadIdxImages then ImagesToDataset.
absl::StatusOr<Dataset> LoadIdxImages(const std::string& images_path,
                                      const std::string& labels_path);

// Optional standardization of image pixels with the site's own training statistics: one mean
// and one standard deviation over every pixel of every training image (per-pixel statistics
// would blow up the always-dark border pixels). A constant image set gets a scale of 1.
class PixelNormalizer {
 public:
  static PixelNormalizer Fit(const Dataset& train);
  void Apply(Dataset* data) const;

 private:
  double mean_ = 0;
  double scale_ = 1;
};

}  // namespace cohort::data

#endif  // COHORT_COMMON_DATA_IDX_H_
