#include "common/data/site_data.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/data/idx.h"

namespace cohort::data {
namespace {

absl::StatusOr<TrainTestSplit> LoadIdxSite(const config::DataConfig& config) {
  absl::StatusOr<Dataset> all = LoadIdxImages(config.images, config.labels);
  if (!all.ok()) return all.status();
  TrainTestSplit split;
  if (config.has_test_files()) {
    absl::StatusOr<Dataset> test = LoadIdxImages(config.test_images, config.test_labels);
    if (!test.ok()) return test.status();
    if (test->shape != all->shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          config.test_images, ": test images are ", absl::StrJoin(test->shape, "x"),
          " but the training images of ", config.images, " are ",
          absl::StrJoin(all->shape, "x")));
    }
    split.train = std::move(*all);
    split.test = std::move(*test);
  } else {
    split = SplitTrainTest(*all, config.test_fraction, config.split_seed);
    if (split.train.rows() == 0 || split.test.rows() == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          config.images, ": too few images (", all->rows(), ") for a train and a test split"));
    }
  }
  if (config.normalize) {
    PixelNormalizer normalizer = PixelNormalizer::Fit(split.train);
    normalizer.Apply(&split.train);
    normalizer.Apply(&split.test);
  }
  return split;
}

}  // namespace

absl::StatusOr<TrainTestSplit> LoadSiteData(const config::DataConfig& config) {
  if (config.format == "idx") return LoadIdxSite(config);
  absl::StatusOr<Dataset> dataset = LoadCsv(config.path, config.label);
  if (!dataset.ok()) return dataset.status();
  TrainTestSplit split = SplitTrainTest(*dataset, config.test_fraction, config.split_seed);
  if (split.train.rows() == 0 || split.test.rows() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        config.path, ": too few rows (", dataset->rows(), ") for a train and a test split"));
  }
  Standardizer standardizer = Standardizer::Fit(split.train);
  standardizer.Apply(&split.train);
  standardizer.Apply(&split.test);
  return split;
}

absl::StatusOr<Dataset> LoadEvaluationData(const config::DataConfig& config) {
  const bool idx = config.format == "idx";
  absl::StatusOr<Dataset> data =
      idx ? LoadIdxImages(config.images, config.labels) : LoadCsv(config.path, config.label);
  if (!data.ok()) return data.status();
  if (data->rows() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(idx ? config.images : config.path, ": the evaluation set is empty"));
  }
  if (!idx) {
    Standardizer::Fit(*data).Apply(&*data);
  } else if (config.normalize) {
    PixelNormalizer::Fit(*data).Apply(&*data);
  }
  return data;
}

}  // namespace cohort::data
