#include "client/site_client.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/crypto/sha256.h"
#include "common/tensor/chunk_reassembler.h"
#include "common/tls/credentials.h"
#include "common/util/log.h"

namespace cohort::client {
namespace {

constexpr size_t kUploadChunkBytes = 1 << 20;
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
    : config_(std::move(config)), trainer_(std::move(trainer)), jitter_(std::random_device{}()) {}

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
    spdlog::info("site={} stage=start privacy budget: epsilon {:.4f} of {} spent (delta {})",
                 config_.site, *spent, config_.privacy.max_epsilon, config_.privacy.delta);
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      tls::MakeChannelCredentials(config_.tls);
  if (!credentials.ok()) return credentials.status();
  channel_ = grpc::CreateCustomChannel(config_.coordinator, *credentials,
                                       tls::MakeChannelArguments(config_.server_name));
  absl::Duration backoff = config_.reconnect.initial_backoff;
  while (!stopping_) {
    const int opened_before = sessions_opened_;
    std::string why;
    if (RunSession(&why) == SessionEnd::kDone) return absl::OkStatus();
    if (stopping_) break;
    if (sessions_opened_ > opened_before) backoff = config_.reconnect.initial_backoff;
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
  cohort::v1::CoordinatorMessage message;
  if (!stream->Write(hello) || !stream->Read(&message) || !message.has_welcome()) {
    // End our side first: Finish() on a stream the coordinator keeps open would block.
    context.TryCancel();
    grpc::Status status = stream->Finish();
    clear_context();
    *why = message.has_welcome() || status.error_code() != grpc::StatusCode::CANCELLED
               ? status.error_message()
               : "the coordinator did not start the session with Welcome";
    return SessionEnd::kLost;
  }
  ++sessions_opened_;
  spdlog::info("site={} stage=connect session open: coordinator sees site '{}' in federation '{}'",
               config_.site, message.welcome().site_id(), message.welcome().federation());

  SessionEnd end = SessionEnd::kLost;
  while (stream->Read(&message)) {
    if (message.has_train()) {
      const auto& task = message.train();
      spdlog::info("site={} round={} stage=train task received", config_.site, task.round());
      absl::Status status = HandleTrain(*stub, task);
      if (status.ok()) {
        ++tasks_completed_;
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

absl::Status SiteClient::HandleTrain(cohort::v1::Federation::Stub& stub,
                                     const cohort::v1::TrainTask& task) {
  absl::StatusOr<tensor::ParameterLayout> layout = LayoutFromProto(task.model());
  if (!layout.ok()) return layout.status();
  config::ModelSpec spec = SpecFromProto(task.model().spec());
  if (absl::Status s = trainer_->CheckModel(spec, *layout); !s.ok()) return s;
  const DpRoundPlan plan = PlanDpRound(static_cast<int64_t>(trainer_->train_examples()),
                                       std::max<int64_t>(1, task.training().batch_size()),
                                       task.training().epochs());
  if (ledger_ != nullptr) {
    dp::SitePrivacyPolicy policy{config_.privacy.max_epsilon, config_.privacy.delta,
                             config_.privacy.min_noise_multiplier, config_.privacy.max_grad_norm};
    absl::Status allowed =
        dp::CheckDpTask(policy, *ledger_, task.training().has_dp(),
                    task.training().dp().noise_multiplier(), task.training().dp().max_grad_norm(),
                    plan);
    if (!allowed.ok()) return allowed;
  }
  absl::StatusOr<std::vector<float>> global =
      Download(stub, task.round(), task.model(), task.deadline_unix_ms());
  if (!global.ok()) return global.status();
  TrainingParams params;
  params.epochs = task.training().epochs();
  params.batch_size = std::max<int64_t>(1, task.training().batch_size());
  params.learning_rate = task.training().learning_rate();
  if (task.training().has_dp()) {
    params.dp = true;
    params.noise_multiplier = task.training().dp().noise_multiplier();
    params.max_grad_norm = task.training().dp().max_grad_norm();
    if (!(params.noise_multiplier > 0) || !(params.max_grad_norm > 0)) {
      return absl::InvalidArgumentError("the task asks for DP-SGD without noise or clipping");
    }
  }
  absl::StatusOr<TrainResult> result = trainer_->Train(spec, *layout, *global, params);
  if (!result.ok()) return result.status();
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
    if (!after.ok()) return after.status();
    entry.epsilon_after = *after;
    entry.recorded_at = absl::Now();
    if (absl::Status s = ledger_->Record(entry); !s.ok()) return s;
    spent_epsilon_ = *after;
    spdlog::info("site={} round={} stage=train privacy: epsilon {:.4f} of {} after this round",
                 config_.site, task.round(), *after, config_.privacy.max_epsilon);
  }
  return Upload(stub, task, *result);
}

absl::Status SiteClient::Upload(cohort::v1::Federation::Stub& stub,
                                const cohort::v1::TrainTask& task, const TrainResult& result) {
  grpc::ClientContext context;
  context.set_deadline(Deadline(task.deadline_unix_ms()));
  TransferScope transfer(this, &context);
  cohort::v1::UploadReceipt receipt;
  auto writer = stub.UploadUpdate(&context, &receipt);
  cohort::v1::UpdateChunk message;
  auto* header = message.mutable_header();
  header->set_round(task.round());
  header->set_base_model_id(task.model().model_id());
  header->set_num_values(result.delta.size());
  header->set_weight(static_cast<double>(result.examples));
  header->mutable_metrics()->set_train_loss(result.train_loss);
  header->mutable_metrics()->set_train_examples(result.examples);
  header->mutable_metrics()->set_train_seconds(result.seconds);
  header->mutable_metrics()->set_dp_steps(static_cast<uint64_t>(result.dp_steps));
  header->mutable_metrics()->set_dp_sample_rate(result.dp_sample_rate);
  bool ok = writer->Write(message);
  absl::string_view bytes = tensor::AsBytes(result.delta);
  // 1 MiB chunks, or smaller when the coordinator says so (kept a whole number of floats).
  size_t chunk_bytes = kUploadChunkBytes;
  if (task.max_upload_chunk_bytes() > 0) {
    chunk_bytes = std::min<size_t>(chunk_bytes, task.max_upload_chunk_bytes());
  }
  chunk_bytes = std::max<size_t>(sizeof(float), chunk_bytes - chunk_bytes % sizeof(float));
  for (size_t offset = 0; ok && offset < bytes.size(); offset += chunk_bytes) {
    message.Clear();
    message.mutable_data()->set_offset(offset);
    message.mutable_data()->set_data(bytes.data() + offset,
                                     std::min(chunk_bytes, bytes.size() - offset));
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
