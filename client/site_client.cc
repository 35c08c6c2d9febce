#include "client/site_client.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/crypto/sha256.h"
#include "common/tensor/chunk_reassembler.h"
#include "absl/strings/match.h"
#include "common/crypto/pki.h"
#include "common/http/http_server.h"
#include "common/http/metrics_response.h"
#include "common/secagg/quantizer.h"
#include "common/secagg/secret.h"
#include "common/tls/credentials.h"
#include "common/util/files.h"
#include "common/util/log.h"

namespace cohort::client {
namespace {

constexpr size_t kUploadChunkBytes = 1 << 20;
// Failed connection attempts in a row after which the channel is replaced.
constexpr int kAttemptsPerChannel = 4;
// A download chunk may be at most this large (the coordinator sends 1 MiB).
constexpr uint64_t kMaxDownloadChunkBytes = 4 << 20;

std::chrono::system_clock::time_point Deadline(int64_t unix_ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(unix_ms));
}

config::ModelSpec SpecFromProto(const cohort::v1::ModelSpec& proto) {
  config::ModelSpec spec;
  spec.arch = proto.arch();
  spec.inputs = proto.inputs();
  spec.hidden.assign(proto.hidden().begin(), proto.hidden().end());
  spec.input_shape.assign(proto.input_shape().begin(), proto.input_shape().end());
  spec.channels.assign(proto.channels().begin(), proto.channels().end());
  spec.classes = proto.classes();
  return spec;
}

absl::StatusOr<tensor::ParameterLayout> LayoutFromProto(const cohort::v1::ModelRef& ref) {
  std::vector<tensor::TensorSpec> specs;
  for (const auto& t : ref.layout().tensors()) {
    tensor::TensorSpec spec{t.name(), {t.shape().begin(), t.shape().end()}};
    for (int64_t d : spec.shape) {
      if (d <= 0 || d > (int64_t{1} << 32)) {
        return absl::InvalidArgumentError(absl::StrCat("tensor ", t.name(), " has a bad shape"));
      }
    }
    specs.push_back(std::move(spec));
  }
  tensor::ParameterLayout layout(std::move(specs));
  if (static_cast<uint64_t>(layout.TotalValues()) != ref.num_values()) {
    return absl::InvalidArgumentError(absl::StrCat("model layout has ", layout.TotalValues(),
                                                   " values but the task announces ",
                                                   ref.num_values()));
  }
  return layout;
}

absl::Status FromGrpc(const grpc::Status& status, absl::string_view what) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

ClientMetrics::Refusal RefusalOf(dp::DpRefusal refusal) {
  switch (refusal) {
    case dp::DpRefusal::kNotDp:
      return ClientMetrics::Refusal::kNotDp;
    case dp::DpRefusal::kNoise:
      return ClientMetrics::Refusal::kNoise;
    case dp::DpRefusal::kClip:
      return ClientMetrics::Refusal::kClip;
    case dp::DpRefusal::kBudget:
      return ClientMetrics::Refusal::kBudget;
    case dp::DpRefusal::kLedger:
      return ClientMetrics::Refusal::kLedger;
    case dp::DpRefusal::kNone:
      break;
  }
  return ClientMetrics::Refusal::kOther;
}

http::HttpResponse TextResponse(int status, std::string body) {
  return http::HttpResponse{status, "text/plain; charset=utf-8", std::move(body)};
}

}  // namespace

class SiteClient::TransferScope {
 public:
  TransferScope(SiteClient* client, grpc::ClientContext* context) : client_(client) {
    absl::MutexLock lock(&client_->mu_);
    client_->transfer_context_ = context;
    if (client_->stopping_) context->TryCancel();
  }
  ~TransferScope() {
    absl::MutexLock lock(&client_->mu_);
    client_->transfer_context_ = nullptr;
  }

 private:
  SiteClient* client_;
};

SiteClient::SiteClient(config::ClientConfig config, std::unique_ptr<Trainer> trainer)
    : config_(std::move(config)),
      trainer_(std::move(trainer)),
      jitter_(std::random_device{}()),
      metrics_(config_.privacy.enabled) {}

void SiteClient::Stop() {
  stopping_ = true;
  absl::MutexLock lock(&mu_);
  if (session_context_ != nullptr) session_context_->TryCancel();
  if (transfer_context_ != nullptr) transfer_context_->TryCancel();
}

absl::Status SiteClient::Run() {
  if (config_.privacy.enabled) {
    // Fail closed: no ledger, no training.
    absl::StatusOr<std::unique_ptr<dp::PrivacyLedger>> ledger =
        dp::PrivacyLedger::Open(config_.privacy.ledger, config_.site);
    if (!ledger.ok()) return ledger.status();
    ledger_ = std::move(*ledger);
    absl::StatusOr<double> spent = ledger_->Epsilon(config_.privacy.delta);
    if (!spent.ok()) return spent.status();
    spent_epsilon_ = *spent;
    metrics_.SetEpsilonSpent(*spent);
    metrics_.SetEpsilonBudget(config_.privacy.max_epsilon);
    spdlog::info("site={} stage=start privacy budget: epsilon {:.4f} of {} spent (delta {})",
                 config_.site, *spent, config_.privacy.max_epsilon, config_.privacy.delta);
  }
  // Stopped (and its port closed) whenever Run() returns.
  absl::StatusOr<std::unique_ptr<http::HttpServer>> http = StartHttp();
  if (!http.ok()) return http.status();
  struct PortReset {
    std::atomic<int>* port;
    ~PortReset() { *port = 0; }
  } port_reset{&http_port_};
  if (absl::Status s = OpenChannel(); !s.ok()) return s;
  absl::Duration backoff = config_.reconnect.initial_backoff;
  int failed_attempts = 0;
  while (!stopping_) {
    const int opened_before = sessions_opened_;
    std::string why;
    const SessionEnd end = RunSession(&why);
    if (end == SessionEnd::kDone) return absl::OkStatus();
    if (end == SessionEnd::kRefused) {
      spdlog::error("site={} stage=connect the coordinator refused this site: {}", config_.site,
                    why);
      return absl::FailedPreconditionError(
          absl::StrCat("the coordinator refused this site: ", why));
    }
    if (stopping_) break;
    if (sessions_opened_ > opened_before) {
      backoff = config_.reconnect.initial_backoff;
      failed_attempts = 0;
    } else if (++failed_attempts % kAttemptsPerChannel == 0) {
      // A channel whose connection attempts keep failing (seen after a coordinator was
      // killed: handshakes on the old channel kept timing out while fresh ones succeeded)
      // is replaced by a new one, with freshly read credentials.
      spdlog::warn("site={} stage=connect {} attempts failed; opening a new channel",
                   config_.site, failed_attempts);
      if (absl::Status s = OpenChannel(); !s.ok()) return s;
    }
    // Full jitter: sleep a uniform fraction of the current backoff, so that many sites
    // reconnecting after a coordinator restart spread out instead of arriving together.
    std::uniform_real_distribution<double> fraction(0.0, 1.0);
    absl::Duration sleep = backoff * fraction(jitter_);
    spdlog::warn("site={} stage=connect session ended ({}); reconnecting in {:.2f}s",
                 config_.site, why, absl::ToDoubleSeconds(sleep));
    const absl::Time wake = absl::Now() + sleep;
    while (!stopping_ && absl::Now() < wake) absl::SleepFor(absl::Milliseconds(50));
    backoff = std::min(backoff * 2, config_.reconnect.max_backoff);
  }
  return absl::CancelledError("client stopped");
}

absl::StatusOr<std::unique_ptr<http::HttpServer>> SiteClient::StartHttp() {
  if (config_.http.listen.empty()) return nullptr;
  std::map<std::string, http::HttpHandler> routes;
  routes["/healthz"] = [this](const std::string&) {
    // Unhealthy while the privacy ledger cannot be used: the site refuses every training
    // task until an operator repairs it.
    absl::MutexLock lock(&health_mu_);
    if (!ledger_problem_.empty()) {
      return TextResponse(503, absl::StrCat("privacy ledger unusable: ", ledger_problem_, "\n"));
    }
    return TextResponse(200, "ok\n");
  };
  routes["/readyz"] = [this](const std::string&) {
    if (stopping_) return TextResponse(503, "stopping\n");
    if (!connected_) return TextResponse(503, "not connected to the coordinator\n");
    return TextResponse(200, "ready\n");
  };
  routes["/metrics"] = [this](const std::string&) {
    return http::MetricsResponse(metrics_.registry());
  };
  absl::StatusOr<std::unique_ptr<http::HttpServer>> server =
      http::HttpServer::Start(config_.http.listen, std::move(routes));
  if (!server.ok()) {
    return absl::Status(server.status().code(),
                        absl::StrCat("http.listen ", config_.http.listen, ": ",
                                     server.status().message()));
  }
  http_port_ = (*server)->port();
  spdlog::info("site={} stage=start http port {}: /metrics /healthz /readyz", config_.site,
               (*server)->port());
  return server;
}

void SiteClient::NoteLedgerAccess(const absl::Status& status) {
  absl::MutexLock lock(&health_mu_);
  ledger_problem_ = status.ok() ? "" : std::string(status.message());
}

absl::Status SiteClient::OpenChannel() {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      tls::MakeChannelCredentials(config_.tls);
  if (!credentials.ok()) return credentials.status();
  channel_ = grpc::CreateCustomChannel(
      config_.coordinator, *credentials,
      tls::MakeChannelArguments(config_.server_name, config_.keepalive));
  return absl::OkStatus();
}

SiteClient::SessionEnd SiteClient::RunSession(std::string* why) {
  auto stub = cohort::v1::Federation::NewStub(channel_);
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      *why = "stopping";
      return SessionEnd::kLost;
    }
    session_context_ = &context;
  }
  auto clear_context = [this]() {
    absl::MutexLock lock(&mu_);
    session_context_ = nullptr;
  };
  auto stream = stub->Session(&context);
  cohort::v1::SiteMessage hello;
  hello.mutable_hello()->set_client_version(COHORT_VERSION);
  hello.mutable_hello()->set_train_examples(trainer_->train_examples());
  hello.mutable_hello()->set_test_examples(trainer_->test_examples());
  hello.mutable_hello()->set_num_features(static_cast<uint32_t>(trainer_->num_features()));
  if (std::optional<tensor::ParameterLayout> local = trainer_->LocalModelLayout()) {
    for (const tensor::TensorSpec& t : local->tensors()) {
      cohort::v1::TensorSpec* out = hello.mutable_hello()->mutable_model_layout()->add_tensors();
      out->set_name(t.name);
      for (int64_t d : t.shape) out->add_shape(d);
    }
  }
  cohort::v1::CoordinatorMessage message;
  const bool wrote = stream->Write(hello);
  const bool read = wrote && stream->Read(&message);
  if (!read || !message.has_welcome()) {
    // A stream the coordinator ended (Read failed after our Hello) carries its status, e.g.
    // a refusal; otherwise end our side first: Finish() on a stream the coordinator keeps
    // open would block.
    if (read || !wrote) context.TryCancel();
    grpc::Status status = stream->Finish();
    clear_context();
    *why = message.has_welcome() || status.error_code() != grpc::StatusCode::CANCELLED
               ? status.error_message()
               : "the coordinator did not start the session with Welcome";
    // A coordinator that refuses our certificate just closes the connection; say what is
    // wrong with it when that can be seen here.
    if (!message.has_welcome()) {
      if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
        return SessionEnd::kRefused;
      }
      if (std::string problems = tls::OwnCertificateProblems(config_.tls); !problems.empty()) {
        *why = absl::StrCat(*why, "; ", problems);
      }
    }
    return SessionEnd::kLost;
  }
  ++sessions_opened_;
  metrics_.SessionOpened();
  connected_ = true;
  metrics_.SetConnected(true);
  welcome_federation_ = message.welcome().federation();
  spdlog::info("site={} stage=connect session open: coordinator sees site '{}' in federation '{}'",
               config_.site, message.welcome().site_id(), message.welcome().federation());

  SessionEnd end = SessionEnd::kLost;
  while (stream->Read(&message)) {
    if (message.has_secagg()) {
      const auto& secagg = message.secagg();
      absl::Status status = HandleSecAgg(*stub, *stream, secagg);
      if (!status.ok()) {
        spdlog::warn("site={} round={} stage=secagg left secure aggregation: {}", config_.site,
                     secagg.round(), status.message());
        cohort::v1::SiteMessage abort;
        abort.mutable_secagg()->set_round(secagg.round());
        abort.mutable_secagg()->mutable_abort()->set_reason(std::string(status.message()));
        abort.mutable_secagg()->mutable_abort()->set_tampering_detected(
            status.code() == absl::StatusCode::kUnauthenticated);
        stream->Write(abort);
        if (secure_round_ != nullptr) {
          metrics_.RoundEnded(ClientMetrics::RoundOutcome::kFailed, secagg.round());
        }
        secure_round_.reset();
      }
    } else if (message.has_train()) {
      const auto& task = message.train();
      spdlog::info("site={} round={} stage=train task received", config_.site, task.round());
      absl::Status status = HandleTrain(*stub, *stream, task);
      if (status.ok()) {
        // A secure round counts as done once the site answered its unmask request.
        if (!task.has_secagg()) ++tasks_completed_;
      } else {
        spdlog::warn("site={} round={} stage=train failed: {}", config_.site, task.round(),
                     status.message());
        cohort::v1::SiteMessage failure;
        failure.mutable_failure()->set_round(task.round());
        failure.mutable_failure()->set_reason(std::string(status.message()));
        stream->Write(failure);
      }
    } else if (message.has_evaluate()) {
      const auto& task = message.evaluate();
      absl::StatusOr<EvalResult> result = HandleEvaluate(*stub, task);
      metrics_.EvaluationEnded(result.ok());
      if (!result.ok()) {
        spdlog::warn("site={} round={} stage=evaluate failed: {}", config_.site, task.round(),
                     result.status().message());
        continue;
      }
      cohort::v1::SiteMessage report;
      auto* r = report.mutable_evaluation();
      r->set_round(task.round());
      r->set_model_id(task.model().model_id());
      r->set_examples(result->examples);
      r->set_loss(result->loss);
      r->set_correct(result->correct);
      if (result->binary.has_value()) {
        auto* b = r->mutable_binary();
        b->set_true_positives(result->binary->true_positives);
        b->set_false_positives(result->binary->false_positives);
        b->set_true_negatives(result->binary->true_negatives);
        b->set_false_negatives(result->binary->false_negatives);
        if (result->binary->auc.has_value()) b->set_auc(*result->binary->auc);
      }
      stream->Write(report);
      ++tasks_completed_;
      spdlog::info("site={} round={} stage=evaluate accuracy={:.4f} loss={:.4f} examples={}",
                   config_.site, task.round(),
                   result->examples ? static_cast<double>(result->correct) / result->examples : 0,
                   result->loss, result->examples);
    } else if (message.has_done()) {
      spdlog::info("site={} stage=done federation finished after {} rounds: {}", config_.site,
                   message.done().rounds_committed(), message.done().reason());
      if (config_.exit_when_done) {
        end = SessionEnd::kDone;
        context.TryCancel();
        break;
      }
    }
  }
  connected_ = false;
  metrics_.SetConnected(false);
  grpc::Status status = stream->Finish();
  clear_context();
  if (end != SessionEnd::kDone) *why = status.ok() ? "stream closed" : status.error_message();
  return end;
}

absl::StatusOr<std::vector<float>> SiteClient::Download(cohort::v1::Federation::Stub& stub,
                                                        uint64_t round,
                                                        const cohort::v1::ModelRef& ref,
                                                        int64_t deadline_unix_ms) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(deadline_unix_ms));
  TransferScope transfer(this, &context);
  cohort::v1::DownloadModelRequest request;
  request.set_round(round);
  request.set_model_id(ref.model_id());
  auto reader = stub.DownloadModel(&context, request);
  tensor::ChunkReassembler assembler(ref.num_values(), kMaxDownloadChunkBytes);
  cohort::v1::ModelChunk chunk;
  absl::Status status;
  while (reader->Read(&chunk)) {
    status = assembler.Add(chunk.offset(), chunk.data());
    if (!status.ok()) {
      context.TryCancel();
      break;
    }
  }
  grpc::Status finish = reader->Finish();
  if (!status.ok()) return status;
  if (absl::Status s = FromGrpc(finish, "model download"); !s.ok()) return s;
  if (absl::Status s = assembler.Finish(); !s.ok()) return s;
  std::vector<float> values = assembler.Release();
  if (crypto::Sha256(tensor::AsBytes(values)) != ref.sha256()) {
    return absl::DataLossError("downloaded model does not match its announced SHA-256");
  }
  return values;
}

absl::Status SiteClient::HandleTrain(cohort::v1::Federation::Stub& stub, SessionStream& stream,
                                     const cohort::v1::TrainTask& task) {
  secure_round_.reset();  // a new task ends whatever secure round was under way
  absl::StatusOr<AcceptedTask> accepted = CheckTrainTask(task);
  if (!accepted.ok()) return accepted.status();
  absl::Status status = TrainAndSend(stub, stream, task, *accepted);
  if (!status.ok()) {
    metrics_.RoundEnded(ClientMetrics::RoundOutcome::kFailed, task.round());
  } else if (!task.has_secagg()) {
    // A secure round counts once the site has answered its unmask request.
    metrics_.RoundEnded(ClientMetrics::RoundOutcome::kCompleted, task.round());
  }
  return status;
}

absl::StatusOr<SiteClient::AcceptedTask> SiteClient::CheckTrainTask(
    const cohort::v1::TrainTask& task) {
  auto refuse = [this](ClientMetrics::Refusal reason, absl::Status status) {
    metrics_.TaskRefused(reason);
    return status;
  };
  using Refusal = ClientMetrics::Refusal;
  AcceptedTask accepted;
  absl::StatusOr<tensor::ParameterLayout> layout = LayoutFromProto(task.model());
  if (!layout.ok()) return refuse(Refusal::kOther, layout.status());
  accepted.layout = std::move(*layout);
  if (task.has_secagg()) {
    // Refuse a weak or malformed secure aggregation before spending effort on training.
    absl::StatusOr<secagg::QuantizationParams> params = secagg::ValidateSecAggConfig(task.secagg());
    if (!params.ok()) return refuse(Refusal::kOther, params.status());
    if (task.secagg().vector_length() !=
        static_cast<uint64_t>(accepted.layout.TotalValues()) + 1) {
      return refuse(Refusal::kOther, absl::InvalidArgumentError(
                                         "secure aggregation vector length does not fit the model"));
    }
  }
  accepted.spec = SpecFromProto(task.model().spec());
  if (absl::Status s = trainer_->CheckModel(accepted.spec, accepted.layout); !s.ok()) {
    return refuse(Refusal::kOther, s);
  }
  accepted.plan = PlanDpRound(static_cast<int64_t>(trainer_->train_examples()),
                              std::max<int64_t>(1, task.training().batch_size()),
                              task.training().epochs());
  if (ledger_ != nullptr) {
    dp::SitePrivacyPolicy policy{config_.privacy.max_epsilon, config_.privacy.delta,
                             config_.privacy.min_noise_multiplier, config_.privacy.max_grad_norm};
    dp::DpRefusal refusal = dp::DpRefusal::kNone;
    absl::Status allowed =
        dp::CheckDpTask(policy, *ledger_, task.training().has_dp(),
                    task.training().dp().noise_multiplier(), task.training().dp().max_grad_norm(),
                    accepted.plan, &refusal);
    // Rules checked before the ledger is read say nothing about it.
    if (refusal == dp::DpRefusal::kNone || refusal == dp::DpRefusal::kBudget ||
        refusal == dp::DpRefusal::kLedger) {
      NoteLedgerAccess(refusal == dp::DpRefusal::kLedger ? allowed : absl::OkStatus());
    }
    if (!allowed.ok()) return refuse(RefusalOf(refusal), allowed);
  }
  if (!(task.training().proximal_mu() >= 0) || !std::isfinite(task.training().proximal_mu())) {
    return refuse(Refusal::kOther, absl::InvalidArgumentError(
                                       "the task's proximal_mu must be finite and >= 0"));
  }
  if (task.training().has_dp() && (!(task.training().dp().noise_multiplier() > 0) ||
                                   !(task.training().dp().max_grad_norm() > 0))) {
    return refuse(Refusal::kOther, absl::InvalidArgumentError(
                                       "the task asks for DP-SGD without noise or clipping"));
  }
  return accepted;
}

absl::Status SiteClient::TrainAndSend(cohort::v1::Federation::Stub& stub, SessionStream& stream,
                                      const cohort::v1::TrainTask& task,
                                      const AcceptedTask& accepted) {
  const tensor::ParameterLayout& layout = accepted.layout;
  const config::ModelSpec& spec = accepted.spec;
  const DpRoundPlan& plan = accepted.plan;
  absl::StatusOr<std::vector<float>> global =
      Download(stub, task.round(), task.model(), task.deadline_unix_ms());
  if (!global.ok()) return global.status();
  TrainingParams params;
  params.epochs = task.training().epochs();
  params.batch_size = std::max<int64_t>(1, task.training().batch_size());
  params.learning_rate = task.training().learning_rate();
  params.proximal_mu = task.training().proximal_mu();  // checked by CheckTrainTask
  if (task.training().has_dp()) {
    params.dp = true;  // noise and clipping checked positive by CheckTrainTask
    params.noise_multiplier = task.training().dp().noise_multiplier();
    params.max_grad_norm = task.training().dp().max_grad_norm();
  }
  if (VanishesAt(SecAggStage::kTrain)) return absl::CancelledError("vanished during training");
  const absl::Time training_start = absl::Now();
  absl::StatusOr<TrainResult> result = trainer_->Train(spec, layout, *global, params);
  if (!result.ok()) return result.status();
  metrics_.TrainingFinished(absl::Now() - training_start, result->examples);
  if (absl::Status s = tensor::CheckFinite(result->delta.data(), result->delta.size()); !s.ok()) {
    return absl::InternalError(absl::StrCat("local training diverged: ", s.message()));
  }
  spdlog::info("site={} round={} stage=train loss={:.4f} examples={} seconds={:.2f}",
               config_.site, task.round(), result->train_loss, result->examples,
               result->seconds);
  if (ledger_ != nullptr) {
    // The ledger entry is durable before any byte of the update leaves the site.
    if (result->dp_steps != plan.steps || result->dp_sample_rate != plan.sample_rate) {
      return absl::InternalError("the trainer did not run the checked DP-SGD plan");
    }
    dp::LedgerEntry entry;
    entry.round = task.round();
    entry.sample_rate = result->dp_sample_rate;
    entry.noise_multiplier = params.noise_multiplier;
    entry.steps = result->dp_steps;
    entry.max_grad_norm = params.max_grad_norm;
    entry.delta = config_.privacy.delta;
    absl::StatusOr<double> after = ledger_->Epsilon(config_.privacy.delta, entry.sample_rate,
                                                    entry.noise_multiplier, entry.steps);
    if (!after.ok()) {
      if (absl::IsFailedPrecondition(after.status())) NoteLedgerAccess(after.status());
      return after.status();
    }
    entry.epsilon_after = *after;
    entry.recorded_at = absl::Now();
    absl::Status recorded = ledger_->Record(entry);
    NoteLedgerAccess(recorded);
    if (!recorded.ok()) return recorded;
    spent_epsilon_ = *after;
    metrics_.SetEpsilonSpent(*after);
    spdlog::info("site={} round={} stage=train privacy: epsilon {:.4f} of {} after this round",
                 config_.site, task.round(), *after, config_.privacy.max_epsilon);
  }
  if (task.has_secagg()) return StartSecureRound(stream, task, *result);
  return Upload(stub, task, *result, tensor::AsBytes(result->delta), sizeof(float),
                /*masked_modulus_bits=*/0);
}

absl::StatusOr<SiteClient::SecAggStage> SiteClient::ParseSecAggStage(absl::string_view name) {
  if (name == "train") return SecAggStage::kTrain;
  if (name == "advertise") return SecAggStage::kAdvertise;
  if (name == "share") return SecAggStage::kShareKeys;
  if (name == "masked") return SecAggStage::kMaskedInput;
  if (name == "unmask") return SecAggStage::kUnmask;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown fault stage '", name, "' (train, advertise, share, masked or unmask)"));
}

void SiteClient::SetVanishAt(SecAggStage stage, std::function<void()> vanish) {
  vanish_stage_ = stage;
  vanish_ = std::move(vanish);
}

void SiteClient::SetInputObserver(
    std::function<void(uint64_t, const secagg::ModVector&)> observer) {
  input_observer_ = std::move(observer);
}

bool SiteClient::VanishesAt(SecAggStage stage) {
  if (!vanish_stage_.has_value() || *vanish_stage_ != stage) return false;
  spdlog::warn("site={} stage=secagg fault injection: vanishing now", config_.site);
  secure_round_.reset();
  if (vanish_) vanish_();
  return true;
}

absl::Status SiteClient::StartSecureRound(SessionStream& stream, const cohort::v1::TrainTask& task,
                                          const TrainResult& result) {
  const cohort::v1::SecAggConfig& config = task.secagg();
  absl::StatusOr<secagg::QuantizationParams> params = secagg::ValidateSecAggConfig(config);
  if (!params.ok()) return params.status();
  // FedAvg under secure aggregation: the site sends (w / cap) * delta and w, where w is its
  // example count capped at the round's weight cap; the coordinator learns only the sums.
  const uint64_t weight = std::clamp<uint64_t>(result.examples, 1, config.weight_cap());
  const float scale = static_cast<float>(static_cast<double>(weight) / config.weight_cap());
  std::vector<float> scaled(result.delta.size());
  for (size_t i = 0; i < scaled.size(); ++i) scaled[i] = result.delta[i] * scale;
  auto round = std::make_unique<SecureRound>();
  round->input.emplace(params->modulus_bits, config.vector_length());
  // Stochastic rounding draws from a fresh OS seed; in simulation mode with a `seed` (refused
  // in production) from one derived from (seed, site, round), so a seeded run repeats bit for
  // bit: the masks cancel exactly in the modular sum, and the rounding is then the only
  // randomness that reaches the aggregate.
  secagg::SecretBytes rounding_seed =
      config_.has_seed
          ? secagg::SecretBytes(crypto::Sha256(absl::StrCat(
                "cohort simulation rounding seed\n", config_.site, "\n", config_.seed, "\n",
                task.round())))
          : secagg::RandomSecret(32);
  if (absl::Status s = secagg::Quantize(scaled, *params, rounding_seed, &*round->input, 0);
      !s.ok()) {
    return s;
  }
  round->input->Set(result.delta.size(), weight);
  if (input_observer_) input_observer_(task.round(), *round->input);

  secagg::SiteCredentials credentials;
  credentials.site_id = config_.site;
  for (auto [path, pem] : {std::pair{&config_.tls.cert, &credentials.certificate_pem},
                           std::pair{&config_.tls.key, &credentials.private_key_pem},
                           std::pair{&config_.tls.ca, &credentials.ca_pem}}) {
    absl::StatusOr<std::string> text = ReadFileToString(*path);
    if (!text.ok()) return text.status();
    *pem = std::move(*text);
  }
  // The federation every signature is bound to comes from the site's own certificate
  // (spiffe://<federation>/site/<id>), not from the coordinator; a CN-only certificate
  // falls back to the federation named in Welcome.
  absl::StatusOr<crypto::CertificateInfo> own = crypto::InspectCertificate(credentials.certificate_pem);
  if (!own.ok()) return own.status();
  credentials.federation = welcome_federation_;
  const std::string suffix = absl::StrCat("/site/", config_.site);
  for (const std::string& uri : own->uris) {
    if (absl::StartsWith(uri, "spiffe://") && absl::EndsWith(uri, suffix)) {
      credentials.federation = uri.substr(9, uri.size() - 9 - suffix.size());
    }
  }
  absl::StatusOr<std::unique_ptr<secagg::SecAggClient>> protocol =
      secagg::SecAggClient::Create(std::move(credentials), task.round(), config);
  if (!protocol.ok()) return protocol.status();
  if (VanishesAt(SecAggStage::kAdvertise)) return absl::OkStatus();
  absl::StatusOr<cohort::v1::KeyAdvertisement> ad = (*protocol)->AdvertiseKeys();
  if (!ad.ok()) return ad.status();
  round->task = task;
  round->metrics = result;
  round->metrics.delta.clear();
  round->protocol = std::move(*protocol);
  secure_round_ = std::move(round);
  cohort::v1::SiteMessage message;
  message.mutable_secagg()->set_round(task.round());
  *message.mutable_secagg()->mutable_advertise() = std::move(*ad);
  bytes_sent_ += message.ByteSizeLong();
  if (!stream.Write(message)) return absl::UnavailableError("session lost while advertising keys");
  spdlog::info("site={} round={} stage=secagg advertised keys (k={} t={})", config_.site,
               task.round(), config.degree(), config.threshold());
  return absl::OkStatus();
}

absl::Status SiteClient::HandleSecAgg(cohort::v1::Federation::Stub& stub, SessionStream& stream,
                                      const cohort::v1::SecAggServerMessage& message) {
  if (secure_round_ == nullptr || secure_round_->task.round() != message.round()) {
    spdlog::warn("site={} round={} stage=secagg ignored: no secure round under way",
                 config_.site, message.round());
    return absl::OkStatus();
  }
  SecureRound& round = *secure_round_;
  cohort::v1::SiteMessage reply;
  reply.mutable_secagg()->set_round(message.round());
  switch (message.kind_case()) {
    case cohort::v1::SecAggServerMessage::kPeerKeys: {
      if (VanishesAt(SecAggStage::kShareKeys)) return absl::OkStatus();
      absl::StatusOr<cohort::v1::ShareKeysResponse> shares =
          round.protocol->ShareKeys(message.peer_keys(), absl::Now());
      if (!shares.ok()) return shares.status();
      *reply.mutable_secagg()->mutable_share_keys() = std::move(*shares);
      spdlog::info("site={} round={} stage=secagg verified {} neighbours' keys, shares sent",
                   config_.site, message.round(), message.peer_keys().advertisements_size());
      break;
    }
    case cohort::v1::SecAggServerMessage::kShares: {
      if (VanishesAt(SecAggStage::kMaskedInput)) return absl::OkStatus();
      if (!round.input.has_value()) {
        return absl::FailedPreconditionError("masked input already sent");
      }
      absl::StatusOr<secagg::ModVector> masked =
          round.protocol->MaskInput(message.shares(), std::move(*round.input));
      round.input.reset();
      if (!masked.ok()) return masked.status();
      const std::string bytes = masked->ToBytes();
      return Upload(stub, round.task, round.metrics, bytes, masked->modulus_bits() / 8,
                    static_cast<uint32_t>(masked->modulus_bits()));
    }
    case cohort::v1::SecAggServerMessage::kUnmask: {
      if (VanishesAt(SecAggStage::kUnmask)) return absl::OkStatus();
      absl::StatusOr<cohort::v1::UnmaskResponse> response =
          round.protocol->Unmask(message.unmask());
      if (!response.ok()) return response.status();
      *reply.mutable_secagg()->mutable_unmask() = std::move(*response);
      secure_round_.reset();
      ++tasks_completed_;
      metrics_.RoundEnded(ClientMetrics::RoundOutcome::kCompleted, message.round());
      spdlog::info("site={} round={} stage=secagg unmask shares sent", config_.site,
                   message.round());
      break;
    }
    case cohort::v1::SecAggServerMessage::kAbort:
      spdlog::warn("site={} round={} stage=secagg coordinator aborted: {}", config_.site,
                   message.round(), message.abort().reason());
      metrics_.RoundEnded(ClientMetrics::RoundOutcome::kAborted, message.round());
      secure_round_.reset();
      return absl::OkStatus();
    case cohort::v1::SecAggServerMessage::KIND_NOT_SET:
      return absl::InvalidArgumentError("an empty secure aggregation message");
  }
  bytes_sent_ += reply.ByteSizeLong();
  if (!stream.Write(reply)) return absl::UnavailableError("session lost");
  return absl::OkStatus();
}

absl::Status SiteClient::Upload(cohort::v1::Federation::Stub& stub,
                                const cohort::v1::TrainTask& task, const TrainResult& result,
                                absl::string_view bytes, size_t value_bytes,
                                uint32_t masked_modulus_bits) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(task.deadline_unix_ms()));
  TransferScope transfer(this, &context);
  cohort::v1::UploadReceipt receipt;
  auto writer = stub.UploadUpdate(&context, &receipt);
  cohort::v1::UpdateChunk message;
  auto* header = message.mutable_header();
  header->set_round(task.round());
  header->set_base_model_id(task.model().model_id());
  header->set_num_values(bytes.size() / value_bytes);
  header->set_masked_modulus_bits(masked_modulus_bits);
  header->set_weight(static_cast<double>(result.examples));
  header->mutable_metrics()->set_train_loss(result.train_loss);
  header->mutable_metrics()->set_train_examples(result.examples);
  header->mutable_metrics()->set_train_seconds(result.seconds);
  header->mutable_metrics()->set_dp_steps(static_cast<uint64_t>(result.dp_steps));
  header->mutable_metrics()->set_dp_sample_rate(result.dp_sample_rate);
  bytes_sent_ += message.ByteSizeLong();
  bool ok = writer->Write(message);
  // 1 MiB chunks, or smaller when the coordinator says so (kept a whole number of values).
  size_t chunk_bytes = kUploadChunkBytes;
  if (task.max_upload_chunk_bytes() > 0) {
    chunk_bytes = std::min<size_t>(chunk_bytes, task.max_upload_chunk_bytes());
  }
  chunk_bytes = std::max<size_t>(value_bytes, chunk_bytes - chunk_bytes % value_bytes);
  for (size_t offset = 0; ok && offset < bytes.size(); offset += chunk_bytes) {
    message.Clear();
    message.mutable_data()->set_offset(offset);
    message.mutable_data()->set_data(bytes.data() + offset,
                                     std::min(chunk_bytes, bytes.size() - offset));
    bytes_sent_ += message.ByteSizeLong();
    ok = writer->Write(message);
  }
  if (ok) writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (absl::Status s = FromGrpc(status, "upload refused"); !s.ok()) return s;
  spdlog::info("site={} round={} stage=upload done bytes={}", config_.site, task.round(),
               receipt.bytes_received());
  return absl::OkStatus();
}

absl::StatusOr<EvalResult> SiteClient::HandleEvaluate(cohort::v1::Federation::Stub& stub,
                                                      const cohort::v1::EvaluateTask& task) {
  absl::StatusOr<tensor::ParameterLayout> layout = LayoutFromProto(task.model());
  if (!layout.ok()) return layout.status();
  config::ModelSpec spec = SpecFromProto(task.model().spec());
  if (absl::Status s = trainer_->CheckModel(spec, *layout); !s.ok()) return s;
  absl::StatusOr<std::vector<float>> model =
      Download(stub, task.round(), task.model(), task.deadline_unix_ms());
  if (!model.ok()) return model.status();
  return trainer_->Evaluate(spec, *layout, *model);
}

}  // namespace cohort::client
