#ifndef COHORT_COMMON_DATA_SITE_DATA_H_
#define COHORT_COMMON_DATA_SITE_DATA_H_

#include "absl/status/statusor.h"
#include "common/config/client_config.h"
#include "common/data/csv.h"

namespace cohort::data {

// A site's training and held-out data as its client trains on it, from its `data:` config.
// csv: LoadCsv, the stratified seeded SplitTrainTest, then both parts standardized with a
// Standardizer fitted on the training rows only.
// idx: LoadIdxImages (pixels scaled to [0, 1]); the held-out set read from test_images and
// test_labels (same image size) or split off like csv; with `normalize`, both parts mapped by
// a PixelNormalizer fitted on the training images only.
// InvalidArgument (naming the file) when either part would be empty.
absl::StatusOr<TrainTestSplit> LoadSiteData(const config::DataConfig& config);

// The coordinator's central test file (evaluation.server.data), whole: csv standardized by a
// Standardizer fitted on the file itself; idx pixels scaled to [0, 1] and, with `normalize`,
// mapped by a PixelNormalizer fitted on the file's own images. The evaluation set plays the
// part of one more site, whose statistics are its own. InvalidArgument when it is empty.
absl::StatusOr<Dataset> LoadEvaluationData(const config::DataConfig& config);

}  // namespace cohort::data

#endif  // COHORT_COMMON_DATA_SITE_DATA_H_
