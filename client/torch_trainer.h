#ifndef COHORT_CLIENT_TORCH_TRAINER_H_
#define COHORT_CLIENT_TORCH_TRAINER_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "client/trainer.h"
#include "common/config/client_config.h"
#include "common/data/csv.h"

namespace cohort::client {

// Builds the LibTorch trainer for a site's data (data::LoadSiteData: a CSV table standardized
// with the site's own training statistics, or IDX images in [0, 1]; the held-out part split
// off stratified and seeded, or read from test files), and trains with minibatch SGD and
// cross-entropy. A cnn sees each row as a [channels, height, width] image.
// `noise_seed` (simulations and tests only) makes DP-SGD's sampling and noise reproducible;
// without it they are keyed from the OS.
// `torchscript` (client config model.torchscript): the site's own copy of the federation's
// TorchScript module, trained and evaluated instead of a built-in model (InvalidArgument when
// it cannot be loaded).
absl::StatusOr<std::unique_ptr<Trainer>> MakeTorchTrainer(
    const config::DataConfig& data, int64_t threads, uint64_t seed,
    std::optional<uint64_t> noise_seed = std::nullopt, const std::string& torchscript = "");

// The same trainer over data already in memory (tests, benchmarks, simulations).
std::unique_ptr<Trainer> MakeTorchTrainerFromSplit(
    data::TrainTestSplit split, uint64_t seed, std::optional<uint64_t> noise_seed = std::nullopt);
absl::StatusOr<std::unique_ptr<Trainer>> MakeTorchTrainerFromSplit(
    data::TrainTestSplit split, uint64_t seed, std::optional<uint64_t> noise_seed,
    const std::string& torchscript);

// Sets LibTorch's intra-op thread count for this process.
void SetTorchThreads(int64_t threads);

}  // namespace cohort::client

#endif  // COHORT_CLIENT_TORCH_TRAINER_H_
