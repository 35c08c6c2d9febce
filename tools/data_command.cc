// cohortctl data split: partitions a data set (a CSV table, or IDX images and labels) into
// per-site files.
#include <algorithm>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/data/csv.h"
#include "common/data/idx.h"
#include "common/data/split.h"
#include "common/util/files.h"
#include "tools/commands.h"

namespace cohort::tools {
namespace {

struct SplitArgs {
  std::string input;
  std::string label;
  std::string images;
  std::string labels;
  bool gzip = true;
  int64_t limit = 0;
  int sites = 3;
  std::string scheme = "iid";
  uint64_t seed = 1;
  std::string out;
  std::string prefix = "site";
  std::vector<std::string> names;
  double holdout = 0;  // fraction set aside (stratified) as a central test set first
  std::string holdout_name = "test";
};

[[noreturn]] void Fail(int code, const std::string& message) {
  std::cerr << "cohortctl data split: " << message << "\n";
  throw CLI::RuntimeError(code);
}

// A data set being split: its labels, and how to write one site's rows to `out`/`name`.
struct Source {
  std::vector<int64_t> labels;
  std::function<absl::Status(const std::string& name, const std::vector<int64_t>& rows)> write;
};

std::vector<int64_t> FirstRows(int64_t count, int64_t limit) {
  std::vector<int64_t> rows(limit > 0 ? std::min(count, limit) : count);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int64_t>(i);
  return rows;
}

// A CSV table: each site's file gets the header and the original text of its rows (values
// copied exactly).
Source CsvSource(const SplitArgs& args) {
  if (args.label.empty()) Fail(2, "--label (the label column) is required with --input");
  absl::StatusOr<std::string> text = ReadFileToString(args.input);
  if (!text.ok()) Fail(1, std::string(text.status().message()));
  absl::StatusOr<data::Dataset> dataset = data::ParseCsv(*text, args.input, args.label);
  if (!dataset.ok()) Fail(1, std::string(dataset.status().message()));
  auto lines = std::make_shared<std::vector<std::string>>();
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    line = absl::StripSuffix(line, "\r");
    if (!absl::StripAsciiWhitespace(line).empty()) lines->emplace_back(line);
  }
  Source source;
  source.labels = dataset->Subset(FirstRows(dataset->rows(), args.limit)).labels;
  source.write = [lines, out = args.out](const std::string& name,
                                         const std::vector<int64_t>& rows) {
    std::string contents = (*lines)[0] + "\n";
    for (int64_t row : rows) contents += (*lines)[row + 1] + "\n";
    return WriteFileDurably((std::filesystem::path(out) / (name + ".csv")).string(), contents);
  };
  return source;
}

// IDX images and labels: each site gets NAME-images-idx3-ubyte and NAME-labels-idx1-ubyte
// (with .gz when gzipped), the bytes of its images copied exactly.
Source IdxSource(const SplitArgs& args) {
  if (args.labels.empty()) Fail(2, "--labels (the IDX label file) is required with --images");
  if (!args.label.empty()) Fail(2, "--label names a CSV column; IDX input takes --labels FILE");
  absl::StatusOr<data::IdxImages> read = data::ReadIdxImages(args.images, args.labels);
  if (!read.ok()) Fail(1, std::string(read.status().message()));
  auto images = std::make_shared<data::IdxImages>(std::move(*read));
  Source source;
  for (int64_t row : FirstRows(images->labels.items(), args.limit)) {
    source.labels.push_back(static_cast<unsigned char>(images->labels.values[row]));
  }
  source.write = [images, out = args.out, gzip = args.gzip](const std::string& name,
                                                            const std::vector<int64_t>& rows) {
    const std::string suffix = gzip ? ".gz" : "";
    const std::filesystem::path dir(out);
    absl::Status s = data::WriteIdxFile(
        (dir / (name + "-images-idx3-ubyte" + suffix)).string(), images->images.Take(rows), gzip);
    if (!s.ok()) return s;
    return data::WriteIdxFile((dir / (name + "-labels-idx1-ubyte" + suffix)).string(),
                              images->labels.Take(rows), gzip);
  };
  return source;
}

void RunSplit(const SplitArgs& args) {
  if (args.sites < 1) Fail(2, "--sites must be at least 1");
  if (args.limit < 0) Fail(2, "--limit must not be negative");
  if (!args.names.empty() && static_cast<int>(args.names.size()) != args.sites) {
    Fail(2, absl::StrCat("--names lists ", args.names.size(), " names for ", args.sites, " sites"));
  }
  if (args.input.empty() == args.images.empty()) {
    Fail(2, "give either --input FILE.csv (with --label) or --images FILE (with --labels)");
  }
  absl::StatusOr<data::PartitionScheme> scheme = data::ParsePartitionScheme(args.scheme);
  if (!scheme.ok()) Fail(2, std::string(scheme.status().message()));
  if (args.holdout < 0 || args.holdout >= 1) Fail(2, "--holdout must be in [0, 1)");
  if (args.holdout > 0 &&
      std::find(args.names.begin(), args.names.end(), args.holdout_name) != args.names.end()) {
    Fail(2, absl::StrCat("--holdout-name '", args.holdout_name, "' is also a site's name"));
  }
  const Source source = args.input.empty() ? IdxSource(args) : CsvSource(args);
  // Rows the sites share out: all, or those left after the central test set is set aside.
  std::vector<int64_t> rows = FirstRows(static_cast<int64_t>(source.labels.size()), 0);
  std::vector<int64_t> held_out;
  if (args.holdout > 0) {
    data::Holdout holdout = data::StratifiedHoldout(source.labels, args.holdout, args.seed);
    rows = std::move(holdout.kept);
    held_out = std::move(holdout.held_out);
  }
  std::vector<int64_t> labels;
  for (int64_t row : rows) labels.push_back(source.labels[row]);
  auto parts = data::PartitionRows(labels, args.sites, *scheme, args.seed);
  if (!parts.ok()) Fail(1, std::string(parts.status().message()));
  for (std::vector<int64_t>& part : *parts) {
    for (int64_t& index : part) index = rows[index];
  }
  if (absl::Status s = EnsureDirectory(args.out); !s.ok()) Fail(1, std::string(s.message()));
  std::cout << "site\trows\tlabel histogram\n";
  auto write = [&](const std::string& name, const std::vector<int64_t>& part) {
    std::map<int64_t, int> histogram;
    for (int64_t row : part) histogram[source.labels[row]]++;
    if (absl::Status st = source.write(name, part); !st.ok()) Fail(1, std::string(st.message()));
    std::string hist;
    for (const auto& [label, count] : histogram) absl::StrAppend(&hist, label, ":", count, " ");
    std::cout << name << "\t" << part.size() << "\t" << hist << "\n";
  };
  for (int s = 0; s < args.sites; ++s) {
    write(args.names.empty() ? absl::StrCat(args.prefix, "-", s) : args.names[s], (*parts)[s]);
  }
  if (!held_out.empty()) write(args.holdout_name, held_out);
}

}  // namespace

void AddDataCommands(CLI::App& app) {
  auto* data = app.add_subcommand("data", "Data set tools");
  data->require_subcommand(1);
  auto* split = data->add_subcommand(
      "split", "Partition a data set (CSV, or IDX images and labels) into per-site files");
  auto args = std::make_shared<SplitArgs>();
  split->add_option("--input", args->input, "CSV file with a header row");
  split->add_option("--label", args->label, "CSV: name of the label column");
  split->add_option("--images", args->images, "IDX3 image file (gzipped or not)");
  split->add_option("--labels", args->labels, "IDX1 label file (gzipped or not)");
  split->add_flag("--gzip,!--no-gzip", args->gzip,
                  "IDX: gzip the per-site files (default: yes)");
  split->add_option("--limit", args->limit, "Use only the first N rows or images (0: all)");
  split->add_option("--sites", args->sites, "Number of sites")->required();
  split->add_option("--scheme", args->scheme, "iid | label-skew | dirichlet:ALPHA | quantity-skew");
  split->add_option("--seed", args->seed, "Seed for the partition");
  split->add_option("--out", args->out, "Output directory")->required();
  split->add_option("--prefix", args->prefix,
                    "File name prefix: PREFIX-0.csv, ... (IDX: PREFIX-0-images-idx3-ubyte.gz, "
                    "PREFIX-0-labels-idx1-ubyte.gz, ...)");
  split->add_option("--holdout", args->holdout,
                    "Set this fraction aside first (stratified by label, seeded) as a central "
                    "test set, written as --holdout-name; the sites share the rest");
  split->add_option("--holdout-name", args->holdout_name,
                    "File name of the central test set (default test)");
  split->add_option("--names", args->names, "Site names (one per site) used as file names")
      ->delimiter(',');
  split->callback([args]() { RunSplit(*args); });
}

}  // namespace cohort::tools
