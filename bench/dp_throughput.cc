// bench_dp_throughput: training throughput (samples/s) of one DP-SGD step against one
// non-private SGD step on the same model and the same fixed batch of synthetic data, and the
// rate of the secure Gaussian sampler against LibTorch's normal_(), all in one run.
//
// Non-private step: zero_grad, forward, mean cross-entropy, backward, SGD step.
// DP step (fixed batch): what RunDpSgd does per step apart from the Poisson subsampling and its
// loss bookkeeping: ClippedGradientSum on the batch, N(0, (sigma C)^2) noise from the
// SecureSampler for every parameter (sigma C = 1.0), and the scaled update. RunDpSgd itself is
// also timed (sample_rate = batch / n on an n-row data set, samples/s = examples seen / time)
// so the cost of subsampling and the extra loss forward shows up separately.
//
// Each measurement: warm-up, then enough steps for >= --min-seconds, repeated --reps times
// (the variants interleaved), median printed. The pieces of the DP step (clip, noise, update)
// are timed alone the same way.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "bench/stats.h"
#include "client/dp_sgd.h"
#include "common/config/coordinator_config.h"
#include "common/crypto/secure_sampler.h"
#include "common/model/torch_model.h"

namespace cohort::bench {
namespace {

constexpr double kNoiseMultiplier = 1.0;  // sigma
constexpr double kMaxGradNorm = 1.0;      // C: sigma * C = 1.0
constexpr double kLearningRate = 0.05;

double Seconds(const std::function<void()>& f, int64_t times) {
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < times; ++i) f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, std::string(s.message()).c_str());
    std::exit(1);
  }
}

// A step function to time, with the number of steps per repetition fixed after warm-up.
struct Timed {
  Timed(std::string n, std::function<void()> f) : name(std::move(n)), step(std::move(f)) {}
  std::string name;
  std::function<void()> step;
  int64_t steps = 0;
  std::vector<double> seconds;  // per repetition
};

// Warms each variant up, sizes its repetitions to >= min_seconds (and >= min_steps), then runs
// `reps` rounds over all variants, interleaved.
void Measure(std::vector<Timed>& variants, int reps, double min_seconds, int64_t min_steps) {
  for (Timed& t : variants) {
    Seconds(t.step, 20);
    // Size from a ~0.2 s calibration run (a fixed small count misjudges sub-0.1 ms steps).
    int64_t count = 0;
    double elapsed = 0;
    for (int64_t chunk = 10; elapsed < 0.2; chunk *= 2) {
      elapsed += Seconds(t.step, chunk);
      count += chunk;
    }
    const double per_step = elapsed / static_cast<double>(count);
    t.steps = std::max<int64_t>(min_steps,
                                static_cast<int64_t>(std::ceil(1.1 * min_seconds / per_step)));
  }
  for (int r = 0; r < reps; ++r) {
    for (Timed& t : variants) t.seconds.push_back(Seconds(t.step, t.steps));
  }
}

double MedianPerStep(const Timed& t) {
  std::vector<double> per;
  for (double s : t.seconds) per.push_back(s / static_cast<double>(t.steps));
  return Median(per);
}

struct Scenario {
  std::string name;
  config::ModelSpec spec;
  int64_t batch;
  double target;  // DP / non-private
};

void RunScenario(const Scenario& sc, crypto::SecureSampler& sampler, int reps, double min_seconds,
                 int64_t min_steps) {
  torch::manual_seed(1);
  const int64_t b = sc.batch;
  const torch::Tensor x = torch::randn({b, sc.spec.inputs});
  const torch::Tensor y = torch::randint(sc.spec.classes, {b}, torch::kInt64);

  // Separate (identically built) modules, so that neither variant drifts the other's weights.
  torch::nn::Sequential plain_module = model::BuildModule(sc.spec);
  torch::nn::Sequential dp_module = model::BuildModule(sc.spec);
  torch::nn::Sequential run_module = model::BuildModule(sc.spec);
  torch::nn::Sequential piece_module = model::BuildModule(sc.spec);
  torch::optim::SGD optimizer(plain_module->parameters(), torch::optim::SGDOptions(kLearningRate));
  std::vector<torch::Tensor> dp_params = dp_module->parameters();
  std::vector<torch::Tensor> piece_params = piece_module->parameters();
  int64_t num_params = 0;
  for (const torch::Tensor& p : dp_params) num_params += p.numel();

  auto plain_step = [&] {
    optimizer.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(plain_module->forward(x), y);
    loss.backward();
    optimizer.step();
  };
  const double noise_stddev = kNoiseMultiplier * kMaxGradNorm;
  const double expected_batch = static_cast<double>(b);
  auto dp_step = [&] {
    absl::StatusOr<client::ClippedGradients> grads =
        client::ClippedGradientSum(dp_module, x, y, kMaxGradNorm);
    Check(grads.status(), "ClippedGradientSum");
    torch::NoGradGuard no_grad;
    for (size_t k = 0; k < dp_params.size(); ++k) {
      torch::Tensor noise = torch::empty_like(dp_params[k], torch::kFloat32);
      Check(sampler.Gaussian(noise.data_ptr<float>(), noise.numel(), noise_stddev), "Gaussian");
      torch::Tensor update = (grads->sum[k] + noise.to(dp_params[k].dtype())) / expected_batch;
      dp_params[k].sub_(update * kLearningRate);
    }
  };

  // RunDpSgd on an n-row data set with q = b / n, one step per call.
  const int64_t n = 100 * b;
  const torch::Tensor big_x = torch::randn({n, sc.spec.inputs});
  const torch::Tensor big_y = torch::randint(sc.spec.classes, {n}, torch::kInt64);
  client::DpSgdConfig run_config;
  run_config.noise_multiplier = kNoiseMultiplier;
  run_config.max_grad_norm = kMaxGradNorm;
  run_config.sample_rate = static_cast<double>(b) / static_cast<double>(n);
  run_config.learning_rate = kLearningRate;
  run_config.steps = 1;
  int64_t run_examples = 0;
  auto run_step = [&] {
    absl::StatusOr<client::DpSgdStats> stats =
        client::RunDpSgd(run_module, big_x, big_y, run_config, sampler);
    Check(stats.status(), "RunDpSgd");
    run_examples += stats->examples_seen;
  };

  // The pieces of the DP step, alone.
  auto clip_only = [&] {
    absl::StatusOr<client::ClippedGradients> grads =
        client::ClippedGradientSum(piece_module, x, y, kMaxGradNorm);
    Check(grads.status(), "ClippedGradientSum");
  };
  std::vector<torch::Tensor> noise_buffers;
  std::vector<torch::Tensor> fake_sums;
  for (const torch::Tensor& p : piece_params) {
    noise_buffers.push_back(torch::empty_like(p, torch::kFloat32));
    fake_sums.push_back(torch::randn_like(p));
  }
  auto noise_only = [&] {
    for (torch::Tensor& buf : noise_buffers) {
      Check(sampler.Gaussian(buf.data_ptr<float>(), buf.numel(), noise_stddev), "Gaussian");
    }
  };
  auto update_only = [&] {
    torch::NoGradGuard no_grad;
    for (size_t k = 0; k < piece_params.size(); ++k) {
      torch::Tensor update = (fake_sums[k] + noise_buffers[k].to(piece_params[k].dtype())) /
                             expected_batch;
      piece_params[k].sub_(update * 1e-9);  // keep the weights (nearly) fixed
    }
  };

  std::vector<Timed> main_variants = {{"non-private SGD step", plain_step},
                                      {"DP-SGD step (fixed batch)", dp_step},
                                      {"RunDpSgd (Poisson, 1 step/call)", run_step}};
  Measure(main_variants, reps, min_seconds, min_steps);
  // RunDpSgd's batch size is random: re-time it with the examples counted.
  Timed& run = main_variants[2];
  run.seconds.clear();
  std::vector<double> run_rates;
  for (int r = 0; r < reps; ++r) {
    run_examples = 0;
    const double s = Seconds(run.step, run.steps);
    run_rates.push_back(static_cast<double>(run_examples) / s);
  }
  std::vector<Timed> pieces = {{"  clip (ClippedGradientSum)", clip_only},
                               {"  noise (SecureSampler)", noise_only},
                               {"  update", update_only}};
  Measure(pieces, reps, min_seconds, min_steps);

  const double plain_rate = static_cast<double>(b) / MedianPerStep(main_variants[0]);
  const double dp_rate = static_cast<double>(b) / MedianPerStep(main_variants[1]);
  const double run_rate = Median(run_rates);
  const double ratio = dp_rate / plain_rate;
  std::printf("\n%s, batch %lld, %lld parameters\n", sc.name.c_str(), static_cast<long long>(b),
              static_cast<long long>(num_params));
  std::printf("  %-34s %10s %12s %14s\n", "variant", "steps/rep", "ms/step", "samples/s");
  auto row = [](const Timed& t, double rate) {
    std::printf("  %-34s %10lld %12.4f %14.0f\n", t.name.c_str(),
                static_cast<long long>(t.steps), 1e3 * MedianPerStep(t), rate);
  };
  row(main_variants[0], plain_rate);
  row(main_variants[1], dp_rate);
  std::printf("  %-34s %10lld %12s %14.0f\n", run.name.c_str(), static_cast<long long>(run.steps),
              "-", run_rate);
  const double dp_ms = 1e3 * MedianPerStep(main_variants[1]);
  for (const Timed& t : pieces) {
    const double ms = 1e3 * MedianPerStep(t);
    std::printf("  %-34s %10lld %12.4f %13.0f%% of DP step\n", t.name.c_str(),
                static_cast<long long>(t.steps), ms, 100 * ms / dp_ms);
  }
  std::printf("  ratio DP/non-private (fixed batch): %.3f (target >= %.2f: %s)\n", ratio,
              sc.target, ratio >= sc.target ? "met" : "MISSED");
  std::printf("  ratio RunDpSgd/non-private:         %.3f\n", run_rate / plain_rate);
}

void RunSampling(crypto::SecureSampler& sampler, int reps) {
  constexpr int64_t kCount = int64_t{4} << 20;  // 4M floats
  std::vector<float> buffer(kCount);
  torch::Tensor t = torch::empty({kCount});
  const int sampler_threads = sampler.threads();
  auto fill = [&] { Check(sampler.Gaussian(buffer.data(), buffer.size(), 1.0), "Gaussian"); };
  // Warm-up.
  fill();
  t.normal_();
  std::vector<double> secure;
  std::vector<double> libtorch;
  for (int r = 0; r < reps; ++r) {
    secure.push_back(Seconds(fill, 1));
    libtorch.push_back(Seconds([&] { t.normal_(); }, 1));
  }
  // Both again with one thread.
  const int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  sampler.set_threads(1);
  fill();
  t.normal_();
  std::vector<double> secure_one;
  std::vector<double> libtorch_one;
  for (int r = 0; r < reps; ++r) {
    secure_one.push_back(Seconds(fill, 1));
    libtorch_one.push_back(Seconds([&] { t.normal_(); }, 1));
  }
  torch::set_num_threads(threads);
  sampler.set_threads(sampler_threads);
  auto rate = [](const std::vector<double>& s) { return static_cast<double>(kCount) / Median(s); };
  std::printf("\nGaussian sampling, 4M float32 values, median of %d\n", reps);
  std::printf("  %-40s %12s %14s\n", "sampler", "ms/fill", "values/s");
  auto row = [&](const std::string& name, const std::vector<double>& s) {
    std::printf("  %-40s %12.2f %14.3g\n", name.c_str(), 1e3 * Median(s), rate(s));
  };
  row(absl::StrFormat("SecureSampler::Gaussian (%d threads)", sampler_threads), secure);
  row(absl::StrFormat("torch::Tensor::normal_() (%d threads)", threads), libtorch);
  row("SecureSampler::Gaussian (1 thread)", secure_one);
  row("torch::Tensor::normal_() (1 thread)", libtorch_one);
  const double ratio = rate(secure) / rate(libtorch);
  std::printf("  ratio secure/LibTorch: %.3f (target >= 1.50: %s); 1 thread each: %.3f\n", ratio,
              ratio >= 1.5 ? "met" : "MISSED", rate(secure_one) / rate(libtorch_one));
}

}  // namespace
}  // namespace cohort::bench

int main(int argc, char** argv) {
  using namespace cohort;  // NOLINT: a benchmark driver
  CLI::App app{"bench_dp_throughput: DP-SGD vs non-private SGD throughput, secure sampling rate"};
  int reps = 3;
  double min_seconds = 1.0;
  int64_t min_steps = 300;
  int threads = 2;
  int sampling_reps = 7;
  app.add_option("--reps", reps, "Repetitions per measurement (the median is printed)")
      ->check(CLI::PositiveNumber);
  app.add_option("--min-seconds", min_seconds, "Minimum seconds per timed repetition")
      ->check(CLI::PositiveNumber);
  app.add_option("--min-steps", min_steps, "Minimum steps per timed repetition")
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "torch::set_num_threads")->check(CLI::PositiveNumber);
  app.add_option("--sampling-reps", sampling_reps, "Repetitions of the 4M-value fills")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  torch::set_num_threads(threads);
  absl::StatusOr<std::unique_ptr<crypto::SecureSampler>> sampler =
      crypto::SecureSampler::FromOsEntropy();
  if (!sampler.ok()) {
    std::fprintf(stderr, "SecureSampler: %s\n", std::string(sampler.status().message()).c_str());
    return 1;
  }
  std::printf("bench_dp_throughput: torch threads %d, sigma*C = %.1f, median of %d reps\n",
              threads, bench::kNoiseMultiplier * bench::kMaxGradNorm, reps);

  config::ModelSpec logreg;
  logreg.arch = "logreg";
  logreg.inputs = 30;
  logreg.classes = 2;
  config::ModelSpec mlp;
  mlp.arch = "mlp";
  mlp.inputs = 784;
  mlp.hidden = {512, 256};
  mlp.classes = 10;
  const std::vector<bench::Scenario> scenarios = {
      {"logistic regression 30->2", logreg, 64, 0.7},
      {"MLP 784-512-256-10", mlp, 128, 0.6},
  };
  for (const bench::Scenario& sc : scenarios) {
    bench::RunScenario(sc, **sampler, reps, min_seconds, min_steps);
  }
  bench::RunSampling(**sampler, sampling_reps);
  return 0;
}
