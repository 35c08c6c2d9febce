#include "server/server_optimizer.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/crypto/sha256.h"
#include "common/util/files.h"

namespace cohort::server {
namespace {

constexpr absl::string_view kHeader = "cohort-server-optimizer 1\n";
// Refuses absurd lengths in a damaged header before allocating for them.
constexpr uint64_t kMaxRuleLength = 64;

using Emit = std::function<void(absl::string_view)>;

template <typename T>
void EmitScalar(const Emit& emit, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));  // little-endian hosts only, as the checkpoints
  emit(absl::string_view(bytes, sizeof(T)));
}

void EmitVector(const Emit& emit, const std::vector<float>& values) {
  EmitScalar<uint64_t>(emit, values.size());
  emit(absl::string_view(reinterpret_cast<const char*>(values.data()),
                         values.size() * sizeof(float)));
}

// Everything but the trailing digest.
void Serialize(const ServerOptimizerState& state, const Emit& emit) {
  emit(kHeader);
  EmitScalar<uint32_t>(emit, static_cast<uint32_t>(state.rule.size()));
  emit(state.rule);
  EmitScalar<uint64_t>(emit, state.round);
  EmitScalar<uint64_t>(emit, state.steps);
  EmitVector(emit, state.m);
  EmitVector(emit, state.v);
}

// Reads fields front to back; every read checks the remaining length.
class Reader {
 public:
  explicit Reader(absl::string_view bytes) : rest_(bytes) {}
  template <typename T>
  bool Scalar(T* out) {
    if (rest_.size() < sizeof(T)) return false;
    std::memcpy(out, rest_.data(), sizeof(T));
    rest_.remove_prefix(sizeof(T));
    return true;
  }
  bool Bytes(size_t n, absl::string_view* out) {
    if (rest_.size() < n) return false;
    *out = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return true;
  }
  bool Vector(std::vector<float>* out) {
    uint64_t count = 0;
    if (!Scalar(&count) || count > rest_.size() / sizeof(float)) return false;
    out->resize(count);
    std::memcpy(out->data(), rest_.data(), count * sizeof(float));
    rest_.remove_prefix(count * sizeof(float));
    return true;
  }
  bool done() const { return rest_.empty(); }

 private:
  absl::string_view rest_;
};

}  // namespace

ServerOptimizer::ServerOptimizer(const config::AggregationConfig& config, size_t num_values)
    : config_(config), num_values_(num_values) {
  state_.rule = RuleFor(config.strategy);
}

std::string ServerOptimizer::RuleFor(const std::string& strategy) {
  if (strategy == "fedavgm" || strategy == "fedadagrad" || strategy == "fedadam" ||
      strategy == "fedyogi") {
    return strategy;
  }
  return "fedavg";  // fedavg and the robust strategies
}

ServerOptimizer::Step ServerOptimizer::Propose(uint64_t round, const std::vector<float>& global,
                                               const std::vector<float>& delta) const {
  const size_t n = num_values_;
  const std::string& rule = state_.rule;
  const double eta = config_.server_learning_rate;
  Step step;
  step.state.rule = rule;
  step.state.round = round;
  step.state.steps = state_.steps + 1;
  step.model.resize(n);
  if (rule == "fedavg") {
    for (size_t i = 0; i < n; ++i) {
      step.model[i] = static_cast<float>(static_cast<double>(global[i]) + eta * delta[i]);
    }
    return step;
  }
  // The state before this step; empty vectors are the initial m = 0 and v = tau^2.
  const bool has_m = state_.m.size() == n;
  const bool has_v = state_.v.size() == n;
  std::vector<float>& m = step.state.m;
  m.resize(n);
  if (rule == "fedavgm") {
    const double beta = config_.momentum;
    for (size_t i = 0; i < n; ++i) {
      const double m_next = beta * (has_m ? state_.m[i] : 0.0) + delta[i];
      m[i] = static_cast<float>(m_next);
      step.model[i] = static_cast<float>(static_cast<double>(global[i]) + eta * m_next);
    }
    return step;
  }
  std::vector<float>& v = step.state.v;
  v.resize(n);
  const double beta1 = config_.beta1;
  const double beta2 = config_.beta2;
  const double tau = config_.tau;
  const double v_initial = tau * tau;
  for (size_t i = 0; i < n; ++i) {
    const double d = delta[i];
    const double d2 = d * d;
    const double m_prev = has_m ? state_.m[i] : 0.0;
    const double v_prev = has_v ? state_.v[i] : v_initial;
    const double m_next = beta1 * m_prev + (1 - beta1) * d;
    double v_next;
    if (rule == "fedadagrad") {
      v_next = v_prev + d2;
    } else if (rule == "fedadam") {
      v_next = beta2 * v_prev + (1 - beta2) * d2;
    } else {  // fedyogi
      const double diff = v_prev - d2;
      const double sign = diff > 0 ? 1.0 : (diff < 0 ? -1.0 : 0.0);
      v_next = v_prev - (1 - beta2) * d2 * sign;
    }
    m[i] = static_cast<float>(m_next);
    v[i] = static_cast<float>(v_next);
    step.model[i] = static_cast<float>(static_cast<double>(global[i]) +
                                       eta * m_next / (std::sqrt(v_next) + tau));
  }
  return step;
}

absl::Status ServerOptimizer::Resume(ServerOptimizerState saved) {
  const std::string& rule = state_.rule;
  const bool same_size = (saved.m.empty() || saved.m.size() == num_values_) &&
                         (saved.v.empty() || saved.v.size() == num_values_);
  if (!same_size) {
    return absl::DataLossError(absl::StrCat(
        "the saved server optimizer state has ", saved.m.size(), " + ", saved.v.size(),
        " values but the model has ", num_values_, " parameters"));
  }
  if (saved.rule == rule) {
    state_ = std::move(saved);
    return absl::OkStatus();
  }
  if (IsStateful(saved.rule) && IsStateful(rule)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the server optimizer state after round ", saved.round, " is ", saved.rule,
        "'s, and ", rule, " cannot continue from it (its moments mean something else). Keep "
        "aggregation.strategy: ", saved.rule, ", or run one round with a stateless strategy "
        "(e.g. fedavg) to start ", rule, " afresh"));
  }
  // From a stateless rule (any rule starts afresh), or to one (the saved state is dropped).
  state_ = ServerOptimizerState();
  state_.rule = rule;
  state_.round = saved.round;
  return absl::OkStatus();
}

std::string EncodeServerOptimizerState(const ServerOptimizerState& state) {
  std::string out;
  Serialize(state, [&out](absl::string_view bytes) { out.append(bytes.data(), bytes.size()); });
  out.append(crypto::Sha256(out));
  return out;
}

absl::StatusOr<ServerOptimizerState> DecodeServerOptimizerState(absl::string_view bytes) {
  if (bytes.size() < kHeader.size() + crypto::kSha256DigestSize ||
      bytes.substr(0, kHeader.size()) != kHeader) {
    return absl::DataLossError("not a cohort server optimizer state file (bad header)");
  }
  const absl::string_view body = bytes.substr(0, bytes.size() - crypto::kSha256DigestSize);
  if (crypto::Sha256(body) != bytes.substr(body.size())) {
    return absl::DataLossError("server optimizer state is damaged (checksum mismatch)");
  }
  Reader reader(body.substr(kHeader.size()));
  ServerOptimizerState state;
  uint32_t rule_length = 0;
  absl::string_view rule;
  if (!reader.Scalar(&rule_length) || rule_length > kMaxRuleLength ||
      !reader.Bytes(rule_length, &rule) || !reader.Scalar(&state.round) ||
      !reader.Scalar(&state.steps) || !reader.Vector(&state.m) || !reader.Vector(&state.v) ||
      !reader.done()) {
    return absl::DataLossError("server optimizer state is malformed");
  }
  state.rule = std::string(rule);
  if (state.rule != ServerOptimizer::RuleFor(state.rule) || (state.rule == "fedavg" && !state.m.empty())) {
    return absl::DataLossError(absl::StrCat("server optimizer state names an unknown rule '",
                                            state.rule, "'"));
  }
  return state;
}

absl::Status WriteServerOptimizerState(const std::string& path,
                                       const ServerOptimizerState& state) {
  // Streamed: the moments are model-sized and need not be copied into one buffer.
  return WriteFileDurably(path, [&state](const ByteSink& sink) -> absl::Status {
    crypto::Sha256Hasher hasher;
    absl::Status status;
    Serialize(state, [&](absl::string_view bytes) {
      if (!status.ok()) return;
      hasher.Update(bytes);
      status = sink(bytes);
    });
    if (!status.ok()) return status;
    return sink(hasher.Finish());
  });
}

absl::StatusOr<ServerOptimizerState> ReadServerOptimizerState(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<ServerOptimizerState> state = DecodeServerOptimizerState(*bytes);
  if (!state.ok()) {
    return absl::Status(state.status().code(), absl::StrCat(path, ": ", state.status().message()));
  }
  return state;
}

}  // namespace cohort::server
