#include "client/torch_trainer.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/dp_sgd.h"
#include "absl/strings/str_join.h"
#include "common/crypto/secure_sampler.h"
#include "common/data/site_data.h"
#include "common/model/models.h"
#include "common/model/torch_model.h"

namespace cohort::client {
namespace {

// Evaluation runs over the held-out set in batches of this many rows (a CNN's activations for
// a whole test set would take gigabytes).
constexpr int64_t kEvalBatch = 512;

// Trains and evaluates built-in models with LibTorch on an in-memory split (rows of a table,
// or flattened images whose shape the data records).
class TorchTrainer final : public Trainer {
 public:
  TorchTrainer(data::TrainTestSplit split, uint64_t seed, std::optional<uint64_t> noise_seed,
               std::optional<model::TrainableModel> script)
      : seed_(seed), noise_seed_(noise_seed), script_(std::move(script)) {
    train_x_ = ToTensor(split.train);
    train_y_ = torch::tensor(split.train.labels, torch::kInt64);
    test_x_ = ToTensor(split.test);
    test_y_ = torch::tensor(split.test.labels, torch::kInt64);
    num_features_ = split.train.cols();
    shape_ = split.train.shape;
    max_label_ = 0;
    for (int64_t y : split.train.labels) max_label_ = std::max(max_label_, y);
    for (int64_t y : split.test.labels) max_label_ = std::max(max_label_, y);
    if (script_) script_layout_ = script_->Layout();
  }

  uint64_t train_examples() const override { return train_y_.size(0); }
  uint64_t test_examples() const override { return test_y_.size(0); }
  int64_t num_features() const override { return num_features_; }
  std::optional<tensor::ParameterLayout> LocalModelLayout() const override {
    if (!script_) return std::nullopt;
    return script_layout_;
  }

  absl::Status CheckModel(const config::ModelSpec& spec,
                          const tensor::ParameterLayout& layout) const override {
    // The spec comes from the coordinator: check its bounds before building anything from it.
    if (absl::Status s = config::CheckModelSpec(spec); !s.ok()) return s;
    if (absl::Status s = model::CheckSiteArchitecture(
            spec, layout, script_ ? std::optional(script_layout_) : std::nullopt);
        !s.ok()) {
      return absl::InvalidArgumentError(s.message());
    }
    if (spec.arch == "torchscript") return CheckScriptOutputs();
    if (spec.arch == "cnn" && !shape_.empty() && spec.input_shape != shape_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the federation's cnn takes ", absl::StrJoin(spec.input_shape, "x"),
          " images but this site's images are ", absl::StrJoin(shape_, "x")));
    }
    if (spec.inputs != num_features_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the federation's model takes ", spec.inputs, " inputs but this site's data has ",
          num_features_, " feature columns"));
    }
    if (max_label_ >= spec.classes) {
      return absl::InvalidArgumentError(absl::StrCat("this site's data has label ", max_label_,
                                                     " but the model has ", spec.classes,
                                                     " classes"));
    }
    torch::nn::Sequential module = model::BuildModule(spec);
    const tensor::ParameterLayout built = model::ModuleLayout(module);
    if (built.Fingerprint() != layout.Fingerprint()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model layout mismatch: coordinator sent ", layout.Fingerprint(),
                       ", this site builds ", built.Fingerprint()));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<TrainResult> Train(const config::ModelSpec& spec,
                                    const tensor::ParameterLayout& layout,
                                    const std::vector<float>& global,
                                    const TrainingParams& params) override {
    const absl::Time start = absl::Now();
    try {
      absl::StatusOr<model::TrainableModel*> found = ModelFor(spec);
      if (!found.ok()) return found.status();
      model::TrainableModel& module = **found;
      if (absl::Status s = module.LoadFlat(layout, global); !s.ok()) return s;
      module.SetTraining(true);
      const torch::Tensor train_x = Input(spec, train_x_);
      if (params.dp) return TrainWithDp(module, train_x, global, params, start);
      torch::optim::SGD optimizer(module.Parameters(),
                                  torch::optim::SGDOptions(params.learning_rate));
      // FedProx: the gradient of (mu / 2) ||w - w_global||^2 is added to each step's.
      std::vector<torch::Tensor> anchors;
      if (params.proximal_mu > 0) {
        torch::NoGradGuard no_grad;
        for (const torch::Tensor& p : module.Parameters()) anchors.push_back(p.detach().clone());
      }
      torch::Generator generator = at::detail::createCPUGenerator(seed_ + round_counter_++);
      const int64_t n = train_x_.size(0);
      double last_epoch_loss = 0;
      for (int64_t epoch = 0; epoch < params.epochs; ++epoch) {
        torch::Tensor order = torch::randperm(n, generator, torch::kInt64);
        double loss_sum = 0;
        for (int64_t begin = 0; begin < n; begin += params.batch_size) {
          torch::Tensor idx = order.slice(0, begin, std::min(n, begin + params.batch_size));
          torch::Tensor x = train_x.index_select(0, idx);
          torch::Tensor y = train_y_.index_select(0, idx);
          optimizer.zero_grad();
          torch::Tensor loss = torch::nn::functional::cross_entropy(module.Forward(x), y);
          loss.backward();
          if (!anchors.empty()) {
            torch::NoGradGuard no_grad;
            std::vector<torch::Tensor> parameters = module.Parameters();
            for (size_t k = 0; k < parameters.size(); ++k) {
              parameters[k].mutable_grad().add_(parameters[k].detach() - anchors[k],
                                                params.proximal_mu);
            }
          }
          optimizer.step();
          loss_sum += loss.item<double>() * idx.size(0);
        }
        last_epoch_loss = loss_sum / std::max<int64_t>(n, 1);
      }
      TrainResult result;
      std::vector<float> trained = module.Flatten();
      result.delta.resize(trained.size());
      for (size_t i = 0; i < trained.size(); ++i) result.delta[i] = trained[i] - global[i];
      result.train_loss = last_epoch_loss;
      result.examples = static_cast<uint64_t>(n);
      result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
      return result;
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("local training failed: ", e.what()));
    }
  }

  absl::StatusOr<EvalResult> Evaluate(const config::ModelSpec& spec,
                                      const tensor::ParameterLayout& layout,
                                      const std::vector<float>& values) override {
    try {
      absl::StatusOr<model::TrainableModel*> found = ModelFor(spec);
      if (!found.ok()) return found.status();
      model::TrainableModel& module = **found;
      if (absl::Status s = module.LoadFlat(layout, values); !s.ok()) return s;
      module.SetTraining(false);
      torch::NoGradGuard no_grad;
      EvalResult result;
      result.examples = static_cast<uint64_t>(test_x_.size(0));
      if (result.examples == 0) return result;
      const torch::Tensor test_x = Input(spec, test_x_);
      const int64_t n = test_x.size(0);
      double loss_sum = 0;
      int64_t correct = 0;
      // Two-class models also keep P(y = 1) and the decision of every example (binary metrics).
      std::vector<float> scores;
      std::vector<bool> decisions;
      for (int64_t begin = 0; begin < n; begin += kEvalBatch) {
        const int64_t end = std::min(n, begin + kEvalBatch);
        torch::Tensor logits = module.Forward(test_x.slice(0, begin, end));
        torch::Tensor y = test_y_.slice(0, begin, end);
        loss_sum += torch::nn::functional::cross_entropy(
                        logits, y,
                        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                        .item<double>();
        torch::Tensor predicted = logits.argmax(1);
        correct += predicted.eq(y).sum().item<int64_t>();
        if (logits.size(1) == 2) {
          torch::Tensor score =
              torch::softmax(logits, 1).select(1, 1).contiguous().to(torch::kFloat);
          torch::Tensor positive = predicted.eq(1).contiguous();
          const float* s = score.data_ptr<float>();
          const bool* p = positive.data_ptr<bool>();
          for (int64_t i = 0; i < end - begin; ++i) {
            scores.push_back(s[i]);
            decisions.push_back(p[i]);
          }
        }
      }
      result.loss = loss_sum / static_cast<double>(n);
      result.correct = static_cast<uint64_t>(correct);
      if (!scores.empty()) {
        torch::Tensor labels = test_y_.to(torch::kInt64).contiguous();
        absl::StatusOr<data::BinaryMetrics> binary = data::ComputeBinaryMetrics(
            scores,
            absl::MakeConstSpan(labels.data_ptr<int64_t>(), static_cast<size_t>(labels.size(0))),
            decisions);
        if (!binary.ok()) return binary.status();
        result.binary = *binary;
      }
      return result;
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("evaluation failed: ", e.what()));
    }
  }

 private:
  // DP-SGD: epochs x ceil(n / batch) Poisson-sampled steps at q = batch / n.
  absl::StatusOr<TrainResult> TrainWithDp(model::TrainableModel& module,
                                          const torch::Tensor& train_x,
                                          const std::vector<float>& global,
                                          const TrainingParams& params, absl::Time start) {
    const int64_t n = train_x.size(0);
    if (n == 0) return absl::FailedPreconditionError("no training data");
    if (noise_ == nullptr) {
      absl::StatusOr<std::unique_ptr<crypto::SecureSampler>> sampler =
          noise_seed_.has_value() ? crypto::SecureSampler::FromSeedForTesting(*noise_seed_)
                                  : crypto::SecureSampler::FromOsEntropy();
      if (!sampler.ok()) return sampler.status();
      noise_ = std::move(*sampler);
    }
    DpSgdConfig config;
    config.noise_multiplier = params.noise_multiplier;
    config.max_grad_norm = params.max_grad_norm;
    const DpRoundPlan plan = PlanDpRound(n, params.batch_size, params.epochs);
    config.sample_rate = plan.sample_rate;
    config.learning_rate = params.learning_rate;
    config.steps = plan.steps;
    config.proximal_mu = params.proximal_mu;
    absl::StatusOr<DpSgdStats> stats =
        module.sequential() != nullptr
            ? RunDpSgd(*module.sequential(), train_x, train_y_, config, *noise_)
            : RunDpSgd(DifferentiableModel{[&module](const torch::Tensor& x) {
                                             return module.Forward(x);
                                           },
                                           module.Parameters()},
                       train_x, train_y_, config, *noise_);
    if (!stats.ok()) return stats.status();
    TrainResult result;
    std::vector<float> trained = module.Flatten();
    result.delta.resize(trained.size());
    for (size_t i = 0; i < trained.size(); ++i) result.delta[i] = trained[i] - global[i];
    result.train_loss = stats->mean_loss;
    result.examples = static_cast<uint64_t>(n);
    result.seconds = absl::ToDoubleSeconds(absl::Now() - start);
    result.dp_steps = stats->steps;
    result.dp_sample_rate = config.sample_rate;
    return result;
  }

  // The model for a task: the site's TorchScript module, or a freshly built built-in one.
  absl::StatusOr<model::TrainableModel*> ModelFor(const config::ModelSpec& spec) {
    if (spec.arch == "torchscript") {
      if (!script_) {
        return absl::FailedPreconditionError(
            "the federation trains a TorchScript model but this site has none configured");
      }
      return &*script_;
    }
    builtin_ = model::TrainableModel::Builtin(spec);
    return &*builtin_;
  }

  // Rows as the model takes them: images as [batch, channels, height, width] (cnn and
  // TorchScript models), table rows as they are.
  torch::Tensor Input(const config::ModelSpec& spec, const torch::Tensor& rows) const {
    if (spec.arch == "cnn") return model::ModelInput(spec, rows);
    if (spec.arch == "torchscript" && shape_.size() == 3) {
      return rows.view({rows.size(0), shape_[0], shape_[1], shape_[2]});
    }
    return rows;
  }

  // A TorchScript module must map this site's rows to [batch, classes] logits with a class
  // for every label here; one forward pass on the first rows checks it.
  absl::Status CheckScriptOutputs() const {
    config::ModelSpec spec;
    spec.arch = "torchscript";
    try {
      torch::NoGradGuard no_grad;
      model::TrainableModel& module = const_cast<model::TrainableModel&>(*script_);
      const torch::Tensor x = Input(spec, train_x_.slice(0, 0, std::min<int64_t>(2, train_x_.size(0))));
      const torch::Tensor logits = module.Forward(x);
      if (logits.dim() != 2 || logits.size(0) != x.size(0)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the TorchScript model maps this site's rows ", absl::StrJoin(x.sizes().vec(), "x"),
            " to ", absl::StrJoin(logits.sizes().vec(), "x"), ", not [batch, classes] logits"));
      }
      if (logits.size(1) <= max_label_) {
        return absl::InvalidArgumentError(absl::StrCat(
            "this site's data has label ", max_label_, " but the TorchScript model has ",
            logits.size(1), " outputs"));
      }
    } catch (const std::exception& e) {
      std::string what = e.what();
      return absl::InvalidArgumentError(absl::StrCat(
          "the TorchScript model cannot run on this site's rows: ",
          what.substr(0, what.find('\n'))));
    }
    return absl::OkStatus();
  }

  static torch::Tensor ToTensor(const data::Dataset& d) {
    return torch::from_blob(const_cast<float*>(d.features.data()), {d.rows(), d.cols()},
                            torch::kFloat32)
        .clone();
  }

  uint64_t seed_;
  std::optional<uint64_t> noise_seed_;
  std::unique_ptr<crypto::SecureSampler> noise_;
  uint64_t round_counter_ = 0;
  std::optional<model::TrainableModel> script_;  // the site's TorchScript module, if any
  tensor::ParameterLayout script_layout_;
  std::optional<model::TrainableModel> builtin_;  // the built-in model of the current task
  torch::Tensor train_x_, train_y_, test_x_, test_y_;
  int64_t num_features_ = 0;
  std::vector<int64_t> shape_;  // one row's image shape; empty for tables
  int64_t max_label_ = 0;
};

}  // namespace

std::unique_ptr<Trainer> MakeTorchTrainerFromSplit(data::TrainTestSplit split, uint64_t seed,
                                                   std::optional<uint64_t> noise_seed) {
  return std::make_unique<TorchTrainer>(std::move(split), seed, noise_seed, std::nullopt);
}

absl::StatusOr<std::unique_ptr<Trainer>> MakeTorchTrainerFromSplit(
    data::TrainTestSplit split, uint64_t seed, std::optional<uint64_t> noise_seed,
    const std::string& torchscript) {
  absl::StatusOr<model::TrainableModel> script =
      model::TrainableModel::LoadTorchScript(torchscript);
  if (!script.ok()) return script.status();
  return std::unique_ptr<Trainer>(
      std::make_unique<TorchTrainer>(std::move(split), seed, noise_seed, std::move(*script)));
}

absl::StatusOr<std::unique_ptr<Trainer>> MakeTorchTrainer(const config::DataConfig& data_config,
                                                          int64_t threads, uint64_t seed,
                                                          std::optional<uint64_t> noise_seed,
                                                          const std::string& torchscript) {
  absl::StatusOr<data::TrainTestSplit> split = data::LoadSiteData(data_config);
  if (!split.ok()) return split.status();
  SetTorchThreads(threads);
  if (torchscript.empty()) return MakeTorchTrainerFromSplit(std::move(*split), seed, noise_seed);
  return MakeTorchTrainerFromSplit(std::move(*split), seed, noise_seed, torchscript);
}

void SetTorchThreads(int64_t threads) { torch::set_num_threads(static_cast<int>(threads)); }

}  // namespace cohort::client
