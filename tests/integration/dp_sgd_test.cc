// DP-SGD's per-example clipping against a float64 per-example loop, and its noise.
#include "client/dp_sgd.h"

#include <cmath>

#include <catch2/catch.hpp>

#include "common/config/coordinator_config.h"
#include "client/torch_trainer.h"
#include "common/data/csv.h"
#include "common/model/models.h"
#include "common/model/torch_model.h"
#include "tests/support/temp_dir.h"

namespace cohort::client {
namespace {

torch::nn::Sequential RandomMlp(int64_t inputs, std::vector<int64_t> hidden, int64_t classes,
                                uint64_t seed, torch::Dtype dtype) {
  torch::manual_seed(seed);
  config::ModelSpec spec;
  spec.arch = hidden.empty() ? "logreg" : "mlp";
  spec.inputs = inputs;
  spec.hidden = std::move(hidden);
  spec.classes = classes;
  torch::nn::Sequential module = model::BuildModule(spec);
  module->to(dtype);
  return module;
}

// The reference: one backward per example in float64, flat norm, clip, sum.
std::vector<torch::Tensor> PerExampleLoop(torch::nn::Sequential& module, const torch::Tensor& x,
                                          const torch::Tensor& y, double clip,
                                          std::vector<double>* norms) {
  std::vector<torch::Tensor> params = module->parameters();
  std::vector<torch::Tensor> sum;
  for (const torch::Tensor& p : params) sum.push_back(torch::zeros_like(p));
  for (int64_t i = 0; i < x.size(0); ++i) {
    torch::Tensor loss = torch::nn::functional::cross_entropy(
        module->forward(x.slice(0, i, i + 1)), y.slice(0, i, i + 1),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    std::vector<torch::Tensor> grads = torch::autograd::grad({loss}, params);
    double norm_squared = 0;
    for (const torch::Tensor& g : grads) norm_squared += g.pow(2).sum().item<double>();
    const double norm = std::sqrt(norm_squared);
    norms->push_back(norm);
    const double factor = std::min(1.0, clip / (norm + 1e-12));
    for (size_t k = 0; k < grads.size(); ++k) sum[k] += grads[k] * factor;
  }
  return sum;
}

// A small CNN: two 3x3 convolutions (the second with `stride`), ReLU, 2x2 max-pooling, two
// Linear layers, on [batch, 1, side, side] inputs.
torch::nn::Sequential RandomCnn(int64_t side, int64_t stride, uint64_t seed, torch::Dtype dtype,
                                int64_t dilation = 1) {
  torch::manual_seed(seed);
  torch::nn::Sequential module;
  module->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)));
  module->push_back(torch::nn::ReLU());
  module->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)));
  module->push_back(torch::nn::Conv2d(
      torch::nn::Conv2dOptions(4, 6, 3).padding(1).stride(stride).dilation(dilation)));
  module->push_back(torch::nn::ReLU());
  module->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)));
  module->push_back(torch::nn::Flatten());
  const int64_t after_conv2 = (side / 2 + 2 - 2 * dilation - 1) / stride + 1;
  const int64_t features = 6 * (after_conv2 / 2) * (after_conv2 / 2);
  module->push_back(torch::nn::Linear(features, 8));
  module->push_back(torch::nn::ReLU());
  module->push_back(torch::nn::Linear(8, 3));
  module->to(dtype);
  return module;
}

double MaxRelativeError(const std::vector<torch::Tensor>& got,
                        const std::vector<torch::Tensor>& want) {
  double worst = 0;
  for (size_t k = 0; k < want.size(); ++k) {
    double scale = want[k].abs().max().item<double>() + 1e-300;
    double error = (got[k].to(torch::kFloat64) - want[k]).abs().max().item<double>();
    worst = std::max(worst, error / scale);
  }
  return worst;
}

}  // namespace

TEST_CASE("Clipped gradient sum equals a float64 per-example loop to 1e-6", "[dp]") {
  struct Shape {
    int64_t inputs;
    std::vector<int64_t> hidden;
    int64_t classes;
    int64_t batch;
    double clip;
  };
  for (const Shape& shape : std::vector<Shape>{{30, {}, 2, 17, 0.5},
                                               {30, {32}, 2, 64, 1.0},
                                               {20, {16, 8}, 5, 33, 0.1},
                                               {12, {7}, 3, 9, 100.0},
                                               {30, {}, 2, 1, 0.5},
                                               {20, {16, 8}, 5, 1, 0.1},
                                               {20, {16, 8}, 5, 0, 0.1}}) {
    for (uint64_t seed : {1u, 2u, 3u}) {
      torch::nn::Sequential module =
          RandomMlp(shape.inputs, shape.hidden, shape.classes, seed, torch::kFloat64);
      torch::Tensor x = torch::randn({shape.batch, shape.inputs}, torch::kFloat64) * 2;
      torch::Tensor y = torch::randint(0, shape.classes, {shape.batch}, torch::kInt64);
      std::vector<double> norms;
      std::vector<torch::Tensor> want = PerExampleLoop(module, x, y, shape.clip, &norms);
      auto got = ClippedGradientSum(module, x, y, shape.clip);
      REQUIRE(got.ok());
      CHECK(ClippedGradientComputer(module).method() == ClippingMethod::kLinear);
      INFO("inputs " << shape.inputs << " batch " << shape.batch << " clip " << shape.clip
                     << " seed " << seed);
      CHECK(MaxRelativeError(got->sum, want) < 1e-6);
      for (int64_t i = 0; i < shape.batch; ++i) {
        CHECK(got->norms[i].item<double>() == Approx(norms[i]).epsilon(1e-9));
      }
    }
  }
}

TEST_CASE("A reused ClippedGradientComputer stays exact across batch sizes", "[dp]") {
  torch::nn::Sequential module = RandomMlp(20, {16, 8}, 5, 7, torch::kFloat64);
  ClippedGradientComputer computer(module);
  for (int64_t batch : {64, 0, 1, 33, 64}) {
    INFO("batch " << batch);
    torch::Tensor x = torch::randn({batch, 20}, torch::kFloat64) * 2;
    torch::Tensor y = torch::randint(0, 5, {batch}, torch::kInt64);
    std::vector<double> norms;
    std::vector<torch::Tensor> want = PerExampleLoop(module, x, y, 0.3, &norms);
    auto got = computer.Compute(x, y, 0.3);
    REQUIRE(got.ok());
    CHECK(MaxRelativeError((*got)->sum, want) < 1e-6);
    REQUIRE((*got)->norms.size(0) == batch);
    for (int64_t i = 0; i < batch; ++i) {
      CHECK((*got)->norms[i].item<double>() == Approx(norms[i]).epsilon(1e-9));
    }
    const double loss =
        batch == 0 ? 0.0
                   : torch::nn::functional::cross_entropy(
                         module->forward(x), y,
                         torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                         .item<double>();
    CHECK((*got)->loss_sum == Approx(loss).epsilon(1e-12));
  }
}

TEST_CASE("Conv2d models: the clipped sum equals a float64 per-example loop to 1e-6", "[dp]") {
  struct Case {
    int64_t side;
    int64_t stride;
    int64_t batch;
    double clip;
    int64_t dilation = 1;
  };
  // side 64: the unfolded input of the first convolution is sliced over the batch.
  for (const Case& c : std::vector<Case>{
           {12, 1, 17, 0.5}, {12, 2, 9, 5.0}, {12, 1, 1, 0.1}, {12, 1, 0, 1.0}, {64, 1, 20, 0.5},
           {16, 2, 7, 0.5, 2}}) {
    for (uint64_t seed : {1u, 2u}) {
      INFO("side " << c.side << " stride " << c.stride << " dilation " << c.dilation << " batch "
                   << c.batch << " seed " << seed);
      torch::nn::Sequential module =
          RandomCnn(c.side, c.stride, seed, torch::kFloat64, c.dilation);
      ClippedGradientComputer computer(module);
      REQUIRE(computer.method() == ClippingMethod::kConv);
      torch::Tensor x = torch::randn({c.batch, 1, c.side, c.side}, torch::kFloat64) * 2;
      torch::Tensor y = torch::randint(0, 3, {c.batch}, torch::kInt64);
      std::vector<double> norms;
      std::vector<torch::Tensor> want = PerExampleLoop(module, x, y, c.clip, &norms);
      auto got = computer.Compute(x, y, c.clip);
      REQUIRE(got.ok());
      CHECK(MaxRelativeError((*got)->sum, want) < 1e-6);
      for (int64_t i = 0; i < c.batch; ++i) {
        CHECK((*got)->norms[i].item<double>() == Approx(norms[i]).epsilon(1e-9));
      }
    }
  }
  // float32 against the float64 reference.
  torch::nn::Sequential module64 = RandomCnn(12, 1, 3, torch::kFloat64);
  torch::nn::Sequential module32 = RandomCnn(12, 1, 3, torch::kFloat32);
  torch::Tensor x = torch::randn({16, 1, 12, 12}, torch::kFloat64);
  torch::Tensor y = torch::randint(0, 3, {16}, torch::kInt64);
  std::vector<double> norms;
  std::vector<torch::Tensor> want = PerExampleLoop(module64, x, y, 0.7, &norms);
  auto got = ClippedGradientSum(module32, x.to(torch::kFloat32), y, 0.7);
  REQUIRE(got.ok());
  CHECK(MaxRelativeError(got->sum, want) < 1e-4);
}

TEST_CASE("Other models fall back to the per-example loop", "[dp]") {
  torch::manual_seed(4);
  torch::nn::Sequential module(torch::nn::Linear(6, 5), torch::nn::Tanh(), torch::nn::Linear(5, 3));
  module->to(torch::kFloat64);
  ClippedGradientComputer computer(module);
  REQUIRE(computer.method() == ClippingMethod::kPerExampleLoop);
  torch::Tensor x = torch::randn({11, 6}, torch::kFloat64);
  torch::Tensor y = torch::randint(0, 3, {11}, torch::kInt64);
  std::vector<double> norms;
  std::vector<torch::Tensor> want = PerExampleLoop(module, x, y, 0.2, &norms);
  auto got = computer.Compute(x, y, 0.2);
  REQUIRE(got.ok());
  CHECK(MaxRelativeError((*got)->sum, want) < 1e-12);
  // The same through the generic entry point, as a TorchScript module would use it.
  auto generic = ClippedGradientSumPerExample(
      [&](const torch::Tensor& t) { return module->forward(t); }, module->parameters(), x, y, 0.2);
  REQUIRE(generic.ok());
  CHECK(MaxRelativeError(generic->sum, want) < 1e-12);
  // A Linear layer without bias is not on the fast path either.
  torch::nn::Sequential no_bias(torch::nn::Linear(torch::nn::LinearOptions(6, 3).bias(false)));
  CHECK(ClippedGradientComputer(no_bias).method() == ClippingMethod::kPerExampleLoop);
}

TEST_CASE("The float32 fast path stays close to the float64 reference", "[dp]") {
  torch::nn::Sequential module64 = RandomMlp(30, {32}, 2, 5, torch::kFloat64);
  torch::nn::Sequential module32 = RandomMlp(30, {32}, 2, 5, torch::kFloat32);
  torch::Tensor x = torch::randn({64, 30}, torch::kFloat64);
  torch::Tensor y = torch::randint(0, 2, {64}, torch::kInt64);
  std::vector<double> norms;
  std::vector<torch::Tensor> want = PerExampleLoop(module64, x, y, 0.7, &norms);
  auto got = ClippedGradientSum(module32, x.to(torch::kFloat32), y, 0.7);
  REQUIRE(got.ok());
  CHECK(MaxRelativeError(got->sum, want) < 1e-4);
}

TEST_CASE("Every clipped per-example gradient respects the norm bound", "[dp]") {
  torch::nn::Sequential module = RandomMlp(10, {8}, 3, 9, torch::kFloat64);
  torch::Tensor x = torch::randn({1, 10}, torch::kFloat64) * 50;
  // Label it with the class the model finds least likely: a large gradient.
  torch::Tensor y = module->forward(x).argmin(1).detach();
  auto got = ClippedGradientSum(module, x, y, 0.25);
  REQUIRE(got.ok());
  REQUIRE(got->norms[0].item<double>() > 0.25);
  double norm_squared = 0;
  for (const torch::Tensor& g : got->sum) norm_squared += g.pow(2).sum().item<double>();
  CHECK(std::sqrt(norm_squared) == Approx(0.25).epsilon(1e-9));
}

TEST_CASE("An empty Poisson batch yields zero gradients, not an error", "[dp]") {
  torch::nn::Sequential module = RandomMlp(4, {3}, 2, 1, torch::kFloat32);
  auto got = ClippedGradientSum(module, torch::zeros({0, 4}), torch::zeros({0}, torch::kInt64),
                                1.0);
  REQUIRE(got.ok());
  REQUIRE(got->sum.size() == 4);
  for (const torch::Tensor& g : got->sum) CHECK(g.abs().sum().item<double>() == 0.0);
}

TEST_CASE("DP-SGD adds N(0, (sigma C)^2) noise to the clipped sum before averaging", "[dp]") {
  // q = 1 makes the batch the whole data set, so the clipped sum can be recomputed and the
  // noise isolated from the update: noise = -(delta * n / lr) - clipped_sum.
  torch::nn::Sequential module = RandomMlp(200, {100}, 10, 4, torch::kFloat64);
  const int64_t n = 32;
  torch::Tensor x = torch::randn({n, 200}, torch::kFloat64);
  torch::Tensor y = torch::randint(0, 10, {n}, torch::kInt64);
  auto clipped = ClippedGradientSum(module, x, y, 1.5);
  REQUIRE(clipped.ok());
  std::vector<torch::Tensor> before;
  for (const torch::Tensor& p : module->parameters()) before.push_back(p.detach().clone());
  auto sampler = crypto::SecureSampler::FromSeedForTesting(11);
  REQUIRE(sampler.ok());
  DpSgdConfig config;
  config.noise_multiplier = 2.0;
  config.max_grad_norm = 1.5;
  config.sample_rate = 1.0;
  config.learning_rate = 1.0;
  config.steps = 1;
  auto stats = RunDpSgd(module, x, y, config, **sampler);
  REQUIRE(stats.ok());
  CHECK(stats->examples_seen == n);
  std::vector<torch::Tensor> noise;
  auto params = module->parameters();
  for (size_t k = 0; k < params.size(); ++k) {
    noise.push_back(((before[k] - params[k].detach()) * n - clipped->sum[k]).flatten());
  }
  torch::Tensor all = torch::cat(noise);
  const double count = static_cast<double>(all.numel());  // 21,110 values
  const double mean = all.mean().item<double>();
  const double stddev = all.std().item<double>();
  // sigma * C = 3; the mean's standard error is 3 / sqrt(count) ~ 0.02.
  CHECK(std::abs(mean) < 5 * 3.0 / std::sqrt(count));
  CHECK(stddev == Approx(3.0).epsilon(0.03));
}

TEST_CASE("Without noise and clipping, a full-batch DP-SGD step is plain gradient descent",
          "[dp]") {
  torch::nn::Sequential module = RandomMlp(6, {5}, 3, 8, torch::kFloat64);
  torch::nn::Sequential reference = RandomMlp(6, {5}, 3, 8, torch::kFloat64);
  torch::Tensor x = torch::randn({20, 6}, torch::kFloat64);
  torch::Tensor y = torch::randint(0, 3, {20}, torch::kInt64);
  torch::optim::SGD sgd(reference->parameters(), torch::optim::SGDOptions(0.3));
  sgd.zero_grad();
  torch::nn::functional::cross_entropy(reference->forward(x), y).backward();
  sgd.step();
  auto sampler = crypto::SecureSampler::FromSeedForTesting(1);
  REQUIRE(sampler.ok());
  DpSgdConfig config;
  config.noise_multiplier = 0.0;
  config.max_grad_norm = 1e9;
  config.sample_rate = 1.0;
  config.learning_rate = 0.3;
  auto stats = RunDpSgd(module, x, y, config, **sampler);
  REQUIRE(stats.ok());
  auto got = module->parameters();
  auto want = reference->parameters();
  for (size_t k = 0; k < got.size(); ++k) {
    CHECK(torch::allclose(got[k], want[k], 1e-10, 1e-12));
  }
}

}  // namespace cohort::client

namespace cohort::client {

TEST_CASE("A noise seed makes DP-SGD training repeat exactly, and without it it does not",
          "[dp]") {
  auto all = data::LoadCsv(testing::SourcePath("data/wdbc.csv"), "malignant");
  REQUIRE(all.ok());
  config::ModelSpec spec;
  spec.arch = "logreg";
  spec.inputs = 30;
  spec.classes = 2;
  tensor::ParameterLayout layout = model::LayoutFor(spec);
  std::vector<float> global = model::InitialParameters(spec, 1);
  TrainingParams params;
  params.batch_size = 32;
  params.dp = true;
  params.noise_multiplier = 1.0;
  params.max_grad_norm = 1.0;
  auto train = [&](std::optional<uint64_t> noise_seed) {
    data::TrainTestSplit split = data::SplitTrainTest(*all, 0.2, 1);
    auto trainer = MakeTorchTrainerFromSplit(std::move(split), 5, noise_seed);
    auto result = trainer->Train(spec, layout, global, params);
    REQUIRE(result.ok());
    return result->delta;
  };
  CHECK(train(42) == train(42));
  CHECK(train(42) != train(43));
  CHECK(train(std::nullopt) != train(std::nullopt));
}

}  // namespace cohort::client
