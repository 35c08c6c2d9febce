// The cnn built-in with LibTorch: the module's parameters agree with the coordinator's layout,
// a checkpoint round-trips through the module, DP-SGD clips it per example exactly, and the
// trainer trains it on IDX images.
#include <catch2/catch.hpp>
#include <cmath>

#include "client/dp_sgd.h"
#include "client/torch_trainer.h"
#include "common/config/client_config.h"
#include "common/data/idx.h"
#include "common/model/checkpoint.h"
#include "common/model/models.h"
#include "common/model/torch_model.h"
#include "tests/support/temp_dir.h"

namespace cohort::client {
namespace {

config::ModelSpec Cnn(std::vector<int64_t> input_shape, std::vector<int64_t> channels,
                      std::vector<int64_t> hidden, int64_t classes) {
  config::ModelSpec spec;
  spec.arch = "cnn";
  spec.input_shape = std::move(input_shape);
  spec.inputs = spec.input_shape[0] * spec.input_shape[1] * spec.input_shape[2];
  spec.channels = std::move(channels);
  spec.hidden = std::move(hidden);
  spec.classes = classes;
  return spec;
}

// Writes `count` labelled 1 x side x side images: class c has a bright c-th horizontal band.
void WriteBandImages(const testing::TempDir& dir, int64_t count, int64_t side, int classes) {
  data::IdxImages images;
  images.images.dims = {count, side, side};
  images.labels.dims = {count};
  for (int64_t i = 0; i < count; ++i) {
    const int label = static_cast<int>(i % classes);
    for (int64_t r = 0; r < side; ++r) {
      for (int64_t c = 0; c < side; ++c) {
        const bool band = r / (side / classes) == label;
        images.images.values.push_back(static_cast<char>(band ? 200 + (c * 3 + i) % 50
                                                              : (r * 7 + c * 11 + i) % 40));
      }
    }
    images.labels.values.push_back(static_cast<char>(label));
  }
  REQUIRE(data::WriteIdxFile(dir.File("images.gz"), images.images, true).ok());
  REQUIRE(data::WriteIdxFile(dir.File("labels.gz"), images.labels, true).ok());
}

}  // namespace

TEST_CASE("The cnn module's parameters match the coordinator's layout in names, shapes and order",
          "[cnn]") {
  for (const config::ModelSpec& spec :
       {Cnn({1, 28, 28}, {16, 32}, {128}, 10), Cnn({3, 9, 7}, {4, 6}, {}, 3),
        Cnn({2, 16, 16}, {5, 6, 7}, {12, 8}, 4)}) {
    torch::nn::Sequential module = model::BuildModule(spec);
    const tensor::ParameterLayout built = model::ModuleLayout(module);
    const tensor::ParameterLayout want = model::LayoutFor(spec);
    REQUIRE(built.tensors().size() == want.tensors().size());
    for (size_t i = 0; i < want.tensors().size(); ++i) {
      CHECK(built.tensors()[i].name == want.tensors()[i].name);
      CHECK(built.tensors()[i].shape == want.tensors()[i].shape);
    }
    CHECK(built.Fingerprint() == want.Fingerprint());
    // The forward pass takes flattened rows viewed as images and gives class logits.
    torch::Tensor rows = torch::rand({5, spec.inputs});
    const std::vector<int64_t> logits =
        module->forward(model::ModelInput(spec, rows)).sizes().vec();
    CHECK(logits == std::vector<int64_t>({5, spec.classes}));
  }
}

TEST_CASE("A cnn checkpoint written by the coordinator loads into the module and back",
          "[cnn][checkpoint]") {
  testing::TempDir dir;
  const config::ModelSpec spec = Cnn({1, 28, 28}, {16, 32}, {128}, 10);
  const tensor::ParameterLayout layout = model::LayoutFor(spec);
  const std::vector<float> values = model::InitialParameters(spec, 11);
  REQUIRE(model::WriteCheckpoint(dir.File("round.pt"), layout, values).ok());
  auto read = model::ReadCheckpoint(dir.File("round.pt"), layout);
  REQUIRE(read.ok());
  torch::nn::Sequential module = model::BuildModule(spec);
  REQUIRE(model::LoadFlatParameters(module, layout, *read).ok());
  CHECK(model::FlattenParameters(module) == values);
  // The first convolution's weight is the first 144 values, [16, 1, 3, 3] row-major.
  auto params = module->named_parameters();
  CHECK(params[0].key() == "conv0.weight");
  CHECK(params[0].value()[2][0][1][2].item<float>() == values[2 * 9 + 1 * 3 + 2]);
}

TEST_CASE("DP-SGD clips the cnn built-in per example like a float64 per-example loop",
          "[cnn][dp]") {
  const config::ModelSpec spec = Cnn({1, 12, 12}, {4, 6}, {8}, 3);
  torch::manual_seed(3);
  torch::nn::Sequential module = model::BuildModule(spec);
  module->to(torch::kFloat64);
  ClippedGradientComputer computer(module);
  REQUIRE(computer.method() == ClippingMethod::kConv);
  torch::Tensor rows = torch::rand({13, spec.inputs}, torch::kFloat64);
  torch::Tensor x = model::ModelInput(spec, rows);
  torch::Tensor y = torch::randint(0, 3, {13}, torch::kInt64);
  auto want = ClippedGradientSumPerExample(
      [&module](const torch::Tensor& t) { return module->forward(t); }, module->parameters(), x, y,
      0.3);
  REQUIRE(want.ok());
  auto got = computer.Compute(x, y, 0.3);
  REQUIRE(got.ok());
  for (size_t k = 0; k < want->sum.size(); ++k) {
    const double scale = want->sum[k].abs().max().item<double>() + 1e-300;
    CHECK((*got)->sum[k].sub(want->sum[k]).abs().max().item<double>() / scale < 1e-6);
  }
  CHECK((*got)->norms.sub(want->norms).abs().max().item<double>() < 1e-9);
}

TEST_CASE("The trainer trains a cnn on IDX images with and without DP-SGD", "[cnn]") {
  testing::TempDir dir;
  WriteBandImages(dir, 120, 8, 4);
  config::DataConfig data;
  data.format = "idx";
  data.images = dir.File("images.gz");
  data.labels = dir.File("labels.gz");
  data.test_fraction = 0.25;
  auto trainer = MakeTorchTrainer(data, 1, 1, /*noise_seed=*/7);
  REQUIRE(trainer.ok());
  CHECK((*trainer)->train_examples() == 88);  // 30 images per class, round(7.5) = 8 held out
  CHECK((*trainer)->num_features() == 64);
  const config::ModelSpec spec = Cnn({1, 8, 8}, {6, 8}, {16}, 4);
  const tensor::ParameterLayout layout = model::LayoutFor(spec);
  REQUIRE((*trainer)->CheckModel(spec, layout).ok());
  // A cnn for other images is refused with both shapes.
  const config::ModelSpec other = Cnn({1, 4, 16}, {6, 8}, {16}, 4);
  absl::Status refused = (*trainer)->CheckModel(other, model::LayoutFor(other));
  CHECK(refused.code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(refused.message()).find("1x4x16") != std::string::npos);
  CHECK(std::string(refused.message()).find("1x8x8") != std::string::npos);

  std::vector<float> model = model::InitialParameters(spec, 2);
  auto before = (*trainer)->Evaluate(spec, layout, model);
  REQUIRE(before.ok());
  CHECK(before->examples == 32);
  TrainingParams params;
  params.epochs = 8;
  params.batch_size = 8;
  params.learning_rate = 0.1;
  for (int round = 0; round < 3; ++round) {
    auto trained = (*trainer)->Train(spec, layout, model, params);
    REQUIRE(trained.ok());
    for (size_t i = 0; i < model.size(); ++i) model[i] += trained->delta[i];
  }
  auto after = (*trainer)->Evaluate(spec, layout, model);
  REQUIRE(after.ok());
  INFO("loss " << before->loss << " -> " << after->loss << ", correct " << after->correct);
  CHECK(after->loss < before->loss);
  CHECK(after->correct > 16);  // 4 classes: chance is 8 of 32; the bands are easy
  params.dp = true;
  params.noise_multiplier = 0.5;
  params.max_grad_norm = 1.0;
  auto dp = (*trainer)->Train(spec, layout, model, params);
  REQUIRE(dp.ok());
  CHECK(dp->dp_steps == 8 * 11);  // epochs x ceil(88 / 8)
  for (float d : dp->delta) CHECK(std::isfinite(d));
}

}  // namespace cohort::client
