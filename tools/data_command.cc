// cohortctl data split: partitions a CSV data set into per-site files.
#include <filesystem>
#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/data/csv.h"
#include "common/data/split.h"
#include "common/util/files.h"
#include "tools/commands.h"

namespace cohort::tools {
namespace {

struct SplitArgs {
  std::string input;
  std::string label;
  int sites = 3;
  std::string scheme = "iid";
  uint64_t seed = 1;
  std::string out;
  std::string prefix = "site";
  std::vector<std::string> names;
};

[[noreturn]] void Fail(int code, const std::string& message) {
  std::cerr << "cohortctl data split: " << message << "\n";
  throw CLI::RuntimeError(code);
}

void RunSplit(const SplitArgs& args) {
  if (args.sites < 1) Fail(2, "--sites must be at least 1");
  if (!args.names.empty() && static_cast<int>(args.names.size()) != args.sites) {
    Fail(2, absl::StrCat("--names lists ", args.names.size(), " names for ", args.sites, " sites"));
  }
  absl::StatusOr<data::PartitionScheme> scheme = data::ParsePartitionScheme(args.scheme);
  if (!scheme.ok()) Fail(2, std::string(scheme.status().message()));
  absl::StatusOr<std::string> text = ReadFileToString(args.input);
  if (!text.ok()) Fail(1, std::string(text.status().message()));
  absl::StatusOr<data::Dataset> dataset = data::ParseCsv(*text, args.input, args.label);
  if (!dataset.ok()) Fail(1, std::string(dataset.status().message()));
  auto parts = data::PartitionRows(dataset->labels, args.sites, *scheme, args.seed);
  if (!parts.ok()) Fail(1, std::string(parts.status().message()));

  // Keep the original text of each data row so values are copied exactly.
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    line = absl::StripSuffix(line, "\r");
    if (!absl::StripAsciiWhitespace(line).empty()) lines.emplace_back(line);
  }
  if (absl::Status s = EnsureDirectory(args.out); !s.ok()) Fail(1, std::string(s.message()));
  std::cout << "site\trows\tlabel histogram\n";
  for (int s = 0; s < args.sites; ++s) {
    std::string name = args.names.empty() ? absl::StrCat(args.prefix, "-", s) : args.names[s];
    std::string contents = lines[0] + "\n";
    std::map<int64_t, int> histogram;
    for (int64_t row : (*parts)[s]) {
      contents += lines[row + 1] + "\n";
      histogram[dataset->labels[row]]++;
    }
    std::string path = (std::filesystem::path(args.out) / (name + ".csv")).string();
    if (absl::Status st = WriteFileDurably(path, contents); !st.ok()) {
      Fail(1, std::string(st.message()));
    }
    std::string hist;
    for (const auto& [label, count] : histogram) absl::StrAppend(&hist, label, ":", count, " ");
    std::cout << name << "\t" << (*parts)[s].size() << "\t" << hist << "\n";
  }
}

}  // namespace

void AddDataCommands(CLI::App& app) {
  auto* data = app.add_subcommand("data", "Data set tools");
  data->require_subcommand(1);
  auto* split = data->add_subcommand("split", "Partition a CSV data set into per-site files");
  auto args = std::make_shared<SplitArgs>();
  split->add_option("--input", args->input, "CSV file with a header row")->required();
  split->add_option("--label", args->label, "Name of the label column")->required();
  split->add_option("--sites", args->sites, "Number of sites")->required();
  split->add_option("--scheme", args->scheme, "iid | label-skew | dirichlet:ALPHA | quantity-skew");
  split->add_option("--seed", args->seed, "Seed for the partition");
  split->add_option("--out", args->out, "Output directory")->required();
  split->add_option("--prefix", args->prefix, "File name prefix: PREFIX-0.csv, PREFIX-1.csv, ...");
  split->add_option("--names", args->names, "Site names (one per site) used as file names")
      ->delimiter(',');
  split->callback([args]() { RunSplit(*args); });
}

}  // namespace cohort::tools
