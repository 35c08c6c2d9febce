// FedProx at the sites: the proximal term (mu / 2) ||w - w_global||^2 in plain SGD and in
// DP-SGD (added outside the clipped, noised sum), with the real LibTorch trainer.
#include <catch2/catch.hpp>

#include "client/dp_sgd.h"
#include "client/torch_trainer.h"
#include "common/data/csv.h"
#include "common/data/split.h"
#include "common/model/models.h"
#include "common/model/torch_model.h"
#include "tests/support/temp_dir.h"

namespace cohort::client {
namespace {

torch::nn::Sequential SmallMlp(uint64_t seed) {
  torch::manual_seed(seed);
  config::ModelSpec spec;
  spec.arch = "mlp";
  spec.inputs = 6;
  spec.hidden = {5};
  spec.classes = 3;
  torch::nn::Sequential module = model::BuildModule(spec);
  module->to(torch::kFloat64);
  return module;
}

std::vector<torch::Tensor> Snapshot(torch::nn::Sequential& module) {
  std::vector<torch::Tensor> out;
  for (const torch::Tensor& p : module->parameters()) out.push_back(p.detach().clone());
  return out;
}

double SquaredNorm(const std::vector<float>& values) {
  double sum = 0;
  for (float v : values) sum += static_cast<double>(v) * v;
  return sum;
}

}  // namespace

TEST_CASE("DP-SGD with a proximal term steps by the clipped mean gradient plus the unclipped "
          "mu (w - w_global)",
          "[dp][fedprox]") {
  // No noise, q = 1 (the whole data set each step), a tight clipping norm: the reference
  // clips per example itself and adds mu (w - w0) after clipping.
  torch::nn::Sequential module = SmallMlp(3);
  torch::nn::Sequential reference = SmallMlp(3);
  const int64_t n = 24;
  torch::Tensor x = torch::randn({n, 6}, torch::kFloat64) * 3;
  torch::Tensor y = torch::randint(0, 3, {n}, torch::kInt64);
  const double lr = 0.4, mu = 2.0, clip = 0.05;
  const std::vector<torch::Tensor> w0 = Snapshot(reference);
  for (int step = 0; step < 3; ++step) {
    auto clipped = ClippedGradientSum(reference, x, y, clip);
    REQUIRE(clipped.ok());
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> params = reference->parameters();
    for (size_t k = 0; k < params.size(); ++k) {
      params[k] -= lr * (clipped->sum[k] / n + mu * (params[k] - w0[k]));
    }
  }
  auto sampler = crypto::SecureSampler::FromSeedForTesting(1);
  REQUIRE(sampler.ok());
  DpSgdConfig config;
  config.noise_multiplier = 0.0;
  config.max_grad_norm = clip;
  config.sample_rate = 1.0;
  config.learning_rate = lr;
  config.steps = 3;
  config.proximal_mu = mu;
  REQUIRE(RunDpSgd(module, x, y, config, **sampler).ok());
  auto got = module->parameters();
  auto want = reference->parameters();
  for (size_t k = 0; k < got.size(); ++k) CHECK(torch::allclose(got[k], want[k], 1e-10, 1e-12));
}

TEST_CASE("A DP-SGD step on an empty batch without noise only pulls toward the anchor",
          "[dp][fedprox]") {
  torch::nn::Sequential module = SmallMlp(5);
  const std::vector<torch::Tensor> anchor = Snapshot(module);
  DpSgdStepper stepper(module, /*max_grad_norm=*/1.0, /*noise_multiplier=*/0.0,
                       /*learning_rate=*/0.5, /*expected_batch=*/10);
  stepper.SetProximal(0.4);
  {
    torch::NoGradGuard no_grad;
    for (torch::Tensor p : module->parameters()) p.add_(1.0);
  }
  auto sampler = crypto::SecureSampler::FromSeedForTesting(2);
  REQUIRE(sampler.ok());
  torch::Tensor x = torch::zeros({0, 6}, torch::kFloat64);
  torch::Tensor y = torch::zeros({0}, torch::kInt64);
  REQUIRE(stepper.Step(x, y, **sampler).ok());
  // w - lr mu (w - a) = a + 1 - 0.2 = a + 0.8.
  auto params = module->parameters();
  for (size_t k = 0; k < params.size(); ++k) {
    CHECK(torch::allclose(params[k], anchor[k] + 0.8, 1e-12, 1e-12));
  }
}

TEST_CASE("FedProx mu pulls the LibTorch update toward the global model, with and without "
          "DP-SGD; mu = 0 changes nothing",
          "[torch][fedprox]") {
  auto all = data::LoadCsv(testing::SourcePath("data/wdbc.csv"), "malignant");
  REQUIRE(all.ok());
  config::ModelSpec spec;
  spec.arch = "mlp";
  spec.inputs = 30;
  spec.hidden = {8};
  spec.classes = 2;
  tensor::ParameterLayout layout = model::LayoutFor(spec);
  std::vector<float> global = model::InitialParameters(spec, 1);
  auto train = [&](bool dp, double mu, bool set_mu) {
    data::TrainTestSplit split = data::SplitTrainTest(*all, 0.2, 1);
    data::Standardizer standardizer = data::Standardizer::Fit(split.train);
    standardizer.Apply(&split.train);
    auto trainer = MakeTorchTrainerFromSplit(std::move(split), 5, /*noise_seed=*/42);
    TrainingParams params;
    params.epochs = 3;
    params.batch_size = 16;
    params.learning_rate = 0.1;
    if (dp) {
      params.dp = true;
      params.noise_multiplier = 0.5;
      params.max_grad_norm = 1.0;
    }
    if (set_mu) params.proximal_mu = mu;
    auto result = trainer->Train(spec, layout, global, params);
    REQUIRE(result.ok());
    return result->delta;
  };
  for (bool dp : {false, true}) {
    INFO("dp: " << dp);
    const std::vector<float> plain = train(dp, 0.0, false);
    CHECK(train(dp, 0.0, true) == plain);  // mu = 0 is exactly the old training
    const double free_norm = SquaredNorm(plain);
    const double pulled_norm = SquaredNorm(train(dp, 1.0, true));
    const double strongly_pulled_norm = SquaredNorm(train(dp, 5.0, true));
    CHECK(free_norm > 0);
    CHECK(pulled_norm < free_norm);
    CHECK(strongly_pulled_norm < pulled_norm);
  }
}

}  // namespace cohort::client
