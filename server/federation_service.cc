#include "server/federation_service.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/model/models.h"
#include "common/tensor/chunk_reassembler.h"
#include "common/tls/peer_identity.h"
#include "common/util/files.h"
#include "common/util/log.h"
#include "server/coordinator_metrics.h"

namespace cohort::server {
namespace {

constexpr size_t kDownloadChunkBytes = 1 << 20;

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::Status RecheckCallerCertificate(const grpc::AuthContext& auth, const std::string& ca_path,
                                      tls::RevocationList* crl) {
  std::vector<grpc::string_ref> pem = auth.FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  return tls::CheckClientCertificate(
      pem.empty() ? absl::string_view() : absl::string_view(pem[0].data(), pem[0].size()),
      ca_path, crl);
}

void RoundBoard::Publish(std::shared_ptr<Round> round) {
  absl::MutexLock lock(&mu_);
  round_ = std::move(round);
}

std::shared_ptr<Round> RoundBoard::Current() const {
  absl::MutexLock lock(&mu_);
  return round_;
}

bool UploadSlots::Acquire(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto has_free = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return free_ > 0; };
  if (!mu_.AwaitWithDeadline(absl::Condition(&has_free), deadline)) return false;
  --free_;
  return true;
}

void UploadSlots::Release() {
  absl::MutexLock lock(&mu_);
  ++free_;
}

namespace {
// The most parameter tensors a site's Hello may describe.
constexpr int kMaxHelloTensors = 1 << 16;
}  // namespace

FederationService::FederationService(const config::CoordinatorConfig& config,
                                     SessionRegistry* sessions, RoundBoard* board)
    : federation_(config.federation),
      ca_path_(config.tls.ca),
      model_spec_(config.model),
      session_starts_(static_cast<int>(config.limits.max_sessions_per_minute)),
      allowed_sites_(config.sites.begin(), config.sites.end()),
      max_chunk_bytes_(config.limits.max_chunk_bytes),
      max_sessions_per_minute_(config.limits.max_sessions_per_minute),
      stage_timeout_(config.rounds.stage_timeout),
      sessions_(sessions),
      board_(board),
      upload_slots_(static_cast<int>(config.limits.max_concurrent_uploads)) {}

absl::StatusOr<std::string> FederationService::Authorize(
    const grpc::ServerContext& context) const {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return absl::UnauthenticatedError("no TLS peer identity");
  absl::StatusOr<std::string> site = tls::SiteIdFromAuthContext(*auth, federation_);
  if (!site.ok()) {
    spdlog::warn("refused peer {}: {}", context.peer(), site.status().message());
    return site.status();
  }
  if (allowed_sites_.count(*site) == 0) {
    spdlog::warn("refused peer {}: site '{}' is not on the allowlist", context.peer(), *site);
    return absl::PermissionDeniedError(
        absl::StrCat("site '", *site, "' is not a member of federation '", federation_, "'"));
  }
  // The handshake checked the certificate when the connection opened; a connection lives on
  // across revocations and expiry, so every call checks it again.
  if (absl::Status valid = RecheckCallerCertificate(*auth, ca_path_, crl_.get()); !valid.ok()) {
    spdlog::warn("site={} refused a call: {}", *site, valid.message());
    return valid;
  }
  return site;
}

grpc::Status FederationService::Session(grpc::ServerContext* context, SessionStream* stream) {
  absl::StatusOr<std::string> site = Authorize(*context);
  if (!site.ok()) return ToGrpcStatus(site.status());

  if (!session_starts_.Allow(*site, absl::Now())) {
    spdlog::warn("site={} stage=session refused: more than {} sessions in a minute", *site,
                 max_sessions_per_minute_);
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("site '", *site, "' opened more than ",
                                     max_sessions_per_minute_,
                                     " sessions in the last minute; reconnect later"));
  }
  cohort::v1::SiteMessage first;
  if (!stream->Read(&first)) return grpc::Status(grpc::StatusCode::CANCELLED, "no hello");
  if (!first.has_hello()) {
    spdlog::warn("site={} stage=session refused: first message is not Hello", *site);
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first Session message must be Hello");
  }
  // A site must run the federation's architecture: refused before Welcome, so that the site
  // sees a permanent refusal (it stops) rather than a lost connection (it would retry).
  std::optional<tensor::ParameterLayout> site_layout;
  if (first.hello().has_model_layout()) {
    const cohort::v1::ModelLayout& described = first.hello().model_layout();
    // Bounded before use: a layout is names and shapes, never more than a model could hold.
    bool bounded = described.tensors_size() <= kMaxHelloTensors;
    std::vector<tensor::TensorSpec> tensors;
    for (const cohort::v1::TensorSpec& t : described.tensors()) {
      bounded = bounded && t.shape_size() <= 8 && t.name().size() <= 1024;
      for (int64_t d : t.shape()) bounded = bounded && d >= 1 && d <= (int64_t{1} << 31);
      if (!bounded) break;
      tensors.push_back({t.name(), {t.shape().begin(), t.shape().end()}});
    }
    if (!bounded) {
      spdlog::warn("site={} stage=session refused: Hello's model layout is out of bounds", *site);
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("Hello.model_layout is out of bounds (at most ",
                                       kMaxHelloTensors, " tensors of at most 8 dimensions, "
                                       "each 1..2^31, names up to 1024 bytes)"));
    }
    site_layout = tensor::ParameterLayout(std::move(tensors));
  }
  if (absl::Status fits = model::CheckSiteArchitecture(model_spec_, layout_, site_layout);
      !fits.ok()) {
    spdlog::warn("site={} stage=session refused: {}", *site, fits.message());
    return ToGrpcStatus(fits);
  }
  // Welcome goes out before the session is registered: once registered, the round loop may
  // push a task down the stream at any moment, and Welcome must be the first message.
  cohort::v1::CoordinatorMessage welcome;
  welcome.mutable_welcome()->set_federation(federation_);
  welcome.mutable_welcome()->set_site_id(*site);
  welcome.mutable_welcome()->set_coordinator_version(COHORT_VERSION);
  if (!stream->Write(welcome)) {
    return grpc::Status(grpc::StatusCode::CANCELLED, "site went away before Welcome");
  }
  std::shared_ptr<SiteSession> session =
      sessions_->Register(*site, context, stream, first.hello());
  if (session == nullptr) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator is shutting down");
  }
  spdlog::info("site={} stage=session connected peer={} train_examples={} test_examples={}",
               *site, context->peer(), first.hello().train_examples(),
               first.hello().test_examples());

  grpc::Status result = grpc::Status::OK;
  cohort::v1::SiteMessage message;
  while (stream->Read(&message)) {
    if (metrics_ != nullptr) metrics_->AddBytesReceived(message.ByteSizeLong());
    std::shared_ptr<Round> round = board_->Current();
    if (message.has_evaluation()) {
      const auto& report = message.evaluation();
      if (round == nullptr || round->number() != report.round()) {
        spdlog::warn("site={} round={} stage=evaluate refused: round is not open", *site,
                     report.round());
        continue;
      }
      EvaluationResult result{report.examples(), report.loss(), report.correct(), std::nullopt};
      if (report.has_binary()) {
        const cohort::v1::BinaryEvaluation& b = report.binary();
        data::BinaryMetrics binary;
        binary.true_positives = b.true_positives();
        binary.false_positives = b.false_positives();
        binary.true_negatives = b.true_negatives();
        binary.false_negatives = b.false_negatives();
        if (b.has_auc()) binary.auc = b.auc();
        result.binary = binary;
      }
      absl::Status status = round->ReportEvaluation(*site, report.model_id(), result);
      if (!status.ok()) {
        spdlog::warn("site={} round={} stage=evaluate refused: {}", *site, report.round(),
                     status.message());
      }
    } else if (message.has_failure()) {
      spdlog::warn("site={} round={} stage=train site reports failure: {}", *site,
                   message.failure().round(), message.failure().reason());
      if (round != nullptr && round->number() == message.failure().round()) {
        round->ReportFailure(*site, message.failure().reason());
      }
    } else if (message.has_secagg()) {
      const v1::SecAggClientMessage& secagg = message.secagg();
      if (round == nullptr || round->number() != secagg.round() || round->secure() == nullptr) {
        spdlog::warn("site={} round={} stage=secagg refused: no secure aggregation is open for "
                     "that round", *site, secagg.round());
        continue;
      }
      if (absl::Status s = round->secure()->OnSiteMessage(*site, secagg); !s.ok()) {
        spdlog::warn("site={} round={} stage=secagg site dropped from the round: {}", *site,
                     secagg.round(), s.message());
      }
    } else {
      spdlog::warn("site={} stage=session ignored an unexpected message", *site);
    }
  }
  if (std::shared_ptr<Round> round = board_->Current()) round->ReportSessionLost(*site);
  session->Detach();
  sessions_->Unregister(session);
  spdlog::info("site={} stage=session disconnected", *site);
  return result;
}

grpc::Status FederationService::DownloadModel(grpc::ServerContext* context,
                                              const cohort::v1::DownloadModelRequest* request,
                                              grpc::ServerWriter<cohort::v1::ModelChunk>* writer) {
  absl::StatusOr<std::string> site = Authorize(*context);
  if (!site.ok()) return ToGrpcStatus(site.status());
  std::shared_ptr<Round> round = board_->Current();
  if (round == nullptr || round->number() != request->round()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("round ", request->round(), " is not open"));
  }
  absl::StatusOr<std::shared_ptr<const ModelBlob>> blob =
      round->ModelFor(*site, request->model_id());
  if (!blob.ok()) {
    spdlog::warn("site={} round={} stage=download refused: {}", *site, request->round(),
                 blob.status().message());
    return ToGrpcStatus(blob.status());
  }
  const std::vector<float>& values = (*blob)->values;
  const char* bytes = reinterpret_cast<const char*>(values.data());
  const size_t total = values.size() * sizeof(float);
  cohort::v1::ModelChunk chunk;
  for (size_t offset = 0; offset < total; offset += kDownloadChunkBytes) {
    if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    size_t n = std::min(kDownloadChunkBytes, total - offset);
    chunk.set_offset(offset);
    chunk.set_data(bytes + offset, n);
    if (!writer->Write(chunk)) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "site stopped reading the model");
    }
    if (metrics_ != nullptr) metrics_->AddBytesSent(n);
  }
  return grpc::Status::OK;
}

template <typename Value, typename Complete>
absl::Status FederationService::ReceivePayload(grpc::ServerContext& context,
                                               grpc::ServerReader<cohort::v1::UpdateChunk>& reader,
                                               uint64_t num_values, uint64_t* bytes_received,
                                               Complete complete) {
  absl::Status status;
  cohort::v1::UpdateChunk message;
  tensor::BasicChunkReassembler<Value> assembler(num_values,
                                                 static_cast<uint64_t>(max_chunk_bytes_));
  while (status.ok() && reader.Read(&message)) {
    if (!message.has_data()) {
      status = absl::InvalidArgumentError("a second header inside one upload stream");
      break;
    }
    status = assembler.Add(message.data().offset(), message.data().data());
  }
  if (status.ok() && context.IsCancelled()) {
    // The site cancelled, its connection died (a keepalive went unanswered) or the round's
    // deadline cancelled the call: the server cannot tell these apart.
    status = absl::CancelledError(
        "upload cancelled before it completed (cancelled by the site, connection lost, or the "
        "stage deadline passed)");
  }
  if (status.ok()) status = assembler.Finish();
  *bytes_received = assembler.bytes_received();
  if (!status.ok()) return status;
  return complete(assembler.Release());
}

grpc::Status FederationService::UploadUpdate(grpc::ServerContext* context,
                                             grpc::ServerReader<cohort::v1::UpdateChunk>* reader,
                                             cohort::v1::UploadReceipt* receipt) {
  absl::StatusOr<std::string> site = Authorize(*context);
  if (!site.ok()) return ToGrpcStatus(site.status());
  cohort::v1::UpdateChunk message;
  if (!reader->Read(&message)) {
    spdlog::warn("site={} stage=upload refused: empty upload stream", *site);
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty upload stream");
  }
  if (!message.has_header()) {
    spdlog::warn("site={} stage=upload refused: stream does not start with a header", *site);
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "an upload must start with an UpdateHeader");
  }
  // A copy: `message` is reused for the data chunks below.
  const cohort::v1::UpdateHeader header = message.header();
  UploadAnnouncement announcement{header.round(),
                                  header.base_model_id(),
                                  header.num_values(),
                                  header.weight(),
                                  header.metrics().train_loss(),
                                  header.metrics().train_examples(),
                                  static_cast<int64_t>(header.metrics().dp_steps()),
                                  header.metrics().dp_sample_rate(),
                                  header.masked_modulus_bits()};
  std::shared_ptr<Round> round = board_->Current();
  if (round == nullptr) {
    spdlog::warn("site={} round={} stage=upload refused: no round is open", *site,
                 header.round());
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("round ", header.round(), " is not open"));
  }
  if (absl::Status status =
          round->BeginUpload(*site, announcement, [context] { context->TryCancel(); });
      !status.ok()) {
    spdlog::warn("site={} round={} stage=upload refused: {}", *site, header.round(),
                 status.message());
    return ToGrpcStatus(status);
  }
  // From here on the round holds an in-flight mark for the site; every exit path either
  // completes or abandons it.
  absl::Time wait_until = absl::Now() + stage_timeout_;
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    wait_until = std::min(wait_until, absl::FromChrono(context->deadline()));
  }
  if (!upload_slots_.Acquire(wait_until)) {
    round->AbandonUpload(*site);
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "no upload slot before deadline");
  }
  spdlog::info("site={} round={} stage=upload receiving values={} masked_bits={}", *site,
               header.round(), header.num_values(), header.masked_modulus_bits());
  uint64_t bytes_received = 0;
  absl::Status status;
  // A masked input arrives as words mod 2^32 or 2^64 and goes to the secure sum.
  auto complete_masked = [&](auto words) {
    constexpr int kBits = sizeof(typename decltype(words)::value_type) * 8;
    secagg::ModVector masked(kBits, 0);
    if constexpr (kBits == 32) {
      masked.words32() = std::move(words);
    } else {
      masked.words64() = std::move(words);
    }
    return round->CompleteMaskedUpload(*site, announcement, masked);
  };
  switch (header.masked_modulus_bits()) {
    case 0:
      status = ReceivePayload<float>(*context, *reader, header.num_values(), &bytes_received,
                                     [&](std::vector<float> delta) {
                                       return round->CompleteUpload(*site, announcement, delta);
                                     });
      break;
    case 32:
      status = ReceivePayload<uint32_t>(*context, *reader, header.num_values(), &bytes_received,
                                        complete_masked);
      break;
    default:  // 64; BeginUpload refused any other modulus
      status = ReceivePayload<uint64_t>(*context, *reader, header.num_values(), &bytes_received,
                                        complete_masked);
      break;
  }
  if (!status.ok()) round->AbandonUpload(*site);
  upload_slots_.Release();
  if (metrics_ != nullptr) metrics_->AddBytesReceived(bytes_received);
  if (!status.ok()) {
    spdlog::warn("site={} round={} stage=upload refused after {} bytes: {}", *site,
                 header.round(), bytes_received, status.message());
    return ToGrpcStatus(status);
  }
  spdlog::info("site={} round={} stage=upload accepted bytes={} weight={}", *site,
               header.round(), bytes_received, header.weight());
  receipt->set_round(header.round());
  receipt->set_bytes_received(bytes_received);
  return grpc::Status::OK;
}

}  // namespace cohort::server
