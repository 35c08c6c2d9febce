#include "client/dp_sgd.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace cohort::client {
namespace {

// Conv2d per-example gradients are formed for slices of the batch whose unfolded input stays
// under this size, which bounds the extra memory of a DP step.
constexpr int64_t kUnfoldSliceBytes = int64_t{2} << 20;
// Convolutions whose patch (in_channels * kh * kw) has at least this many values get their
// per-example weight gradients from a grouped convolution backward; smaller ones (e.g. a first
// layer on one channel, where that is slower) from the unfolded input and a batched product.
constexpr int64_t kGroupedMinPatch = 16;
// Parameters up to this size are updated by a plain loop (no LibTorch dispatch); larger ones
// by add_, which LibTorch spreads over its threads.
constexpr int64_t kLoopUpdateMax = int64_t{1} << 16;

torch::nn::functional::CrossEntropyFuncOptions SumReduction() {
  return torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum);
}

bool FastConv(const torch::nn::Conv2dImpl& conv) {
  const auto& o = conv.options;
  return o.bias() && o.groups() == 1 &&
         c10::holds_alternative<torch::ExpandingArray<2>>(o.padding()) &&
         c10::holds_alternative<torch::enumtype::kZeros>(o.padding_mode());
}

// Output gradient of summed softmax cross-entropy, in place of the logits: row i becomes
// softmax(z_i) - onehot(y_i). Returns the summed loss, or -1 for a label out of range.
template <typename T>
double SoftmaxCrossEntropyGrad(T* z, const int64_t* y, int64_t batch, int64_t classes) {
  double loss = 0;
  for (int64_t i = 0; i < batch; ++i) {
    T* row = z + i * classes;
    const int64_t label = y[i];
    if (label < 0 || label >= classes) return -1;
    T max = row[0];
    for (int64_t k = 1; k < classes; ++k) max = std::max(max, row[k]);
    double sum = 0;
    for (int64_t k = 0; k < classes; ++k) sum += std::exp(static_cast<double>(row[k] - max));
    const double log_sum = static_cast<double>(max) + std::log(sum);
    loss += log_sum - static_cast<double>(row[label]);
    for (int64_t k = 0; k < classes; ++k) {
      row[k] = static_cast<T>(std::exp(static_cast<double>(row[k]) - log_sum));
    }
    row[label] -= T(1);
  }
  return loss;
}

// Squared L2 norm of each row of a contiguous [rows, cols] matrix.
template <typename T>
void RowSquaredNorms(const T* m, int64_t rows, int64_t cols, double* out) {
  for (int64_t i = 0; i < rows; ++i) {
    const T* row = m + i * cols;
    T sum = 0;
    for (int64_t k = 0; k < cols; ++k) sum += row[k] * row[k];
    out[i] = static_cast<double>(sum);
  }
}

template <typename T>
void ReluBackward(T* grad, const T* relu_out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) grad[i] = relu_out[i] > T(0) ? grad[i] : T(0);
}

template <typename T>
void ScaleRows(T* m, int64_t rows, int64_t cols, const std::vector<double>& factor) {
  for (int64_t i = 0; i < rows; ++i) {
    const T f = static_cast<T>(factor[i]);
    T* row = m + i * cols;
    for (int64_t k = 0; k < cols; ++k) row[k] *= f;
  }
}

template <typename T>
void ColumnSums(const T* m, int64_t rows, int64_t cols, T* out) {
  std::fill(out, out + cols, T(0));
  for (int64_t i = 0; i < rows; ++i) {
    const T* row = m + i * cols;
    for (int64_t k = 0; k < cols; ++k) out[k] += row[k];
  }
}

template <typename T>
void Axpy(T* y, const T* x, int64_t n, T a) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// Clip factors min(1, C / (norm + 1e-12)) from squared norms; writes the norms.
template <typename T>
void ClipFactors(const std::vector<double>& norms_squared, double clip, T* norms,
                 std::vector<double>* factor) {
  factor->resize(norms_squared.size());
  for (size_t i = 0; i < norms_squared.size(); ++i) {
    const double norm = std::sqrt(norms_squared[i]);
    norms[i] = static_cast<T>(norm);
    (*factor)[i] = std::min(1.0, clip / (norm + 1e-12));
  }
}

}  // namespace

ClippedGradientComputer::ClippedGradientComputer(torch::nn::Sequential module)
    : module_(std::move(module)) {
  bool linear_only = true;
  bool conv_ok = true;
  for (const auto& child : module_->children()) {
    if (auto* linear = child->as<torch::nn::Linear>()) {
      if (!linear->options.bias()) linear_only = conv_ok = false;
    } else if (child->as<torch::nn::ReLU>() != nullptr) {
    } else if (auto* conv = child->as<torch::nn::Conv2d>()) {
      linear_only = false;
      if (!FastConv(*conv)) conv_ok = false;
    } else if (child->as<torch::nn::MaxPool2d>() != nullptr ||
               child->as<torch::nn::Flatten>() != nullptr) {
      linear_only = false;
    } else {
      linear_only = conv_ok = false;
    }
  }
  method_ = linear_only ? ClippingMethod::kLinear
                        : conv_ok ? ClippingMethod::kConv : ClippingMethod::kPerExampleLoop;
  params_ = module_->parameters();
  forward_ = [module = module_](const torch::Tensor& t) mutable { return module->forward(t); };
}

ClippedGradientComputer::ClippedGradientComputer(DifferentiableModel model)
    : forward_(std::move(model.forward)),
      method_(ClippingMethod::kPerExampleLoop),
      params_(std::move(model.parameters)) {}

absl::StatusOr<const ClippedGradients*> ClippedGradientComputer::Compute(const torch::Tensor& x,
                                                                         const torch::Tensor& y,
                                                                         double max_grad_norm) {
  if (!(max_grad_norm > 0)) return absl::InvalidArgumentError("max_grad_norm must be > 0");
  if (x.dim() < 1 || y.dim() != 1 || x.size(0) != y.size(0) || y.scalar_type() != torch::kInt64) {
    return absl::InvalidArgumentError("DP-SGD needs a batch x and int64 labels y of its size");
  }
  // (Re)build the flat sum and its views when the parameters' dtype changed.
  const auto dtype = params_.empty() ? x.scalar_type() : params_[0].scalar_type();
  if (!flat_sum_.defined() || flat_sum_.scalar_type() != dtype) {
    int64_t total = 0;
    for (const torch::Tensor& p : params_) total += p.numel();
    flat_sum_ = torch::zeros({total}, torch::TensorOptions().dtype(dtype));
    result_.sum.clear();
    int64_t offset = 0;
    for (const torch::Tensor& p : params_) {
      result_.sum.push_back(flat_sum_.narrow(0, offset, p.numel()).view(p.sizes()));
      offset += p.numel();
    }
    outputs_.clear();
    input_grads_.clear();
  }
  result_.loss_sum = 0;
  if (x.size(0) == 0) {
    flat_sum_.zero_();
    result_.norms = torch::zeros({0}, torch::TensorOptions().dtype(dtype));
    return &result_;
  }
  absl::Status status;
  try {
    switch (method_) {
      case ClippingMethod::kLinear:
        status = ComputeLinear(x, y, max_grad_norm);
        break;
      case ClippingMethod::kConv:
        status = ComputeConv(x, y, max_grad_norm);
        break;
      case ClippingMethod::kPerExampleLoop:
        status = ComputeLoop(x, y, max_grad_norm);
        break;
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("per-example clipping failed: ", e.what()));
  }
  if (!status.ok()) return status;
  return &result_;
}

absl::Status ClippedGradientComputer::ComputeLinear(const torch::Tensor& x_in,
                                                    const torch::Tensor& y_in, double clip) {
  torch::NoGradGuard no_grad;
  if (x_in.dim() != 2) return absl::InvalidArgumentError("a Linear model needs [batch, inputs]");
  if (!params_.empty() && x_in.scalar_type() != params_[0].scalar_type()) {
    return absl::InvalidArgumentError("the batch and the model have different dtypes");
  }
  const torch::Tensor x = x_in.contiguous();
  const torch::Tensor y = y_in.contiguous();
  const int64_t batch = x.size(0);
  const auto children = module_->children();
  // Forward. Per Linear layer j: its input, and outputs_[j] (ReLUs act in place on it).
  struct Step {
    torch::nn::LinearImpl* linear = nullptr;  // else a ReLU
    int64_t index = 0;                        // Linear: j; ReLU: -1 when not in place
    torch::Tensor relu_out;
  };
  std::vector<Step> steps;
  std::vector<torch::Tensor> inputs;
  outputs_.resize(std::max(outputs_.size(), children.size()));
  input_grads_.resize(std::max(input_grads_.size(), children.size() + 1));
  torch::Tensor h = x;
  bool owned = false;  // h is one of our buffers
  int64_t layer = 0;
  for (const auto& child : children) {
    if (auto* linear = child->as<torch::nn::Linear>()) {
      torch::Tensor& out = outputs_[layer];
      if (!out.defined()) out = torch::empty({0}, x.options());
      out.resize_({batch, linear->weight.size(0)});
      at::addmm_out(out, linear->bias, h, linear->weight.t());
      inputs.push_back(h);
      steps.push_back({linear, layer++, {}});
      h = out;
      owned = true;
    } else {
      if (owned) {
        h.relu_();
      } else {
        h = torch::relu(h);
        owned = true;
      }
      steps.push_back({nullptr, -1, h});
    }
  }
  // The gradient of the summed loss w.r.t. the logits, in its own buffer.
  torch::Tensor& top = input_grads_[children.size()];
  if (!top.defined()) top = torch::empty({0}, x.options());
  top.resize_(h.sizes());
  top.copy_(h);
  const int64_t classes = top.size(1);
  double loss = 0;
  AT_DISPATCH_FLOATING_TYPES(top.scalar_type(), "SoftmaxCrossEntropyGrad", [&] {
    loss = SoftmaxCrossEntropyGrad(top.data_ptr<scalar_t>(), y.data_ptr<int64_t>(), batch,
                                   classes);
  });
  if (loss < 0) return absl::InvalidArgumentError("a label is outside the model's classes");
  result_.loss_sum = loss;
  // Backward: each Linear's output gradient (kept in `grads`), through ReLU masks.
  std::vector<torch::Tensor> grads(layer);
  torch::Tensor g = top;
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    if (it->linear == nullptr) {
      AT_DISPATCH_FLOATING_TYPES(g.scalar_type(), "ReluBackward", [&] {
        ReluBackward(g.data_ptr<scalar_t>(), it->relu_out.data_ptr<scalar_t>(), g.numel());
      });
      continue;
    }
    grads[it->index] = g;
    if (it->index == 0) break;  // no gradient needed below the first Linear
    torch::Tensor& below = input_grads_[it->index];
    if (!below.defined()) below = torch::empty({0}, x.options());
    below.resize_({batch, it->linear->weight.size(1)});
    at::mm_out(below, g, it->linear->weight);
    g = below;
  }
  // Per-example squared norms: sum over layers of ||g_i||^2 (||a_i||^2 + 1).
  std::vector<double> norms_squared(batch, 0.0);
  std::vector<double> g_norms(batch), a_norms(batch);
  for (int64_t j = 0; j < layer; ++j) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "RowSquaredNorms", [&] {
      RowSquaredNorms(grads[j].data_ptr<scalar_t>(), batch, grads[j].size(1), g_norms.data());
      RowSquaredNorms(inputs[j].data_ptr<scalar_t>(), batch, inputs[j].size(1), a_norms.data());
    });
    for (int64_t i = 0; i < batch; ++i) norms_squared[i] += g_norms[i] * (a_norms[i] + 1.0);
  }
  result_.norms = torch::empty({batch}, x.options());
  std::vector<double> factor;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ClipFactors", [&] {
    ClipFactors(norms_squared, clip, result_.norms.data_ptr<scalar_t>(), &factor);
  });
  // Clipped sums: (c G)^T A and the column sums of c G.
  for (int64_t j = 0; j < layer; ++j) {
    const torch::Tensor& gj = grads[j];
    torch::Tensor& weight_sum = result_.sum[2 * j];
    torch::Tensor& bias_sum = result_.sum[2 * j + 1];
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "ScaleRows", [&] {
      ScaleRows(gj.data_ptr<scalar_t>(), batch, gj.size(1), factor);
      ColumnSums(gj.data_ptr<scalar_t>(), batch, gj.size(1), bias_sum.data_ptr<scalar_t>());
    });
    at::mm_out(weight_sum, gj.t(), inputs[j]);
  }
  return absl::OkStatus();
}

absl::Status ClippedGradientComputer::ComputeConv(const torch::Tensor& x, const torch::Tensor& y,
                                                  double clip) {
  const int64_t batch = x.size(0);
  const auto options = x.options();
  // Per Linear or Conv2d layer: its input (saved by autograd for its backward anyway), and
  // what the backward hook keeps of its output gradient: for a Linear layer the gradient
  // itself [batch, out]; for a convolution the per-example weight gradients
  // [batch, out * in * kh * kw] and bias gradients [batch, out], the output gradient itself
  // being released as in a plain backward.
  struct Layer {
    torch::nn::Conv2dImpl* conv = nullptr;  // nullptr for a Linear layer
    torch::Tensor input;
    torch::Tensor grad;
    torch::Tensor weight_grads;
    torch::Tensor bias_grads;
  };
  std::vector<Layer> layers;
  torch::Tensor norms_squared = torch::zeros({batch}, options);

  auto conv_hook = [&](Layer& layer, const torch::Tensor& g) {
    const torch::Tensor& a = layer.input;
    const auto& o = layer.conv->options;
    const auto& padding = c10::get<torch::ExpandingArray<2>>(o.padding());
    const int64_t out_channels = g.size(1);
    const int64_t positions = g.size(2) * g.size(3);
    const int64_t patch = layer.conv->weight.numel() / out_channels;
    torch::Tensor g3 = g.reshape({batch, out_channels, positions});
    layer.bias_grads = g3.sum(2);
    norms_squared += layer.bias_grads.pow(2).sum(1);
    if (patch >= kGroupedMinPatch) {
      // All per-example weight gradients at once, as the weight gradient of a convolution
      // with one group per example (LibTorch's own convolution backward; the weight argument
      // only gives the shape, so a broadcast zero stands in for it).
      const int64_t in_channels = a.size(1);
      torch::Tensor shape_only =
          torch::zeros({1}, options).expand({batch * out_channels, in_channels,
                                             (*o.kernel_size())[0], (*o.kernel_size())[1]});
      auto grads = at::convolution_backward(
          g.reshape({1, batch * out_channels, g.size(2), g.size(3)}),
          a.reshape({1, batch * in_channels, a.size(2), a.size(3)}), shape_only, c10::nullopt,
          *o.stride(), *padding, *o.dilation(), /*transposed=*/false, {0, 0}, batch,
          {false, true, false});
      layer.weight_grads = std::get<1>(grads).view({batch, out_channels * patch});
      norms_squared += at::linalg_vector_norm(layer.weight_grads, 2, {1}).square();
      return;
    }
    layer.weight_grads = torch::empty({batch, out_channels * patch}, options);
    const int64_t slice = std::max<int64_t>(
        1, kUnfoldSliceBytes / (patch * positions * static_cast<int64_t>(a.element_size())));
    for (int64_t begin = 0; begin < batch; begin += slice) {
      const int64_t end = std::min(batch, begin + slice);
      // U_i [in * kh * kw, positions] as a strided view of the zero-padded input, then one
      // copy: faster than im2col (unfold) in LibTorch 1.13.
      torch::Tensor padded = at::constant_pad_nd(
          a.slice(0, begin, end),
          {(*padding)[1], (*padding)[1], (*padding)[0], (*padding)[0]});
      torch::Tensor window = padded.as_strided(
          {end - begin, a.size(1), (*o.kernel_size())[0], (*o.kernel_size())[1], g.size(2),
           g.size(3)},
          {padded.stride(0), padded.stride(1), padded.stride(2) * (*o.dilation())[0],
           padded.stride(3) * (*o.dilation())[1], padded.stride(2) * (*o.stride())[0],
           padded.stride(3) * (*o.stride())[1]});
      torch::Tensor u = window.reshape({end - begin, patch, positions});
      torch::Tensor per =
          layer.weight_grads.slice(0, begin, end).view({end - begin, out_channels, patch});
      at::bmm_out(per, g3.slice(0, begin, end), u.transpose(1, 2));
      norms_squared.slice(0, begin, end) += per.pow(2).sum({1, 2});
    }
  };

  torch::Tensor loss;
  {
    torch::AutoGradMode grad_mode(true);
    torch::Tensor h = x;
    torch::Tensor first_bias;  // the backward runs down to the first layer's bias
    layers.reserve(module_->children().size());
    for (const auto& child : module_->children()) {
      auto* linear = child->as<torch::nn::Linear>();
      auto* conv = child->as<torch::nn::Conv2d>();
      if (linear != nullptr || conv != nullptr) {
        if (linear != nullptr && h.dim() != 2) {
          return absl::InvalidArgumentError("a Linear layer needs 2-D inputs");
        }
        layers.push_back({conv, h.detach(), {}, {}, {}});
        Layer* layer = &layers.back();
        h = linear != nullptr ? linear->forward(h) : conv->forward(h);
        if (!first_bias.defined()) first_bias = linear != nullptr ? linear->bias : conv->bias;
        // The hook sees dL/d(output), whose row i is dL_i/d(output_i) since the loss is a sum
        // over examples. It lives in the graph: `h` itself need not be kept.
        h.register_hook([layer, &conv_hook, &norms_squared](const torch::Tensor& g) {
          if (layer->conv != nullptr) {
            conv_hook(*layer, g);
          } else {
            layer->grad = g;
            norms_squared += g.pow(2).sum(1) * (layer->input.pow(2).sum(1) + 1.0);
          }
          return torch::Tensor();
        });
      } else if (child->as<torch::nn::ReLU>() != nullptr) {
        h = torch::relu(h);
      } else if (auto* pool = child->as<torch::nn::MaxPool2d>()) {
        h = pool->forward(h);
      } else {
        h = child->as<torch::nn::Flatten>()->forward(h);
      }
    }
    loss = torch::nn::functional::cross_entropy(h, y, SumReduction());
    h = torch::Tensor();
    if (first_bias.defined()) torch::autograd::grad({loss}, {first_bias});
  }
  torch::NoGradGuard no_grad;
  result_.loss_sum = loss.item<double>();
  result_.norms = norms_squared.sqrt();
  torch::Tensor factor = (clip / (result_.norms + 1e-12)).clamp_max(1.0);
  for (size_t l = 0; l < layers.size(); ++l) {
    Layer& layer = layers[l];
    torch::Tensor& weight_sum = result_.sum[2 * l];
    torch::Tensor& bias_sum = result_.sum[2 * l + 1];
    if (layer.conv == nullptr) {
      at::mm_out(weight_sum, (layer.grad * factor.unsqueeze(1)).t(), layer.input);
      at::mv_out(bias_sum, layer.grad.t(), factor);
    } else {
      torch::Tensor flat_weight = weight_sum.view({-1});
      at::mv_out(flat_weight, layer.weight_grads.t(), factor);
      at::mv_out(bias_sum, layer.bias_grads.t(), factor);
    }
  }
  return absl::OkStatus();
}

absl::Status ClippedGradientComputer::ComputeLoop(const torch::Tensor& x, const torch::Tensor& y,
                                                  double clip) {
  absl::StatusOr<ClippedGradients> got = ClippedGradientSumPerExample(
      forward_, params_, x, y, clip);
  if (!got.ok()) return got.status();
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < params_.size(); ++k) result_.sum[k].copy_(got->sum[k]);
  result_.norms = got->norms;
  result_.loss_sum = got->loss_sum;
  return absl::OkStatus();
}

absl::StatusOr<ClippedGradients> ClippedGradientSum(torch::nn::Sequential& module,
                                                    const torch::Tensor& x,
                                                    const torch::Tensor& y,
                                                    double max_grad_norm) {
  ClippedGradientComputer computer(module);
  absl::StatusOr<const ClippedGradients*> got = computer.Compute(x, y, max_grad_norm);
  if (!got.ok()) return got.status();
  return **got;
}

absl::StatusOr<ClippedGradients> ClippedGradientSumPerExample(
    const std::function<torch::Tensor(const torch::Tensor&)>& forward,
    const std::vector<torch::Tensor>& params, const torch::Tensor& x, const torch::Tensor& y,
    double max_grad_norm) {
  if (!(max_grad_norm > 0)) return absl::InvalidArgumentError("max_grad_norm must be > 0");
  if (x.dim() < 1 || y.dim() != 1 || x.size(0) != y.size(0)) {
    return absl::InvalidArgumentError("DP-SGD needs a batch x and labels y of its size");
  }
  ClippedGradients result;
  const int64_t batch = x.size(0);
  for (const torch::Tensor& p : params) result.sum.push_back(torch::zeros_like(p).detach());
  std::vector<double> norms(batch);
  try {
    for (int64_t i = 0; i < batch; ++i) {
      std::vector<torch::Tensor> grads;
      {
        torch::AutoGradMode grad_mode(true);
        torch::Tensor loss = torch::nn::functional::cross_entropy(
            forward(x.slice(0, i, i + 1)), y.slice(0, i, i + 1), SumReduction());
        result.loss_sum += loss.item<double>();
        grads = torch::autograd::grad({loss}, params, /*grad_outputs=*/{},
                                      /*retain_graph=*/false, /*create_graph=*/false,
                                      /*allow_unused=*/true);
      }
      torch::NoGradGuard no_grad;
      double norm_squared = 0;
      for (const torch::Tensor& g : grads) {
        if (g.defined()) norm_squared += g.pow(2).sum().item<double>();
      }
      norms[i] = std::sqrt(norm_squared);
      const double factor = std::min(1.0, max_grad_norm / (norms[i] + 1e-12));
      for (size_t k = 0; k < grads.size(); ++k) {
        if (grads[k].defined()) result.sum[k].add_(grads[k], factor);
      }
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("per-example clipping failed: ", e.what()));
  }
  result.norms = torch::tensor(norms, torch::kFloat64)
                     .to(params.empty() ? torch::kFloat64 : params[0].scalar_type());
  return result;
}

DpSgdStepper::DpSgdStepper(torch::nn::Sequential module, double max_grad_norm,
                           double noise_multiplier, double learning_rate, double expected_batch)
    : clipper_(module),
      params_(module->parameters()),
      max_grad_norm_(max_grad_norm),
      noise_stddev_(noise_multiplier * max_grad_norm),
      scale_(-learning_rate / expected_batch),
      learning_rate_(learning_rate) {}

DpSgdStepper::DpSgdStepper(DifferentiableModel model, double max_grad_norm,
                           double noise_multiplier, double learning_rate, double expected_batch)
    : clipper_(model),
      params_(model.parameters),
      max_grad_norm_(max_grad_norm),
      noise_stddev_(noise_multiplier * max_grad_norm),
      scale_(-learning_rate / expected_batch),
      learning_rate_(learning_rate) {}

void DpSgdStepper::SetProximal(double mu) {
  proximal_mu_ = mu;
  anchors_.clear();
  if (mu == 0) return;
  torch::NoGradGuard no_grad;
  for (const torch::Tensor& p : params_) anchors_.push_back(p.detach().clone());
}

absl::StatusOr<const ClippedGradients*> DpSgdStepper::Step(const torch::Tensor& x,
                                                           const torch::Tensor& y,
                                                           crypto::SecureSampler& sampler) {
  absl::StatusOr<const ClippedGradients*> grads = clipper_.Compute(x, y, max_grad_norm_);
  if (!grads.ok()) return grads.status();
  torch::NoGradGuard no_grad;
  torch::Tensor& flat = clipper_.flat_sum();
  const size_t count = static_cast<size_t>(flat.numel());
  if (flat.scalar_type() == torch::kFloat32) {
    if (absl::Status s = sampler.AddGaussian(flat.data_ptr<float>(), count, noise_stddev_);
        !s.ok()) {
      return s;
    }
  } else {
    noise_.resize(count);
    if (absl::Status s = sampler.Gaussian(noise_.data(), count, noise_stddev_); !s.ok()) return s;
    flat.add_(torch::from_blob(noise_.data(), {flat.numel()}, torch::kFloat32));
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    torch::Tensor& p = params_[k];
    const torch::Tensor& g = (*grads)->sum[k];
    if (!anchors_.empty()) {
      // p - lr mu (p - a) = (1 - lr mu) p + lr mu a: uses p before this step's update, like
      // the data gradient (computed above at the same p).
      const double pull = learning_rate_ * proximal_mu_;
      p.mul_(1 - pull).add_(anchors_[k], pull);
    }
    if (p.numel() <= kLoopUpdateMax && p.is_contiguous() && p.scalar_type() == g.scalar_type()) {
      AT_DISPATCH_FLOATING_TYPES(p.scalar_type(), "Axpy", [&] {
        Axpy(p.data_ptr<scalar_t>(), g.data_ptr<scalar_t>(), p.numel(),
             static_cast<scalar_t>(scale_));
      });
    } else {
      p.add_(g, scale_);
    }
  }
  return grads;
}

namespace {

absl::Status CheckDpConfig(const DpSgdConfig& config) {
  if (!(config.sample_rate > 0 && config.sample_rate <= 1) || !(config.noise_multiplier >= 0) ||
      config.steps < 0) {
    return absl::InvalidArgumentError("DP-SGD needs 0 < q <= 1, sigma >= 0 and steps >= 0");
  }
  if (!(config.proximal_mu >= 0)) return absl::InvalidArgumentError("proximal_mu must be >= 0");
  return absl::OkStatus();
}

// `model` is a Sequential or a DifferentiableModel.
template <typename Model>
absl::StatusOr<DpSgdStats> RunDpSgdSteps(Model& model, const torch::Tensor& x,
                                         const torch::Tensor& y, const DpSgdConfig& config,
                                         crypto::SecureSampler& sampler) {
  if (absl::Status s = CheckDpConfig(config); !s.ok()) return s;
  const int64_t n = x.size(0);
  const double expected_batch = config.sample_rate * static_cast<double>(n);
  if (!(expected_batch > 0)) return absl::InvalidArgumentError("DP-SGD needs training data");
  DpSgdStepper stepper(model, config.max_grad_norm, config.noise_multiplier,
                       config.learning_rate, expected_batch);
  stepper.SetProximal(config.proximal_mu);
  DpSgdStats stats;
  double loss_sum = 0;
  int64_t clipped = 0;
  for (int64_t step = 0; step < config.steps; ++step) {
    absl::StatusOr<std::vector<int64_t>> rows = sampler.Subsample(n, config.sample_rate);
    if (!rows.ok()) return rows.status();
    const int64_t size = static_cast<int64_t>(rows->size());
    torch::Tensor index = torch::from_blob(rows->data(), {size}, torch::kInt64);
    torch::Tensor bx = x.index_select(0, index);
    torch::Tensor by = y.index_select(0, index);
    absl::StatusOr<const ClippedGradients*> grads = stepper.Step(bx, by, sampler);
    if (!grads.ok()) return grads.status();
    loss_sum += (*grads)->loss_sum;
    const torch::Tensor norms = (*grads)->norms.to(torch::kFloat64).contiguous();
    const double* norm = norms.data_ptr<double>();
    for (int64_t i = 0; i < size; ++i) clipped += norm[i] > config.max_grad_norm;
    stats.examples_seen += size;
    ++stats.steps;
  }
  if (stats.examples_seen > 0) {
    stats.mean_loss = loss_sum / static_cast<double>(stats.examples_seen);
    stats.clipped_fraction = static_cast<double>(clipped) / static_cast<double>(stats.examples_seen);
  }
  return stats;
}

}  // namespace

absl::StatusOr<DpSgdStats> RunDpSgd(torch::nn::Sequential& module, const torch::Tensor& x,
                                    const torch::Tensor& y, const DpSgdConfig& config,
                                    crypto::SecureSampler& sampler) {
  return RunDpSgdSteps(module, x, y, config, sampler);
}

absl::StatusOr<DpSgdStats> RunDpSgd(const DifferentiableModel& model, const torch::Tensor& x,
                                    const torch::Tensor& y, const DpSgdConfig& config,
                                    crypto::SecureSampler& sampler) {
  DifferentiableModel copy = model;
  return RunDpSgdSteps(copy, x, y, config, sampler);
}

}  // namespace cohort::client
