// Fuzzes the CSV loader (data::ParseCsv) with arbitrary text. The label column is the last
// cell of the header, so that inputs reach the rows. A table that parses must be consistent:
// one label per row, `cols` finite float features per row, labels whole numbers in [0, 1e6].
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/string_view.h"
#include "common/data/csv.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::string_view header = absl::string_view(text).substr(0, text.find('\n'));
  std::string label(absl::StripAsciiWhitespace(header.substr(header.rfind(',') + 1)));
  // The loader strips a trailing carriage return from the header line before splitting.
  if (!label.empty() && label.back() == '\r') label.pop_back();
  label = std::string(absl::StripAsciiWhitespace(label));

  absl::StatusOr<cohort::data::Dataset> table = cohort::data::ParseCsv(text, "fuzz.csv", label);
  if (!table.ok()) {
    if (!absl::IsInvalidArgument(table.status())) std::abort();
    return 0;
  }
  if (table->rows() == 0 || !table->shape.empty()) std::abort();
  if (table->features.size() != static_cast<size_t>(table->rows() * table->cols())) std::abort();
  for (float value : table->features) {
    if (!std::isfinite(value)) std::abort();
  }
  for (int64_t label_value : table->labels) {
    if (label_value < 0 || label_value > 1000000) std::abort();
  }
  return 0;
}
