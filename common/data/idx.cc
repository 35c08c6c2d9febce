#include "common/data/idx.h"

#include <zlib.h>

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/util/files.h"

namespace cohort::data {
namespace {

constexpr unsigned char kUnsignedByte = 0x08;
constexpr int kMaxDims = 8;

bool IsGzip(absl::string_view bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
         static_cast<unsigned char>(bytes[1]) == 0x8b;
}

std::string Hex(absl::string_view bytes) {
  std::string out;
  for (char c : bytes) {
    absl::StrAppend(&out, out.empty() ? "" : " ",
                    absl::StrFormat("%02x", static_cast<unsigned char>(c)));
  }
  return out;
}

std::string TypeName(unsigned char type) {
  switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown";
  }
}

std::string Shape(const std::vector<int64_t>& dims) { return absl::StrJoin(dims, "x"); }

}  // namespace

int64_t IdxArray::ItemSize() const {
  int64_t size = 1;
  for (size_t i = 1; i < dims.size(); ++i) size *= dims[i];
  return size;
}

IdxArray IdxArray::Take(const std::vector<int64_t>& indices) const {
  IdxArray out;
  out.dims = dims;
  out.dims[0] = static_cast<int64_t>(indices.size());
  const int64_t item = ItemSize();
  out.values.reserve(indices.size() * item);
  for (int64_t i : indices) out.values.append(values, i * item, item);
  return out;
}

absl::StatusOr<IdxArray> ParseIdx(absl::string_view bytes, const std::string& source) {
  auto invalid = [&source](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a valid IDX file: ", why));
  };
  if (bytes.size() < 4) {
    return invalid(absl::StrCat("only ", bytes.size(), " bytes (an IDX header has at least 8)"));
  }
  if (bytes[0] != 0 || bytes[1] != 0) {
    return invalid(absl::StrCat("magic bytes ", Hex(bytes.substr(0, 4)),
                                " (expected 00 00 <type> <dimensions>)"));
  }
  const unsigned char type = static_cast<unsigned char>(bytes[2]);
  const int ndims = static_cast<unsigned char>(bytes[3]);
  if (type != kUnsignedByte) {
    return invalid(absl::StrFormat("value type 0x%02x (%s) is not supported; only unsigned "
                                   "bytes (0x08)", type, TypeName(type)));
  }
  if (ndims < 1 || ndims > kMaxDims) {
    return invalid(absl::StrCat(ndims, " dimensions (expected 1 to ", kMaxDims, ")"));
  }
  const size_t header = 4 + 4 * static_cast<size_t>(ndims);
  if (bytes.size() < header) {
    return invalid(absl::StrCat("truncated header: ", ndims, " dimensions need ", header,
                                " bytes, the file has ", bytes.size()));
  }
  IdxArray array;
  // The product of the non-zero dimensions is bounded too, so that an empty array
  // (a zero dimension) cannot carry an item size that overflows IdxArray::ItemSize().
  int64_t nonzero_product = 1;
  bool empty = false;
  for (int d = 0; d < ndims; ++d) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + 4 + 4 * d);
    const int64_t dim = (int64_t{p[0]} << 24) | (int64_t{p[1]} << 16) | (int64_t{p[2]} << 8) |
                        int64_t{p[3]};
    array.dims.push_back(dim);
    if (dim == 0) {
      empty = true;
      continue;
    }
    if (dim > kMaxIdxBytes / nonzero_product) {
      return invalid(absl::StrCat("dimensions ", Shape(array.dims), "... exceed the limit of ",
                                  kMaxIdxBytes, " values"));
    }
    nonzero_product *= dim;
  }
  const int64_t total = empty ? 0 : nonzero_product;
  const size_t expected = header + static_cast<size_t>(total);
  if (bytes.size() != expected) {
    return invalid(absl::StrCat(
        "dimensions ", Shape(array.dims), " need ", total, " values (", expected,
        " bytes) but the file has ", bytes.size(), " bytes",
        bytes.size() < expected ? " (truncated)" : " (trailing data)"));
  }
  array.values = std::string(bytes.substr(header));
  return array;
}

std::string EncodeIdx(const IdxArray& array) {
  std::string out;
  out.reserve(4 + 4 * array.dims.size() + array.values.size());
  out.push_back(0);
  out.push_back(0);
  out.push_back(static_cast<char>(kUnsignedByte));
  out.push_back(static_cast<char>(array.dims.size()));
  for (int64_t dim : array.dims) {
    const auto d = static_cast<uint32_t>(dim);
    for (int shift : {24, 16, 8, 0}) out.push_back(static_cast<char>((d >> shift) & 0xff));
  }
  out.append(array.values);
  return out;
}

absl::StatusOr<std::string> Gunzip(absl::string_view bytes, const std::string& source) {
  z_stream z;
  std::memset(&z, 0, sizeof(z));
  if (inflateInit2(&z, 15 + 16) != Z_OK) return absl::InternalError("zlib inflateInit2 failed");
  std::string out;
  std::string buffer(1 << 20, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  absl::Status status;
  while (true) {
    z.next_out = reinterpret_cast<Bytef*>(buffer.data());
    z.avail_out = static_cast<uInt>(buffer.size());
    const int rc = inflate(&z, Z_NO_FLUSH);
    out.append(buffer.data(), buffer.size() - z.avail_out);
    if (static_cast<int64_t>(out.size()) > kMaxIdxBytes + 4096) {
      status = absl::InvalidArgumentError(absl::StrCat(
          source, ": gzip data expands beyond the limit of ", kMaxIdxBytes, " bytes"));
      break;
    }
    if (rc == Z_STREAM_END) {
      if (z.avail_in == 0) break;
      // Another gzip member follows (as `cat a.gz b.gz` writes).
      if (inflateReset(&z) != Z_OK) {
        status = absl::InternalError("zlib inflateReset failed");
        break;
      }
      continue;
    }
    if (rc == Z_BUF_ERROR || (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0)) {
      status = absl::InvalidArgumentError(
          absl::StrCat(source, ": truncated gzip data (the stream ends early)"));
      break;
    }
    if (rc != Z_OK) {
      status = absl::InvalidArgumentError(absl::StrCat(
          source, ": corrupt gzip data: ", z.msg != nullptr ? z.msg : zError(rc)));
      break;
    }
  }
  inflateEnd(&z);
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::string> Gzip(absl::string_view bytes) {
  z_stream z;
  std::memset(&z, 0, sizeof(z));
  // windowBits 15 + 16: a gzip wrapper, whose header zlib writes without a timestamp.
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return absl::InternalError("zlib deflateInit2 failed");
  }
  std::string out(deflateBound(&z, static_cast<uLong>(bytes.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return absl::InternalError(absl::StrCat("zlib deflate failed: ", rc));
  return out;
}

absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  if (IsGzip(*bytes)) {
    absl::StatusOr<std::string> raw = Gunzip(*bytes, path);
    if (!raw.ok()) return raw.status();
    return ParseIdx(*raw, path);
  }
  return ParseIdx(*bytes, path);
}

absl::Status WriteIdxFile(const std::string& path, const IdxArray& array, bool gzip) {
  std::string bytes = EncodeIdx(array);
  if (gzip) {
    absl::StatusOr<std::string> packed = Gzip(bytes);
    if (!packed.ok()) return packed.status();
    bytes = std::move(*packed);
  }
  return WriteFileDurably(path, bytes);
}

absl::StatusOr<IdxImages> ReadIdxImages(const std::string& images_path,
                                        const std::string& labels_path) {
  IdxImages out;
  absl::StatusOr<IdxArray> images = ReadIdxFile(images_path);
  if (!images.ok()) return images.status();
  if (images->dims.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        images_path, ": not an IDX image file: ", images->dims.size(),
        " dimensions (", Shape(images->dims), "); images have 3 (count x rows x columns)"));
  }
  if (images->items() == 0 || images->ItemSize() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(images_path, ": no images (dimensions ", Shape(images->dims), ")"));
  }
  absl::StatusOr<IdxArray> labels = ReadIdxFile(labels_path);
  if (!labels.ok()) return labels.status();
  if (labels->dims.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        labels_path, ": not an IDX label file: ", labels->dims.size(), " dimensions (",
        Shape(labels->dims), "); labels have 1 (count)"));
  }
  if (labels->items() != images->items()) {
    return absl::InvalidArgumentError(absl::StrCat(
        labels_path, ": ", labels->items(), " labels for the ", images->items(), " images of ",
        images_path, " (the counts must match)"));
  }
  out.images = std::move(*images);
  out.labels = std::move(*labels);
  return out;
}

Dataset ImagesToDataset(const IdxImages& images) {
  Dataset data;
  const int64_t count = images.images.items();
  const int64_t pixels = images.images.ItemSize();
  data.shape = {1, images.images.dims[1], images.images.dims[2]};
  data.feature_names.reserve(pixels);
  for (int64_t i = 0; i < pixels; ++i) data.feature_names.push_back(absl::StrCat("pixel", i));
  data.features.resize(count * pixels);
  const auto* in = reinterpret_cast<const unsigned char*>(images.images.values.data());
  for (int64_t i = 0; i < count * pixels; ++i) data.features[i] = in[i] / 255.0f;
  data.labels.resize(count);
  const auto* labels = reinterpret_cast<const unsigned char*>(images.labels.values.data());
  for (int64_t i = 0; i < count; ++i) data.labels[i] = labels[i];
  return data;
}

absl::StatusOr<Dataset> LoadIdxImages(const std::string& images_path,
                                      const std::string& labels_path) {
  absl::StatusOr<IdxImages> images = ReadIdxImages(images_path, labels_path);
  if (!images.ok()) return images.status();
  return ImagesToDataset(*images);
}

PixelNormalizer PixelNormalizer::Fit(const Dataset& train) {
  PixelNormalizer n;
  if (train.features.empty()) return n;
  double sum = 0;
  for (float v : train.features) sum += v;
  n.mean_ = sum / static_cast<double>(train.features.size());
  double squares = 0;
  for (float v : train.features) squares += (v - n.mean_) * (v - n.mean_);
  const double sd = std::sqrt(squares / static_cast<double>(train.features.size()));
  n.scale_ = sd > 1e-12 ? sd : 1.0;
  return n;
}

void PixelNormalizer::Apply(Dataset* data) const {
  for (float& v : data->features) v = static_cast<float>((v - mean_) / scale_);
}

}  // namespace cohort::data
