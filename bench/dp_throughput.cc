// bench_dp_throughput: training throughput (samples/s) of one DP-SGD step against one
// non-private SGD step on the same model and the same fixed batch of synthetic data, and the
// rate of the secure Gaussian sampler against LibTorch's normal_(), all in one run.
//
// Non-private step: zero_grad, forward, mean cross-entropy, backward, SGD step.
// DP step (fixed batch): DpSgdStepper::Step, i.e. what RunDpSgd does per step apart from the
// Poisson subsampling: the clipped gradient sum (ClippedGradientComputer), N(0, (sigma C)^2)
// noise from the SecureSampler added to it in place (sigma C = 1.0), and the scaled update.
// RunDpSgd itself is also timed (sample_rate = batch / n on an n-row data set, 10 steps per
// call, samples/s = examples seen / time) so the cost of subsampling shows up separately.
// Peak memory: tensor bytes through LibTorch's CPU allocator (a counting wrapper installed with
// c10::SetCPUAllocator) over 3 steps of each kind from a fresh module.
//
// Each measurement: warm-up, then enough steps for >= --min-seconds, repeated --reps times
// (the variants interleaved), median printed. The pieces of the DP step (clip, noise, update)
// are timed alone the same way.
#include <algorithm>
#include <mutex>
#include <unordered_map>
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

#include <c10/core/CPUAllocator.h>
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
constexpr int64_t kRunSteps = 10;

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

// LibTorch's CPU allocator with a count of live and peak bytes: every CPU tensor's storage
// goes through c10::GetCPUAllocator(). Memory that libraries take for themselves (BLAS or
// oneDNN scratch, the sampler's stack buffers) is not counted.
class PeakTrackingAllocator final : public c10::Allocator {
 public:
  // `base` must be a raw allocator (data pointer == context, as LibTorch's default CPU
  // allocator): the sizes are kept in a table by pointer.
  explicit PeakTrackingAllocator(c10::Allocator* base)
      : base_(base), base_deleter_(base->raw_deleter()) {
    instance_ = this;
  }

  c10::DataPtr allocate(size_t n) const override {
    c10::DataPtr inner = base_->allocate(n);
    const c10::Device device = inner.device();
    void* data = inner.release_context();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      sizes_[data] = n;
      live_ += static_cast<int64_t>(n);
      peak_ = std::max(peak_, live_);
    }
    return c10::DataPtr(data, data, &Delete, device);
  }
  c10::DeleterFnPtr raw_deleter() const override { return &Delete; }

  // Starts a new peak at the current live bytes; returns them.
  int64_t ResetPeak() {
    std::lock_guard<std::mutex> lock(mutex_);
    peak_ = live_;
    return peak_;
  }
  int64_t peak() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return peak_;
  }

 private:
  static void Delete(void* data) {
    PeakTrackingAllocator* self = instance_;
    {
      std::lock_guard<std::mutex> lock(self->mutex_);
      auto it = self->sizes_.find(data);
      if (it != self->sizes_.end()) {
        self->live_ -= static_cast<int64_t>(it->second);
        self->sizes_.erase(it);
      }
    }
    self->base_deleter_(data);
  }

  static inline PeakTrackingAllocator* instance_ = nullptr;
  c10::Allocator* base_;
  c10::DeleterFnPtr base_deleter_;
  mutable std::mutex mutex_;
  mutable std::unordered_map<void*, size_t> sizes_;
  mutable int64_t live_ = 0;
  mutable int64_t peak_ = 0;
};

PeakTrackingAllocator* tracker = nullptr;  // installed by main

struct Scenario {
  std::string name;
  std::function<torch::nn::Sequential()> build;  // the same weights on every call
  std::vector<int64_t> example_shape;            // one example's input shape
  int64_t classes;
  int64_t batch;
  double target;  // DP / non-private
};

// Peak tensor bytes of 3 training steps of each kind from a fresh start (optimizer or stepper
// built inside the window, so gradients and reused buffers count), above the live bytes of
// the model and the batch before it.
std::pair<int64_t, int64_t> PeakStepBytes(const Scenario& sc, const torch::Tensor& x,
                                          const torch::Tensor& y,
                                          crypto::SecureSampler& sampler) {
  int64_t plain = 0;
  {
    torch::nn::Sequential module = sc.build();
    const int64_t base = tracker->ResetPeak();
    torch::optim::SGD optimizer(module->parameters(), torch::optim::SGDOptions(kLearningRate));
    for (int i = 0; i < 3; ++i) {
      optimizer.zero_grad();
      torch::Tensor loss = torch::nn::functional::cross_entropy(module->forward(x), y);
      loss.backward();
      optimizer.step();
    }
    plain = tracker->peak() - base;
  }
  int64_t dp = 0;
  {
    torch::nn::Sequential module = sc.build();
    const int64_t base = tracker->ResetPeak();
    client::DpSgdStepper stepper(module, kMaxGradNorm, kNoiseMultiplier, kLearningRate,
                                 static_cast<double>(sc.batch));
    for (int i = 0; i < 3; ++i) Check(stepper.Step(x, y, sampler).status(), "Step");
    dp = tracker->peak() - base;
  }
  return {plain, dp};
}

void RunScenario(const Scenario& sc, crypto::SecureSampler& sampler, int reps, double min_seconds,
                 int64_t min_steps) {
  torch::manual_seed(1);
  const int64_t b = sc.batch;
  std::vector<int64_t> batch_shape = {b};
  batch_shape.insert(batch_shape.end(), sc.example_shape.begin(), sc.example_shape.end());
  const torch::Tensor x = torch::randn(batch_shape);
  const torch::Tensor y = torch::randint(sc.classes, {b}, torch::kInt64);
  const auto [plain_bytes, dp_bytes] = PeakStepBytes(sc, x, y, sampler);

  // Separate (identically built) modules, so that neither variant drifts the other's weights.
  torch::nn::Sequential plain_module = sc.build();
  torch::nn::Sequential dp_module = sc.build();
  torch::nn::Sequential run_module = sc.build();
  torch::nn::Sequential piece_module = sc.build();
  torch::optim::SGD optimizer(plain_module->parameters(), torch::optim::SGDOptions(kLearningRate));
  std::vector<torch::Tensor> piece_params = piece_module->parameters();
  int64_t num_params = 0;
  for (const torch::Tensor& p : piece_params) num_params += p.numel();

  auto plain_step = [&] {
    optimizer.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(plain_module->forward(x), y);
    loss.backward();
    optimizer.step();
  };
  const double noise_stddev = kNoiseMultiplier * kMaxGradNorm;
  const double expected_batch = static_cast<double>(b);
  client::DpSgdStepper stepper(dp_module, kMaxGradNorm, kNoiseMultiplier, kLearningRate,
                               expected_batch);
  auto dp_step = [&] { Check(stepper.Step(x, y, sampler).status(), "DpSgdStepper::Step"); };

  // RunDpSgd on an n-row data set with q = b / n, kRunSteps steps per call (a call builds its
  // stepper and buffers, as a training round does).
  const int64_t n = 100 * b;
  batch_shape[0] = n;
  const torch::Tensor big_x = torch::randn(batch_shape);
  const torch::Tensor big_y = torch::randint(sc.classes, {n}, torch::kInt64);
  client::DpSgdConfig run_config;
  run_config.noise_multiplier = kNoiseMultiplier;
  run_config.max_grad_norm = kMaxGradNorm;
  run_config.sample_rate = static_cast<double>(b) / static_cast<double>(n);
  run_config.learning_rate = kLearningRate;
  run_config.steps = kRunSteps;
  int64_t run_examples = 0;
  auto run_step = [&] {
    absl::StatusOr<client::DpSgdStats> stats =
        client::RunDpSgd(run_module, big_x, big_y, run_config, sampler);
    Check(stats.status(), "RunDpSgd");
    run_examples += stats->examples_seen;
  };

  // The pieces of the DP step, alone.
  client::ClippedGradientComputer clipper(piece_module);
  auto clip_only = [&] { Check(clipper.Compute(x, y, kMaxGradNorm).status(), "Compute"); };
  torch::Tensor flat = torch::zeros({num_params});
  auto noise_only = [&] {
    Check(sampler.AddGaussian(flat.data_ptr<float>(), flat.numel(), noise_stddev), "Gaussian");
  };
  std::vector<torch::Tensor> fake_sums;
  for (const torch::Tensor& p : piece_params) fake_sums.push_back(torch::randn_like(p));
  auto update_only = [&] {
    torch::NoGradGuard no_grad;
    for (size_t k = 0; k < piece_params.size(); ++k) {
      piece_params[k].add_(fake_sums[k], -1e-9 / expected_batch);  // keep the weights fixed
    }
  };

  std::vector<Timed> main_variants = {{"non-private SGD step", plain_step},
                                      {"DP-SGD step (fixed batch)", dp_step}};
  Measure(main_variants, reps, min_seconds, min_steps);
  // RunDpSgd's batch size is random: size the calls, then time them with the examples counted.
  std::vector<Timed> run_variant = {{"RunDpSgd (Poisson, 10 steps/call)", run_step}};
  Measure(run_variant, 1, min_seconds, std::max<int64_t>(1, min_steps / kRunSteps));
  Timed& run = run_variant[0];
  std::vector<double> run_rates;
  for (int r = 0; r < reps; ++r) {
    run_examples = 0;
    const double s = Seconds(run.step, run.steps);
    run_rates.push_back(static_cast<double>(run_examples) / s);
  }
  std::vector<Timed> pieces = {{"  clip (ClippedGradientComputer)", clip_only},
                               {"  noise (SecureSampler::AddGaussian)", noise_only},
                               {"  update (add_)", update_only}};
  Measure(pieces, reps, min_seconds, min_steps);

  const double plain_rate = static_cast<double>(b) / MedianPerStep(main_variants[0]);
  const double dp_rate = static_cast<double>(b) / MedianPerStep(main_variants[1]);
  const double run_rate = Median(run_rates);
  const double ratio = dp_rate / plain_rate;
  const char* method = stepper.method() == client::ClippingMethod::kLinear ? "closed form"
                       : stepper.method() == client::ClippingMethod::kConv ? "conv (hooks + per-example conv grads)"
                                                                            : "per-example loop";
  std::printf("\n%s, batch %lld, %lld parameters, clipping: %s\n", sc.name.c_str(),
              static_cast<long long>(b), static_cast<long long>(num_params), method);
  std::printf("  %-36s %10s %12s %14s\n", "variant", "steps/rep", "ms/step", "samples/s");
  auto row = [](const Timed& t, double rate) {
    std::printf("  %-36s %10lld %12.4f %14.0f\n", t.name.c_str(),
                static_cast<long long>(t.steps), 1e3 * MedianPerStep(t), rate);
  };
  row(main_variants[0], plain_rate);
  row(main_variants[1], dp_rate);
  std::printf("  %-36s %10lld %12s %14.0f\n", run.name.c_str(),
              static_cast<long long>(run.steps * kRunSteps), "-", run_rate);
  const double dp_ms = 1e3 * MedianPerStep(main_variants[1]);
  for (const Timed& t : pieces) {
    const double ms = 1e3 * MedianPerStep(t);
    std::printf("  %-36s %10lld %12.4f %13.0f%% of DP step\n", t.name.c_str(),
                static_cast<long long>(t.steps), ms, 100 * ms / dp_ms);
  }
  std::printf("  ratio DP/non-private (fixed batch): %.3f (target >= %.2f: %s)\n", ratio,
              sc.target, ratio >= sc.target ? "met" : "MISSED");
  std::printf("  ratio RunDpSgd/non-private:         %.3f\n", run_rate / plain_rate);
  const double memory_ratio = static_cast<double>(dp_bytes) / static_cast<double>(plain_bytes);
  std::printf(
      "  peak tensor memory of 3 steps: non-private %.1f KiB, DP %.1f KiB: ratio %.3f "
      "(target <= 1.50: %s)\n",
      plain_bytes / 1024.0, dp_bytes / 1024.0, memory_ratio,
      memory_ratio <= 1.5 ? "met" : "MISSED");
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
  std::string only;
  app.add_option("--reps", reps, "Repetitions per measurement (the median is printed)")
      ->check(CLI::PositiveNumber);
  app.add_option("--min-seconds", min_seconds, "Minimum seconds per timed repetition")
      ->check(CLI::PositiveNumber);
  app.add_option("--min-steps", min_steps, "Minimum steps per timed repetition")
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", threads, "torch::set_num_threads")->check(CLI::PositiveNumber);
  app.add_option("--sampling-reps", sampling_reps, "Repetitions of the 4M-value fills")
      ->check(CLI::PositiveNumber);
  app.add_option("--only", only,
                 "Run only the scenarios whose name contains this (\"sampling\": the sampler)");
  CLI11_PARSE(app, argc, argv);

  torch::set_num_threads(threads);
  static bench::PeakTrackingAllocator tracking_allocator(c10::GetCPUAllocator());
  c10::SetCPUAllocator(&tracking_allocator, /*priority=*/100);
  bench::tracker = &tracking_allocator;
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
  auto built_in = [](const config::ModelSpec& spec) {
    return [spec] {
      torch::manual_seed(7);
      return model::BuildModule(spec);
    };
  };
  // Two 3x3 convolutions (1->16->32, ReLU, 2x2 max-pool), then Linear 1568->128->10.
  auto cnn = [] {
    torch::manual_seed(7);
    using namespace torch::nn;  // NOLINT: a model definition
    return Sequential(Conv2d(Conv2dOptions(1, 16, 3).padding(1)), ReLU(),
                      MaxPool2d(MaxPool2dOptions(2)), Conv2d(Conv2dOptions(16, 32, 3).padding(1)),
                      ReLU(), MaxPool2d(MaxPool2dOptions(2)), Flatten(), Linear(32 * 7 * 7, 128),
                      ReLU(), Linear(128, 10));
  };
  const std::vector<bench::Scenario> scenarios = {
      {"logistic regression 30->2", built_in(logreg), {30}, 2, 64, 0.7},
      {"MLP 784-512-256-10", built_in(mlp), {784}, 10, 128, 0.6},
      {"CNN conv3x3(1->16)-pool-conv3x3(16->32)-pool-128-10 on 28x28x1", cnn, {1, 28, 28}, 10,
       128, 0.75},
  };
  for (const bench::Scenario& sc : scenarios) {
    if (sc.name.find(only) == std::string::npos) continue;
    bench::RunScenario(sc, **sampler, reps, min_seconds, min_steps);
  }
  if (only.empty() || only == "sampling") bench::RunSampling(**sampler, sampling_reps);
  return 0;
}
