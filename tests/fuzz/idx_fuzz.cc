// Fuzzes the IDX reader: data::ParseIdx on the raw input and, when the input gunzips
// (data::Gunzip), on the decompressed bytes. An array that parses must re-encode to exactly
// the bytes it came from (EncodeIdx), hold items x item size values, and survive a
// Gzip/Gunzip round trip.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "common/data/idx.h"

namespace {

void CheckIdx(absl::string_view bytes) {
  absl::StatusOr<cohort::data::IdxArray> array = cohort::data::ParseIdx(bytes, "fuzz.idx");
  if (!array.ok()) {
    if (!absl::IsInvalidArgument(array.status())) std::abort();
    return;
  }
  if (array->dims.empty() || array->dims.size() > 8) std::abort();
  for (int64_t dim : array->dims) {
    if (dim < 0 || dim > 0xffffffffLL) std::abort();
  }
  if (static_cast<uint64_t>(array->items()) * static_cast<uint64_t>(array->ItemSize()) !=
      array->values.size()) {
    std::abort();
  }
  if (cohort::data::EncodeIdx(*array) != bytes) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  CheckIdx(bytes);

  absl::StatusOr<std::string> raw = cohort::data::Gunzip(bytes, "fuzz.idx.gz");
  if (!raw.ok()) {
    if (!absl::IsInvalidArgument(raw.status())) std::abort();
    return 0;
  }
  if (raw->size() > static_cast<size_t>(cohort::data::kMaxIdxBytes) + 4096) std::abort();
  CheckIdx(*raw);
  absl::StatusOr<std::string> packed = cohort::data::Gzip(*raw);
  if (!packed.ok()) std::abort();
  absl::StatusOr<std::string> unpacked = cohort::data::Gunzip(*packed, "repacked");
  if (!unpacked.ok() || *unpacked != *raw) std::abort();
  return 0;
}
