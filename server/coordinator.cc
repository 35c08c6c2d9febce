#include "server/coordinator.h"

#include <filesystem>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <google/protobuf/util/json_util.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/dp/calibration.h"
#include "common/dp/ledger.h"
#include "common/http/metrics_response.h"
#include "common/model/checkpoint.h"
#include "common/model/models.h"
#include "common/secagg/neighborhood.h"
#include "common/secagg/quantizer.h"
#include "common/secagg/secret.h"
#include "common/state/round_format.h"
#include "common/tls/credentials.h"
#include "common/util/files.h"
#include "common/util/log.h"
#include "server/status_page.h"

namespace cohort::server {
namespace {

constexpr int kMaxConsecutiveAborts = 5;
constexpr size_t kMinSecureCohort = 3;
// The service name the health service reports on (the empty name covers the whole server).
constexpr char kFederationService[] = "cohort.v1.Federation";

std::string CheckpointName(uint64_t round) {
  return absl::StrFormat("checkpoints/round-%06d.pt", round);
}

// The server optimizer's state after a round, next to the round's checkpoint.
std::string OptimizerStateName(uint64_t round) {
  return absl::StrFormat("checkpoints/round-%06d.opt", round);
}

int64_t UnixMillis(absl::Time t) { return absl::ToUnixMillis(t); }

using SecAggMessageMaker = std::function<absl::StatusOr<cohort::v1::SecAggServerMessage>(
    secagg::SecAggServer&, const std::string&)>;

// Builds a site's message for the next secure aggregation stage: the payload from `next`
// (e.g. SecAggServer::PeerKeysFor) placed in the field `field` returns.
template <typename Payload>
SecAggMessageMaker StageMessage(
    absl::StatusOr<Payload> (secagg::SecAggServer::*next)(const std::string&) const,
    Payload* (cohort::v1::SecAggServerMessage::*field)()) {
  return [next, field](secagg::SecAggServer& server,
                       const std::string& site) -> absl::StatusOr<cohort::v1::SecAggServerMessage> {
    absl::StatusOr<Payload> payload = (server.*next)(site);
    if (!payload.ok()) return payload.status();
    cohort::v1::SecAggServerMessage message;
    *(message.*field)() = std::move(*payload);
    return message;
  };
}

// Removes the temporary files of checkpoint writes cut short by a crash (".<name>.tmp-XXXXXX",
// see WriteFileDurably); the checkpoints themselves are only ever renamed into place whole.
void RemoveStaleTempFiles(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > 1 && name[0] == '.' && name.find(".tmp-") != std::string::npos) {
      std::filesystem::remove(entry.path(), ec);
      spdlog::info("stage=resume removed an unfinished checkpoint write {}", name);
    }
  }
}

// The model committed by round N is "model-N"; the initial model is "model-0".
std::string ModelId(uint64_t round) { return absl::StrCat("model-", round); }

}  // namespace

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(
    config::CoordinatorConfig config) {
  if (absl::Status s = EnsureDirectory(config.state_dir + "/checkpoints"); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<state::StateStore>> store =
      state::StateStore::Open(config.state_dir + "/state.db");
  if (!store.ok()) return store.status();
  // A TorchScript model's layout and initial values come from its file, read by
  // cohort-evaluator (LibTorch stays out of this process); a built-in's from its spec.
  tensor::ParameterLayout layout;
  std::vector<float> initial;
  if (config.model.arch == "torchscript") {
    absl::StatusOr<std::string> evaluator = ResolveEvaluator(
        config.evaluation.server.has_value() ? config.evaluation.server->evaluator : "");
    if (!evaluator.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("model.torchscript: ", evaluator.status().message()));
    }
    absl::StatusOr<TorchScriptParameters> inspected =
        InspectTorchScript(*evaluator, config.model.torchscript,
                           config.state_dir + "/checkpoints/torchscript-inspect.tmp",
                           absl::Minutes(5));
    if (!inspected.ok()) return inspected.status();
    layout = std::move(inspected->layout);
    initial = std::move(inspected->values);
    spdlog::info("stage=start model torchscript {}: {} parameter tensors, {} values, "
                 "architecture fingerprint {}",
                 config.model.torchscript, layout.tensors().size(), layout.TotalValues(),
                 model::LayoutDigest(layout));
  } else {
    layout = model::LayoutFor(config.model);
  }
  std::optional<ServerEvaluator> server_evaluator;
  if (config.evaluation.server.has_value()) {
    absl::StatusOr<ServerEvaluator> evaluator =
        ServerEvaluator::Create(*config.evaluation.server, config.model);
    if (!evaluator.ok()) return evaluator.status();
    server_evaluator = std::move(*evaluator);
  }

  // A coordinator killed mid-round left that round 'started': it is over (its number, and
  // for a secure round its keys and session, are never used again).
  absl::StatusOr<int> interrupted = (*store)->AbortInterruptedRounds(
      absl::Now(), "interrupted: the coordinator stopped during this round");
  if (!interrupted.ok()) return interrupted.status();
  if (*interrupted > 0) {
    spdlog::warn("stage=resume marked {} interrupted round(s) as aborted", *interrupted);
  }
  RemoveStaleTempFiles(config.state_dir + "/checkpoints");
  absl::StatusOr<uint64_t> last_round = (*store)->LastRoundNumber();
  if (!last_round.ok()) return last_round.status();
  // After `cohortctl state restore`, round numbers resume past those the lost state may have
  // used after the backup was taken.
  if (absl::StatusOr<std::optional<std::string>> floor = (*store)->GetSetting("round_floor");
      floor.ok() && floor->has_value()) {
    uint64_t value = 0;
    if (!absl::SimpleAtoi(**floor, &value)) {
      return absl::DataLossError(absl::StrCat("state.db: setting round_floor is not a number: '",
                                              **floor, "'"));
    }
    if (value > *last_round) {
      spdlog::warn("stage=resume restored state: new rounds are numbered from {}", value + 1);
      *last_round = value;
    }
  }
  absl::StatusOr<std::vector<state::RoundRecord>> committed =
      (*store)->ListRounds(/*committed_only=*/true);
  if (!committed.ok()) return committed.status();

  std::vector<float> global;
  if (!committed->empty()) {
    const state::RoundRecord& last = committed->back();
    std::string path = config.state_dir + "/" + last.checkpoint;
    absl::StatusOr<std::vector<float>> restored = model::ReadCheckpoint(path, layout);
    if (!restored.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot resume from round ", last.round, ": ", restored.status().message()));
    }
    global = std::move(*restored);
    spdlog::info("stage=resume resuming after committed round {} (checkpoint {})", last.round,
                 last.checkpoint);
  } else {
    global = config.model.arch == "torchscript"
                 ? std::move(initial)
                 : model::InitialParameters(config.model, config.has_seed ? config.seed : 0);
  }
  uint64_t model_round = committed->empty() ? 0 : committed->back().round;
  // The server optimizer continues from its state after the last committed round. A
  // stateful rule (fedavgm, fedadagrad, fedadam, fedyogi) refuses to start without that
  // state: restarting its moments would silently change the trajectory.
  ServerOptimizer optimizer(config.aggregation, layout.TotalValues());
  if (model_round > 0) {
    const std::string path = config.state_dir + "/" + OptimizerStateName(model_round);
    absl::StatusOr<ServerOptimizerState> saved = ReadServerOptimizerState(path);
    if (!saved.ok() && optimizer.stateful()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot resume ", config.aggregation.strategy, " from round ", model_round,
          ": its server optimizer state is unusable (", saved.status().message(),
          "); restore the file from a backup (cohortctl state restore), or run with a "
          "stateless strategy such as fedavg"));
    }
    if (saved.ok()) {
      const std::string saved_rule = saved->rule;
      if (absl::Status s = optimizer.Resume(std::move(*saved)); !s.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("cannot resume from round ", model_round, ": ", s.message()));
      }
      if (saved_rule != optimizer.rule()) {
        spdlog::warn("stage=resume server optimizer {} after round {} ({}): {}", optimizer.rule(),
                     model_round, saved_rule,
                     optimizer.stateful() ? "starts with fresh moments" : "its state is dropped");
      } else if (optimizer.stateful()) {
        spdlog::info("stage=resume server optimizer {} resumed after {} steps", optimizer.rule(),
                     optimizer.state().steps);
      }
    }
  }
  std::unique_ptr<Coordinator> coordinator(new Coordinator(
      std::move(config), std::move(*store), std::move(layout),
      ModelBlob::Make(ModelId(model_round), std::move(global)), std::move(optimizer),
      committed->size(), *last_round));
  coordinator->server_evaluator_ = std::move(server_evaluator);
  return coordinator;
}

Coordinator::Coordinator(config::CoordinatorConfig config,
                         std::unique_ptr<state::StateStore> store, tensor::ParameterLayout layout,
                         std::shared_ptr<const ModelBlob> global, ServerOptimizer optimizer,
                         uint64_t committed, uint64_t last_round)
    : config_(std::move(config)),
      store_(std::move(store)),
      layout_(std::move(layout)),
      global_(std::move(global)),
      optimizer_(std::move(optimizer)),
      committed_rounds_(committed),
      last_round_number_(last_round) {
  service_ = std::make_unique<FederationService>(config_, &sessions_, &board_);
  service_->SetMetrics(&metrics_);
  service_->SetModelLayout(layout_);
  admin_service_ = std::make_unique<AdminService>(config_.federation, config_.tls.ca,
                                                  config_.admins, this);
  committed_snapshot_ = committed_rounds_;
  last_round_snapshot_ = last_round_number_;
  metrics_.SetCommittedRounds(committed_rounds_);
  // An operator's pause survives a restart.
  if (absl::StatusOr<std::optional<std::string>> paused = store_->GetSetting("paused");
      paused.ok() && paused->has_value()) {
    absl::MutexLock lock(&control_mu_);
    paused_ = true;
    pause_reason_ = **paused;
    metrics_.SetPaused(true);
    spdlog::warn("stage=resume the federation is paused ({}); cohortctl resume starts rounds",
                 pause_reason_.empty() ? "no reason given" : pause_reason_);
  }
  noise_multiplier_ = config_.privacy.noise_multiplier;
  absl::StatusOr<std::map<std::string, std::vector<state::SiteEpsilon>>> history =
      store_->SitePrivacyHistory();
  if (history.ok()) {
    for (const auto& [site, rounds] : *history) {
      for (const state::SiteEpsilon& e : rounds) {
        site_accountants_[site].AddSteps(e.sample_rate, e.noise_multiplier, e.steps);
      }
    }
  }
  for (const auto& [site, accountant] : site_accountants_) {
    absl::StatusOr<dp::EpsilonAtOrder> epsilon = accountant.GetEpsilon(config_.privacy.delta);
    if (epsilon.ok()) metrics_.SetSiteEpsilon(site, epsilon->epsilon);
  }
  // Best model and early-stopping counters from the history; best.pt is rewritten from the
  // best round's checkpoint (a crash may have come between a commit and its best.pt).
  if (absl::StatusOr<std::vector<state::RoundRecord>> committed = store_->ListRounds(true);
      committed.ok()) {
    for (const state::RoundRecord& record : *committed) {
      NoteCommittedRound(record, nullptr).IgnoreError();  // writes nothing without a model
    }
    if (best_round_ != 0) {
      absl::StatusOr<std::vector<float>> best =
          model::ReadCheckpoint(config_.state_dir + "/" + CheckpointName(best_round_), layout_);
      absl::Status written =
          best.ok() ? model::WriteCheckpoint(config_.state_dir + "/checkpoints/best.pt", layout_,
                                             *best)
                    : best.status();
      if (!written.ok()) {
        spdlog::error("stage=resume cannot rewrite checkpoints/best.pt from round {}: {}",
                      best_round_, written.message());
      }
    }
  }
}

std::optional<double> Coordinator::EvaluationMetric(const state::RoundRecord& record) const {
  const std::string& metric = config_.evaluation.early_stopping_metric;
  if (metric == "loss") return record.test_loss;
  if (metric == "auc") return state::PoolBinaryMetrics(record.site_evaluations).auc;
  return record.test_accuracy;
}

absl::Status Coordinator::NoteCommittedRound(const state::RoundRecord& record,
                                             const std::vector<float>* model) {
  std::optional<double> value = EvaluationMetric(record);
  if (!value.has_value()) return absl::OkStatus();  // not evaluated this round
  const bool lower_is_better = config_.evaluation.early_stopping_metric == "loss";
  const double margin = config_.evaluation.min_delta;
  const bool improved = !best_metric_.has_value() ||
                        (lower_is_better ? *value < *best_metric_ - margin
                                         : *value > *best_metric_ + margin);
  absl::Status written = absl::OkStatus();
  if (improved) {
    best_metric_ = value;
    best_round_ = record.round;
    evaluations_since_best_ = 0;
    if (model != nullptr) {
      written = model::WriteCheckpoint(config_.state_dir + "/checkpoints/best.pt", layout_, *model);
    }
  } else {
    ++evaluations_since_best_;
  }
  if (!config_.evaluation.early_stopping_metric.empty() &&
      evaluations_since_best_ >= config_.evaluation.patience) {
    early_stop_reason_ = absl::StrFormat(
        "early stopping: no %s improvement in %d evaluations; best round %d (%s %.6g), "
        "kept as checkpoints/best.pt",
        config_.evaluation.early_stopping_metric, evaluations_since_best_, best_round_,
        config_.evaluation.early_stopping_metric, *best_metric_);
  }
  return written;
}

Coordinator::~Coordinator() { Shutdown(); }

absl::Status Coordinator::Start() {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      tls::MakeServerCredentials(config_.tls);
  if (!credentials.ok()) return credentials.status();
  // The standard gRPC health service (grpc.health.v1.Health) and server reflection, on the
  // same mutual-TLS port: callers still need a certificate from the federation CA.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  if (!config_.tls.crl.empty()) {
    absl::StatusOr<std::shared_ptr<tls::RevocationList>> crl =
        tls::RevocationList::Open(config_.tls.crl, config_.tls.ca);
    if (!crl.ok()) return crl.status();
    crl_ = std::move(*crl);
    service_->SetRevocationList(crl_);
    admin_service_->SetRevocationList(crl_);
  }
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.listen, *credentials, &port_);
  builder.RegisterService(service_.get());
  builder.RegisterService(admin_service_.get());
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Sites ping every keepalive.time (at least 10 s); accepting pings every 5 s leaves a margin
  // for timer jitter, so a site at the minimum never collects ping strikes (and a GOAWAY).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  // The coordinator's own pings continue on an idle session (no limit without data).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // A site that vanished without FIN or RST (cut link) is noticed within time + timeout: its
  // session ends and the round treats it as a dropout.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(config_.keepalive.time)));
  builder.AddChannelArgument(
      GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
      static_cast<int>(absl::ToInt64Milliseconds(config_.keepalive.timeout)));
  builder.SetMaxReceiveMessageSize(static_cast<int>(config_.limits.max_chunk_bytes + (64 << 10)));
  // Uploads waiting for a slot would otherwise fill gRPC's receive buffers: with bandwidth-
  // delay probing, HTTP/2 windows grow to many MiB per stream on a fast link. A fixed window
  // bounds what each waiting stream can hold. (A gRPC memory quota was tried instead: under
  // pressure gRPC resets streams, and 100-site rounds lost uploads.)
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, tls::kStreamWindowBytes);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", config_.listen,
                                               " (address in use or not local?)"));
  }
  server_->GetHealthCheckService()->SetServingStatus(kFederationService, true);
  if (!config_.health_listen.empty()) {
    // Only the default health service is registered here: no TLS, nothing else to call.
    grpc::ServerBuilder health;
    health.AddListeningPort(config_.health_listen, grpc::InsecureServerCredentials(),
                            &health_port_);
    health_server_ = health.BuildAndStart();
    if (health_server_ == nullptr || health_port_ == 0) {
      server_->Shutdown();
      return absl::UnavailableError(absl::StrCat("cannot listen on health.listen ",
                                                 config_.health_listen));
    }
    health_server_->GetHealthCheckService()->SetServingStatus(kFederationService, true);
    spdlog::info("stage=start plaintext gRPC health port {} (grpc.health.v1 only)", health_port_);
  }
  if (absl::Status s = StartHttp(); !s.ok()) {
    server_->Shutdown();
    return s;
  }
  spdlog::info("stage=start federation={} listening on port {} sites={} rounds={}",
               config_.federation, port_, absl::StrJoin(config_.sites, ","), config_.rounds.count);
  loop_thread_ = std::thread([this] { RoundLoop(); });
  return absl::OkStatus();
}

absl::Status Coordinator::Wait() {
  loop_done_.WaitForNotification();
  return loop_status_;
}

void Coordinator::Shutdown() {
  // Held for the whole shutdown so that a second caller returns only once it is complete.
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  {
    absl::MutexLock control(&control_mu_);  // wakes WaitWhilePaused
    stopping_ = true;
  }
  if (std::shared_ptr<Round> round = board_.Current()) round->Cancel();
  sessions_.Close();
  if (loop_thread_.joinable()) loop_thread_.join();
  for (grpc::Server* server : {server_.get(), health_server_.get()}) {
    if (server != nullptr && server->GetHealthCheckService() != nullptr) {
      server->GetHealthCheckService()->Shutdown();  // NOT_SERVING from here on
    }
  }
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (health_server_) health_server_->Shutdown(std::chrono::system_clock::now());
  http_.reset();
}

std::vector<float> Coordinator::GlobalModel() const {
  absl::MutexLock lock(&model_mu_);
  return global_->values;
}

cohort::v1::ModelRef Coordinator::MakeModelRef(const ModelBlob& blob) const {
  cohort::v1::ModelRef ref;
  ref.set_model_id(blob.id);
  ref.set_num_values(blob.values.size());
  ref.set_sha256(blob.sha256);
  for (const tensor::TensorSpec& spec : layout_.tensors()) {
    auto* t = ref.mutable_layout()->add_tensors();
    t->set_name(spec.name);
    for (int64_t d : spec.shape) t->add_shape(d);
  }
  auto* spec = ref.mutable_spec();
  spec->set_arch(config_.model.arch);
  spec->set_inputs(config_.model.inputs);
  for (int64_t h : config_.model.hidden) spec->add_hidden(h);
  for (int64_t d : config_.model.input_shape) spec->add_input_shape(d);
  for (int64_t c : config_.model.channels) spec->add_channels(c);
  spec->set_classes(config_.model.classes);
  return ref;
}

void Coordinator::Broadcast(const cohort::v1::CoordinatorMessage& message,
                            const std::vector<std::string>& sites,
                            std::vector<std::string>* failed) {
  for (const std::string& site : sites) {
    std::shared_ptr<SiteSession> session = sessions_.Find(site);
    if (session == nullptr || !session->Send(message)) {
      if (failed != nullptr) failed->push_back(site);
    } else {
      metrics_.AddBytesSent(message.ByteSizeLong());
    }
  }
}

void Coordinator::CloseRevokedSessions() {
  if (crl_ != nullptr) {
    if (absl::Status s = crl_->Refresh(/*force=*/false); !s.ok()) {
      spdlog::error("stage=select reloading {} failed, the previous CRL stays in force: {}",
                    crl_->path(), s.message());
    }
  }
  absl::StatusOr<std::string> ca_pem = ReadFileToString(config_.tls.ca);
  if (!ca_pem.ok()) {
    spdlog::error("stage=select cannot re-check site certificates: {}", ca_pem.status().message());
    return;
  }
  for (const std::string& site : sessions_.LiveSites()) {
    std::shared_ptr<SiteSession> session = sessions_.Find(site);
    if (session == nullptr || session->certificate_pem().empty()) continue;
    absl::Status valid = tls::CheckSiteCertificate(session->certificate_pem(), *ca_pem, crl_.get());
    if (valid.ok()) continue;
    spdlog::warn("site={} stage=select closing the session: {}", site, valid.message());
    session->Cancel();
    sessions_.Unregister(session);
  }
}

void Coordinator::RoundLoop() {
  int consecutive_aborts = 0;
  while (!stopping_ && committed_rounds_ < static_cast<uint64_t>(config_.rounds.count) &&
         early_stop_reason_.empty()) {
    WaitWhilePaused();
    if (stopping_) break;
    Enter(0, FederationActivity::kWaiting);
    // SELECT: a round starts as soon as every allowed site is connected, or after
    // select_timeout with at least min_clients. Waiting consumes no round number.
    const absl::Time select_deadline = absl::Now() + config_.rounds.select_timeout;
    sessions_.WaitForAtLeast(config_.sites.size(), select_deadline);
    if (stopping_) break;
    {
      absl::MutexLock lock(&control_mu_);
      if (paused_) continue;  // paused while selecting: wait at the top of the loop
    }
    CloseRevokedSessions();
    // A secure round needs a cohort of at least 3 (with 2, each site learns the other's
    // update from the sum), whatever min_clients says about the updates it must keep.
    const size_t required = std::max<size_t>(
        static_cast<size_t>(config_.rounds.min_clients),
        config_.aggregation.secure.enabled ? kMinSecureCohort : 1);
    if (sessions_.size() < required) {
      spdlog::info("stage=select waiting: {} of {} required sites connected", sessions_.size(),
                   required);
      continue;
    }
    uint64_t round_number = last_round_number_ + 1;
    if (RunRound(round_number)) {
      consecutive_aborts = 0;
    } else if (std::optional<std::string> why = InterruptReason(round_number);
               why.has_value() && !stopping_) {
      consecutive_aborts = 0;  // an operator's abort says nothing about the federation's health
    } else if (!stopping_ && ++consecutive_aborts >= kMaxConsecutiveAborts) {
      loop_status_ = absl::AbortedError(absl::StrCat(
          kMaxConsecutiveAborts, " rounds in a row aborted; see the log for the reasons"));
      break;
    }
  }
  if (loop_status_.ok() && stopping_ &&
      committed_rounds_ < static_cast<uint64_t>(config_.rounds.count)) {
    loop_status_ = absl::CancelledError("coordinator stopped before all rounds committed");
  }
  cohort::v1::CoordinatorMessage done;
  done.mutable_done()->set_rounds_committed(committed_rounds_);
  done.mutable_done()->set_reason(
      !loop_status_.ok()           ? std::string(loop_status_.message())
      : early_stop_reason_.empty() ? std::string("all rounds committed")
                                   : early_stop_reason_);
  if (!early_stop_reason_.empty()) spdlog::info("stage=done {}", early_stop_reason_);
  Broadcast(done, sessions_.LiveSites(), nullptr);
  Enter(0, FederationActivity::kDone);
  spdlog::info("stage=done committed_rounds={} status={}", committed_rounds_,
               loop_status_.ToString());
  loop_done_.Notify();
}

absl::Status Coordinator::PlanNoise(const std::vector<std::string>& participants) {
  double sigma = 0;
  for (const std::string& site : participants) {
    std::shared_ptr<SiteSession> session = sessions_.Find(site);
    if (session == nullptr) continue;
    // The same plan the site computes: q = batch / n, epochs x ceil(n / batch) per round.
    dp::DpRoundPlan plan = dp::PlanDpRound(static_cast<int64_t>(session->hello().train_examples()),
                                           config_.training.batch_size, config_.training.epochs);
    if (plan.steps == 0) continue;
    absl::StatusOr<dp::Calibration> calibration =
        dp::CalibrateNoise(config_.privacy.target_epsilon, plan.sample_rate,
                           plan.steps * config_.rounds.count, config_.privacy.delta);
    if (!calibration.ok()) {
      return absl::Status(calibration.status().code(),
                          absl::StrCat("cannot plan noise for site ", site, ": ",
                                       calibration.status().message()));
    }
    sigma = std::max(sigma, calibration->noise_multiplier);
  }
  if (sigma <= 0) return absl::FailedPreconditionError("no site to plan noise for");
  noise_multiplier_ = sigma;
  spdlog::info("stage=plan noise_multiplier={:.4f} keeps every site within epsilon {} "
               "(delta {}) over {} rounds",
               sigma, config_.privacy.target_epsilon, config_.privacy.delta,
               config_.rounds.count);
  return absl::OkStatus();
}

bool Coordinator::RunRound(uint64_t round_number) {
  const absl::Time started = absl::Now();
  std::vector<std::string> participants = sessions_.LiveSites();
  if (config_.privacy.enabled && config_.privacy.target_epsilon > 0 && noise_multiplier_ == 0) {
    if (absl::Status s = PlanNoise(participants); !s.ok()) {
      spdlog::error("stage=plan {}", s.message());
      stopping_ = true;
      loop_status_ = s;
      return false;
    }
  }
  if (absl::Status s = store_->BeginRound(round_number, started); !s.ok()) {
    spdlog::error("round={} stage=select cannot record round start: {}", round_number,
                  s.message());
    stopping_ = true;
    loop_status_ = s;
    return false;
  }
  last_round_number_ = round_number;
  last_round_snapshot_ = round_number;
  {
    // Abort requests for earlier rounds were acted on (or came too late): drop them.
    absl::MutexLock lock(&control_mu_);
    abort_requests_.erase(abort_requests_.begin(), abort_requests_.lower_bound(round_number));
  }
  Enter(round_number, "train");
  std::shared_ptr<const ModelBlob> global;
  {
    absl::MutexLock lock(&model_mu_);
    global = global_;
  }
  std::shared_ptr<SecureAggregation> secure;
  cohort::v1::SecAggConfig secagg_config;
  if (config_.aggregation.secure.enabled) {
    absl::StatusOr<std::shared_ptr<SecureAggregation>> started_secure =
        StartSecureAggregation(round_number, participants, &secagg_config);
    if (!started_secure.ok()) {
      const std::string reason = absl::StrCat("secure aggregation cannot start: ",
                                              started_secure.status().message());
      metrics_.RoundEnded(/*committed=*/false);
      activity_.RecordError(round_number, "", reason, absl::Now());
      absl::Status s = store_->AbortRound(round_number, absl::Now() - started, reason);
      if (!s.ok()) spdlog::error("round={} cannot record abort: {}", round_number, s.message());
      spdlog::warn("round={} stage=abort {}", round_number, reason);
      return false;
    }
    secure = std::move(*started_secure);
  }
  auto round = std::make_shared<Round>(
      round_number, participants, global, secure,
      secure ? nullptr : MakeAggregator(config_.aggregation, global->values.size()));
  board_.Publish(round);
  spdlog::info("round={} stage=configure participants={} model={} secure_aggregation={}",
               round_number, absl::StrJoin(participants, ","), global->id,
               secure ? absl::StrFormat("k=%d t=%d", secagg_config.degree(),
                                        secagg_config.threshold())
                      : "off");

  // TRAIN
  const absl::Time train_deadline = absl::Now() + config_.rounds.stage_timeout;
  cohort::v1::CoordinatorMessage train;
  auto* task = train.mutable_train();
  task->set_round(round_number);
  *task->mutable_model() = MakeModelRef(*global);
  task->mutable_training()->set_epochs(config_.training.epochs);
  task->mutable_training()->set_batch_size(config_.training.batch_size);
  task->mutable_training()->set_learning_rate(config_.training.learning_rate);
  task->mutable_training()->set_optimizer(config_.training.optimizer);
  task->mutable_training()->set_proximal_mu(config_.training.proximal_mu);
  if (config_.privacy.enabled) {
    task->mutable_training()->mutable_dp()->set_noise_multiplier(noise_multiplier_);
    task->mutable_training()->mutable_dp()->set_max_grad_norm(config_.privacy.max_grad_norm);
  }
  task->set_deadline_unix_ms(UnixMillis(train_deadline));
  task->set_max_upload_chunk_bytes(static_cast<uint64_t>(config_.limits.max_chunk_bytes));
  if (secure) *task->mutable_secagg() = secagg_config;
  std::vector<std::string> unreachable;
  Broadcast(train, participants, &unreachable);
  for (const std::string& site : unreachable) round->ReportFailure(site, "session lost");
  std::vector<std::string> contributors;
  std::string secure_failure;
  std::vector<float> secure_delta;
  if (secure) {
    // Training ends with each site's key advertisement; then the three secure stages.
    absl::StatusOr<std::vector<float>> delta =
        RunSecureStages(*round, *secure, train_deadline, &contributors);
    if (delta.ok()) {
      secure_delta = std::move(*delta);
    } else {
      secure_failure = std::string(delta.status().message());
    }
  } else {
    if (!round->WaitForUploads(train_deadline) && !stopping_) {
      spdlog::warn("round={} stage=train deadline passed before every site uploaded",
                   round_number);
    }
    contributors = round->CloseTraining();
  }
  std::vector<std::string> dropped;
  for (const std::string& site : participants) {
    if (std::find(contributors.begin(), contributors.end(), site) == contributors.end()) {
      dropped.push_back(site);
    }
  }
  std::map<std::string, std::string> drop_reasons;
  std::map<std::string, std::string> failures = round->failures();
  if (secure) {
    for (const auto& [site, reason] :
         secure->Locked([](secagg::SecAggServer& s) { return s.drop_reasons(); })) {
      failures.emplace(site, reason);
    }
  }
  if (!secure) metrics_.SitesDropped("train", dropped.size());
  for (const std::string& site : dropped) {
    auto it = failures.find(site);
    drop_reasons[site] = it == failures.end() ? "no update before the deadline" : it->second;
    activity_.RecordDrop(round_number, site, drop_reasons[site], absl::Now());
    spdlog::warn("round={} stage=train site={} dropped from this round: {}", round_number, site,
                 drop_reasons[site]);
  }
  auto abort = [&](const std::string& reason) {
    round->Close();
    board_.Publish(nullptr);
    metrics_.RoundEnded(/*committed=*/false);
    activity_.RecordError(round_number, "", absl::StrCat("round aborted: ", reason), absl::Now());
    absl::Status s = store_->AbortRound(round_number, absl::Now() - started, reason);
    if (!s.ok()) spdlog::error("round={} cannot record abort: {}", round_number, s.message());
    spdlog::warn("round={} stage=abort {}", round_number, reason);
    return false;
  };
  if (std::optional<std::string> why = InterruptReason(round_number)) return abort(*why);
  if (!secure_failure.empty()) return abort(secure_failure);
  if (contributors.size() < static_cast<size_t>(config_.rounds.min_clients)) {
    return abort(absl::StrCat("only ", contributors.size(), " of ", config_.rounds.min_clients,
                              " required updates arrived"));
  }

  // AGGREGATE: the round's aggregated delta (a secure round's was unmasked above), folded
  // into the global model by the server optimizer. Its new state is adopted at COMMIT.
  ServerOptimizer::Step step;
  {
    std::vector<float> delta = secure ? std::move(secure_delta) : round->TakeAggregatedDelta();
    step = optimizer_.Propose(round_number, global->values, delta);
  }
  if (absl::Status s = tensor::CheckFinite(step.model.data(), step.model.size()); !s.ok()) {
    return abort(absl::StrCat("the aggregated model is not finite (", optimizer_.rule(),
                              " step): ", s.message()));
  }
  std::shared_ptr<const ModelBlob> candidate =
      ModelBlob::Make(ModelId(round_number), std::move(step.model));

  // EVALUATE: every contributor still connected scores the candidate on its held-out split.
  Enter(round_number, "evaluate");
  // Every evaluation.every-th committed round is evaluated, and always the last one.
  const uint64_t ordinal = committed_rounds_ + 1;
  const bool evaluate_now =
      ordinal % static_cast<uint64_t>(config_.evaluation.every) == 0 ||
      ordinal >= static_cast<uint64_t>(config_.rounds.count);
  std::vector<std::string> evaluators;
  for (const std::string& site : contributors) {
    if (evaluate_now && sessions_.Find(site) != nullptr) evaluators.push_back(site);
  }
  round->StartEvaluation(candidate, evaluators);
  const absl::Time eval_deadline = absl::Now() + config_.rounds.stage_timeout;
  cohort::v1::CoordinatorMessage evaluate;
  evaluate.mutable_evaluate()->set_round(round_number);
  *evaluate.mutable_evaluate()->mutable_model() = MakeModelRef(*candidate);
  evaluate.mutable_evaluate()->set_deadline_unix_ms(UnixMillis(eval_deadline));
  std::vector<std::string> unreachable_evaluators;
  Broadcast(evaluate, evaluators, &unreachable_evaluators);
  for (const std::string& site : unreachable_evaluators) round->ReportSessionLost(site);
  if (!round->WaitForEvaluations(eval_deadline) && !stopping_) {
    spdlog::warn("round={} stage=evaluate deadline passed before every site reported",
                 round_number);
  }
  if (std::optional<std::string> why = InterruptReason(round_number)) return abort(*why);
  Enter(round_number, "commit");
  round->Close();
  board_.Publish(nullptr);

  // COMMIT: checkpoint first (atomic), then the state row that points at it.
  state::RoundRecord record;
  record.round = round_number;
  record.participants = contributors;
  record.dropped = dropped;
  record.drop_reasons = drop_reasons;
  // Per-site epsilon from what each contributor reported (sigma is ours to know).
  std::map<std::string, dp::RdpAccountant> accountants = site_accountants_;
  for (const auto& [site, report] : round->dp_reports()) {
    if (!config_.privacy.enabled) break;
    dp::RdpAccountant& accountant = accountants[site];
    accountant.AddSteps(report.sample_rate, noise_multiplier_, report.steps);
    absl::StatusOr<dp::EpsilonAtOrder> epsilon = accountant.GetEpsilon(config_.privacy.delta);
    if (!epsilon.ok()) {
      spdlog::warn("round={} stage=commit site={} cannot account its DP report: {}",
                   round_number, site, epsilon.status().message());
      continue;
    }
    record.site_epsilon[site] = state::SiteEpsilon{
        report.sample_rate, noise_multiplier_, report.steps, epsilon->epsilon};
  }
  record.examples = round->train_examples();
  record.train_loss = round->weighted_train_loss();
  uint64_t test_examples = 0, correct = 0;
  double loss_sum = 0;
  for (const auto& [site, eval] : round->evaluations()) {
    test_examples += eval.examples;
    correct += eval.correct;
    loss_sum += eval.loss * eval.examples;
    state::SiteEvaluation& out = record.site_evaluations[site];
    out.examples = eval.examples;
    out.loss = eval.loss;
    out.correct = eval.correct;
    if (eval.binary.has_value()) {
      out.binary = true;
      out.true_positives = eval.binary->true_positives;
      out.false_positives = eval.binary->false_positives;
      out.true_negatives = eval.binary->true_negatives;
      out.false_negatives = eval.binary->false_negatives;
      out.auc = eval.binary->auc;
    }
  }
  if (test_examples > 0) {
    record.test_accuracy = static_cast<double>(correct) / test_examples;
    record.test_loss = loss_sum / test_examples;
  }
  record.test_examples = test_examples;
  record.checkpoint = CheckpointName(round_number);
  if (absl::Status s = model::WriteCheckpoint(config_.state_dir + "/" + record.checkpoint,
                                              layout_, candidate->values);
      !s.ok()) {
    return abort(absl::StrCat("checkpoint failed: ", s.message()));
  }
  // The optimizer state goes with the checkpoint (also for stateless rules: the file records
  // which rule ran, so a later stateful strategy knows it may start afresh).
  if (absl::Status s = WriteServerOptimizerState(
          config_.state_dir + "/" + OptimizerStateName(round_number), step.state);
      !s.ok()) {
    return abort(absl::StrCat("server optimizer state write failed: ", s.message()));
  }
  record.duration_s = absl::ToDoubleSeconds(absl::Now() - started);
  if (absl::Status s = store_->CommitRound(record); !s.ok()) {
    return abort(absl::StrCat("state commit failed: ", s.message()));
  }
  site_accountants_ = std::move(accountants);
  optimizer_.Commit(std::move(step.state));
  for (const auto& [site, e] : record.site_epsilon) metrics_.SetSiteEpsilon(site, e.epsilon);
  if (record.test_accuracy) metrics_.SetTestAccuracy(*record.test_accuracy);
  metrics_.RoundEnded(/*committed=*/true);
  {
    absl::MutexLock lock(&model_mu_);
    global_ = candidate;
  }
  ++committed_rounds_;
  committed_snapshot_ = committed_rounds_;
  metrics_.SetCommittedRounds(committed_rounds_);
  if (evaluate_now && server_evaluator_.has_value()) EvaluateOnServer(record);
  if (absl::Status s = NoteCommittedRound(record, &candidate->values); !s.ok()) {
    // The round is committed; only the convenience copy is stale (rewritten at start).
    spdlog::error("round={} stage=commit cannot write checkpoints/best.pt: {}", round_number,
                  s.message());
  }
  spdlog::info(
      "round={} stage=commit participants={} examples={} train_loss={:.4f} test_accuracy={} "
      "duration={:.2f}s",
      round_number, absl::StrJoin(contributors, ","), record.examples, *record.train_loss,
      record.test_accuracy ? absl::StrFormat("%.4f", *record.test_accuracy) : "n/a",
      record.duration_s);
  return true;
}

void Coordinator::EvaluateOnServer(const state::RoundRecord& record) {
  const absl::Time start = absl::Now();
  absl::StatusOr<state::SiteEvaluation> evaluation =
      server_evaluator_->Evaluate(config_.state_dir + "/" + record.checkpoint);
  absl::Status status = evaluation.status();
  if (evaluation.ok()) status = store_->RecordServerEvaluation(record.round, *evaluation);
  if (!status.ok()) {
    metrics_.ServerEvaluationFailed();
    spdlog::error("round={} stage=server_evaluation failed: {}", record.round, status.message());
    return;
  }
  const double accuracy =
      static_cast<double>(evaluation->correct) / static_cast<double>(evaluation->examples);
  metrics_.SetServerTestAccuracy(accuracy);
  spdlog::info("round={} stage=server_evaluation examples={} accuracy={:.4f} loss={:.4f}{} "
               "duration={:.2f}s",
               record.round, evaluation->examples, accuracy, evaluation->loss,
               evaluation->auc ? absl::StrFormat(" auc=%.4f", *evaluation->auc) : "",
               absl::ToDoubleSeconds(absl::Now() - start));
}

absl::StatusOr<std::shared_ptr<SecureAggregation>> Coordinator::StartSecureAggregation(
    uint64_t round_number, const std::vector<std::string>& participants,
    cohort::v1::SecAggConfig* secagg) {
  const config::SecureAggregationConfig& settings = config_.aggregation.secure;
  absl::StatusOr<secagg::GraphParameters> graph = secagg::ChooseGraphParameters(
      static_cast<int>(participants.size()), settings.dropout_tolerance);
  if (!graph.ok()) return graph.status();
  secagg->set_session_id(std::string(secagg::RandomSecret(32).view()));
  secagg->set_graph_seed(std::string(secagg::RandomSecret(32).view()));
  for (const std::string& site : participants) secagg->add_cohort(site);
  secagg->set_degree(static_cast<uint32_t>(graph->degree));
  secagg->set_threshold(static_cast<uint32_t>(graph->threshold));
  secagg->set_bits(static_cast<uint32_t>(settings.bits));
  secagg->set_clip_range(settings.clip_range);
  secagg->set_modulus_bits(static_cast<uint32_t>(settings.modulus_bits));
  // FedAvg weights: example counts capped at weight_cap (default: the cohort's largest).
  uint64_t cap = static_cast<uint64_t>(settings.weight_cap);
  if (cap == 0) {
    for (const std::string& site : participants) {
      if (std::shared_ptr<SiteSession> session = sessions_.Find(site)) {
        cap = std::max<uint64_t>(cap, session->hello().train_examples());
      }
    }
  }
  // n capped counts must not wrap the weight word.
  const uint64_t max_cap = (settings.modulus_bits == 64 ? UINT64_MAX : uint64_t{UINT32_MAX}) /
                           std::max<uint64_t>(1, participants.size());
  secagg->set_weight_cap(std::clamp<uint64_t>(cap, 1, max_cap));
  secagg->set_vector_length(layout_.TotalValues() + 1);
  absl::StatusOr<std::string> ca_pem = ReadFileToString(config_.tls.ca);
  if (!ca_pem.ok()) return ca_pem.status();
  absl::StatusOr<std::unique_ptr<secagg::SecAggServer>> server =
      secagg::SecAggServer::Create(*secagg, config_.federation, round_number, *ca_pem);
  if (!server.ok()) return server.status();
  return std::make_shared<SecureAggregation>(std::move(*server));
}

void Coordinator::SendSecAggMessages(
    uint64_t round_number, SecureAggregation& secure,
    const std::function<absl::StatusOr<cohort::v1::SecAggServerMessage>(
        secagg::SecAggServer&, const std::string&)>& make) {
  std::vector<std::pair<std::string, cohort::v1::CoordinatorMessage>> outbox;
  secure.Locked([&](secagg::SecAggServer& server) {
    for (const std::string& site : server.Active()) {
      absl::StatusOr<cohort::v1::SecAggServerMessage> message = make(server, site);
      if (!message.ok()) {
        server.DropSite(site, std::string(message.status().message()));
        continue;
      }
      cohort::v1::CoordinatorMessage wrapped;
      *wrapped.mutable_secagg() = std::move(*message);
      wrapped.mutable_secagg()->set_round(round_number);
      outbox.emplace_back(site, std::move(wrapped));
    }
  });
  for (const auto& [site, message] : outbox) {
    std::shared_ptr<SiteSession> session = sessions_.Find(site);
    if (session == nullptr || !session->Send(message)) {
      secure.DropSite(site, "session lost");
    } else {
      metrics_.AddBytesSent(message.ByteSizeLong());
    }
  }
}

absl::StatusOr<std::vector<float>> Coordinator::RunSecureStages(
    Round& round, SecureAggregation& secure, absl::Time train_deadline,
    std::vector<std::string>* contributors) {
  using Server = secagg::SecAggServer;
  const uint64_t n = round.number();
  const absl::Duration stage_timeout = config_.aggregation.secure.stage_timeout;
  auto wait = [&](absl::Time deadline, const char* stage) {
    if (!secure.WaitForStage(deadline) && !InterruptReason(n)) {
      spdlog::warn("round={} stage={} deadline passed before every site answered", n, stage);
    }
  };
  // Enters the next stage and counts the sites the last one lost.
  size_t active = round.participants().size();
  std::string stage_name = "train";
  auto next_stage = [&](const char* next) {
    const size_t now_active = secure.Locked([](Server& s) { return s.Active().size(); });
    metrics_.SitesDropped(stage_name, active > now_active ? active - now_active : 0);
    active = now_active;
    stage_name = next;
    Enter(n, next);
  };
  auto aborted = [&](absl::Status status) -> absl::Status {
    secure.Locked([&](Server& s) { s.Abort(std::string(status.message())); });
    return status;
  };
  auto abort_reason = [&]() {
    return secure.Locked([](Server& s) {
      return s.stage() == Server::Stage::kAborted ? s.abort_reason() : std::string();
    });
  };

  // Stage 0: advertise keys (each site trains, quantizes its update, then advertises).
  wait(train_deadline, "advertise");
  if (std::optional<std::string> why = InterruptReason(n)) return absl::CancelledError(*why);
  if (std::string why = abort_reason(); !why.empty()) return absl::AbortedError(why);
  if (absl::Status s = secure.Locked([](Server& server) { return server.CloseAdvertise(); });
      !s.ok()) {
    round.CloseTraining();
    return s;
  }
  SendSecAggMessages(n, secure,
                     StageMessage(&Server::PeerKeysFor, &cohort::v1::SecAggServerMessage::mutable_peer_keys));
  spdlog::info("round={} stage=secagg keys advertised by {} sites", n,
               secure.Locked([](Server& s) { return s.Active().size(); }));

  // Stage 1: share keys.
  next_stage("share_keys");
  wait(absl::Now() + stage_timeout, "share-keys");
  if (std::optional<std::string> why = InterruptReason(n)) return absl::CancelledError(*why);
  if (std::string why = abort_reason(); !why.empty()) {
    round.CloseTraining();
    return absl::AbortedError(why);
  }
  if (absl::Status s = secure.Locked([](Server& server) { return server.CloseShareKeys(); });
      !s.ok()) {
    round.CloseTraining();
    return s;
  }
  SendSecAggMessages(n, secure,
                     StageMessage(&Server::SharesFor, &cohort::v1::SecAggServerMessage::mutable_shares));

  // Stage 2: masked inputs arrive as uploads and are added to the secure sum.
  next_stage("masked_input");
  wait(absl::Now() + stage_timeout, "masked-input");
  round.CloseTraining();  // no masked input is added after this point
  if (std::optional<std::string> why = InterruptReason(n)) return absl::CancelledError(*why);
  if (std::string why = abort_reason(); !why.empty()) return absl::AbortedError(why);
  if (absl::Status s = secure.Locked([](Server& server) { return server.CloseMaskedInput(); });
      !s.ok()) {
    return s;
  }
  SendSecAggMessages(n, secure,
                     StageMessage(&Server::UnmaskRequestFor, &cohort::v1::SecAggServerMessage::mutable_unmask));

  // Stage 3: unmasking.
  next_stage("unmask");
  wait(absl::Now() + stage_timeout, "unmask");
  if (std::optional<std::string> why = InterruptReason(n)) return absl::CancelledError(*why);
  if (std::string why = abort_reason(); !why.empty()) return absl::AbortedError(why);
  const absl::Time unmask_start = absl::Now();
  if (absl::Status s = secure.Locked([](Server& server) { return server.CloseUnmask(); });
      !s.ok()) {
    return s;
  }
  const cohort::v1::SecAggConfig config =
      secure.Locked([](Server& s) { return s.config(); });
  std::vector<std::string> survivors = secure.Locked([](Server& s) { return s.survivors(); });
  metrics_.SitesDropped(stage_name, active > survivors.size() ? active - survivors.size() : 0);
  secagg::ModVector sum = secure.Locked([](Server& s) { return s.TakeSum(); });
  if (secure_sum_observer_) secure_sum_observer_(n, sum, survivors);
  const size_t num_values = layout_.TotalValues();
  // The last word sums the capped example counts exactly; the others decode to
  // sum_i (w_i / cap) * delta_i.
  const uint64_t total_weight = sum.Get(num_values);
  if (total_weight == 0) return aborted(absl::InternalError("the secure sum has zero weight"));
  secagg::QuantizationParams params{static_cast<int>(config.bits()), config.clip_range(),
                                    static_cast<int>(config.modulus_bits())};
  std::vector<float> delta(num_values);
  const double factor = static_cast<double>(config.weight_cap()) / static_cast<double>(total_weight);
  // Decoded in blocks, so decoding needs no model-sized float64 buffer.
  constexpr size_t kDecodeBlock = 1 << 16;
  for (size_t begin = 0; begin < num_values; begin += kDecodeBlock) {
    const size_t count = std::min(kDecodeBlock, num_values - begin);
    std::vector<double> scaled = secagg::DequantizeSum(
        sum, begin, count, static_cast<int64_t>(survivors.size()), params);
    for (size_t i = 0; i < count; ++i) {
      delta[begin + i] = static_cast<float>(scaled[i] * factor);
    }
  }
  if (absl::Status s = tensor::CheckFinite(delta.data(), delta.size()); !s.ok()) {
    return aborted(absl::InternalError(absl::StrCat("the unmasked delta is not finite: ", s.message())));
  }
  spdlog::info("round={} stage=secagg unmasked the sum of {} sites in {:.3f}s (weight {})", n,
               survivors.size(), absl::ToDoubleSeconds(absl::Now() - unmask_start), total_weight);
  *contributors = std::move(survivors);
  return delta;
}

}  // namespace cohort::server

namespace cohort::server {

std::optional<std::string> Coordinator::InterruptReason(uint64_t round) const {
  if (stopping_) return std::string("coordinator shutting down");
  absl::MutexLock lock(&control_mu_);
  auto it = abort_requests_.find(round);
  if (it == abort_requests_.end()) return std::nullopt;
  return it->second;
}

void Coordinator::WaitWhilePaused() {
  absl::MutexLock lock(&control_mu_);
  if (!paused_ || stopping_) return;
  activity_.Enter(0, FederationActivity::kPaused, absl::Now());
  spdlog::info("stage=paused no round starts until an admin resumes the federation");
  auto resumed = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(control_mu_) {
    return !paused_ || stopping_.load();
  };
  control_mu_.Await(absl::Condition(&resumed));
}

absl::Status Coordinator::Pause(const std::string& by, const std::string& reason) {
  const std::string why = reason.empty() ? absl::StrCat("paused by admin '", by, "'")
                                         : absl::StrCat("paused by admin '", by, "': ", reason);
  // Durable first: a pause that the state database did not take is not reported as done.
  if (absl::Status s = store_->PutSetting("paused", why); !s.ok()) return s;
  absl::MutexLock lock(&control_mu_);
  paused_ = true;
  pause_reason_ = why;
  metrics_.SetPaused(true);
  spdlog::warn("stage=control {}; the round in progress (if any) finishes", why);
  return absl::OkStatus();
}

absl::Status Coordinator::Resume(const std::string& by) {
  if (absl::Status s = store_->DeleteSetting("paused"); !s.ok()) return s;
  absl::MutexLock lock(&control_mu_);
  if (paused_) spdlog::warn("stage=control resumed by admin '{}'", by);
  paused_ = false;
  pause_reason_.clear();
  metrics_.SetPaused(false);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Coordinator::AbortRound(uint64_t round, const std::string& by,
                                                 const std::string& reason) {
  std::shared_ptr<Round> current = board_.Current();
  if (current == nullptr) {
    return absl::FailedPreconditionError("no round is running (nothing to abort)");
  }
  if (round != 0 && round != current->number()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "round ", round, " is not running (the round in progress is ", current->number(), ")"));
  }
  const std::string why = reason.empty() ? absl::StrCat("aborted by admin '", by, "'")
                                         : absl::StrCat("aborted by admin '", by, "': ", reason);
  {
    absl::MutexLock lock(&control_mu_);
    abort_requests_.emplace(current->number(), why);
  }
  spdlog::warn("round={} stage=control {}", current->number(), why);
  current->Cancel();  // wakes every wait of the round loop
  return current->number();
}

absl::StatusOr<std::vector<state::RoundRecord>> Coordinator::Rounds(bool include_aborted) {
  return store_->ListRounds(/*committed_only=*/!include_aborted);
}

cohort::v1::FederationStatus Coordinator::Status() const {
  cohort::v1::FederationStatus status;
  status.set_federation(config_.federation);
  status.set_coordinator_version(COHORT_VERSION);
  status.set_started_unix_ms(absl::ToUnixMillis(started_at_));
  {
    absl::MutexLock lock(&control_mu_);
    status.set_paused(paused_);
    status.set_pause_reason(pause_reason_);
  }
  const FederationActivity::Snapshot activity = activity_.Get();
  status.set_current_round(activity.round);
  status.set_stage(activity.stage);
  status.set_stage_started_unix_ms(absl::ToUnixMillis(activity.stage_started));
  status.set_rounds_committed(committed_snapshot_);
  status.set_rounds_target(static_cast<uint64_t>(config_.rounds.count));
  status.set_last_round(last_round_snapshot_);
  status.set_secure_aggregation(config_.aggregation.secure.enabled);
  std::shared_ptr<Round> round = board_.Current();
  std::map<std::string, double> epsilon;
  // Per-site epsilon as of the last committed round each site took part in.
  if (absl::StatusOr<std::map<std::string, std::vector<state::SiteEpsilon>>> history =
          store_->SitePrivacyHistory();
      history.ok()) {
    for (const auto& [site, rounds] : *history) {
      if (!rounds.empty()) epsilon[site] = rounds.back().epsilon;
    }
  }
  for (const std::string& site : config_.sites) {
    cohort::v1::SiteStatus* out = status.add_sites();
    out->set_site_id(site);
    std::shared_ptr<SiteSession> session = sessions_.Find(site);
    out->set_connected(session != nullptr);
    std::string state = session == nullptr ? "offline" : "idle";
    if (session != nullptr) {
      out->set_peer(session->peer());
      out->set_train_examples(session->hello().train_examples());
      out->set_test_examples(session->hello().test_examples());
    }
    if (round != nullptr) {
      std::string progress = round->SiteProgress(site);
      if (!progress.empty()) state = progress;
    }
    out->set_state(state);
    if (auto it = epsilon.find(site); it != epsilon.end()) {
      out->set_has_epsilon(true);
      out->set_epsilon(it->second);
    }
    if (auto it = activity.drop_reasons.find(site); it != activity.drop_reasons.end()) {
      out->set_last_drop_reason(it->second);
    }
  }
  for (const FederationActivity::Error& error : activity.errors) {
    cohort::v1::ErrorEntry* out = status.add_last_errors();
    out->set_unix_ms(absl::ToUnixMillis(error.at));
    out->set_round(error.round);
    out->set_site_id(error.site);
    out->set_message(error.message);
  }
  return status;
}

absl::Status Coordinator::StartHttp() {
  if (config_.http.listen.empty()) return absl::OkStatus();
  std::map<std::string, http::HttpHandler> routes;
  routes["/healthz"] = [](const std::string&) {
    return http::HttpResponse{200, "text/plain; charset=utf-8", "ok\n"};
  };
  routes["/readyz"] = [this](const std::string&) {
    // Ready: serving sites, not shutting down, and the state database answers.
    if (stopping_) return http::HttpResponse{503, "text/plain; charset=utf-8", "stopping\n"};
    if (absl::StatusOr<uint64_t> last = store_->LastRoundNumber(); !last.ok()) {
      return http::HttpResponse{503, "text/plain; charset=utf-8",
                                absl::StrCat("state database: ", last.status().message(), "\n")};
    }
    return http::HttpResponse{200, "text/plain; charset=utf-8", "ready\n"};
  };
  routes["/metrics"] = [this](const std::string&) {
    metrics_.SetConnectedSites(sessions_.size());
    return http::MetricsResponse(metrics_.registry());
  };
  routes["/api/status"] = [this](const std::string&) {
    std::string json;
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.always_print_primitive_fields = true;
    options.preserve_proto_field_names = true;
    (void)google::protobuf::util::MessageToJsonString(Status(), &json, options);
    return http::HttpResponse{200, "application/json", json};
  };
  routes["/api/rounds"] = [this](const std::string&) {
    absl::StatusOr<std::vector<state::RoundRecord>> rounds = Rounds(/*include_aborted=*/true);
    if (!rounds.ok()) {
      return http::HttpResponse{500, "text/plain; charset=utf-8",
                                absl::StrCat(rounds.status().message(), "\n")};
    }
    return http::HttpResponse{200, "application/json", state::RoundsAsJson(*rounds)};
  };
  routes["/"] = [this](const std::string&) {
    absl::StatusOr<std::vector<state::RoundRecord>> rounds = Rounds(/*include_aborted=*/true);
    return http::HttpResponse{200, "text/html; charset=utf-8",
                              RenderStatusPage(Status(), rounds.ok() ? *rounds
                                                                     : std::vector<state::RoundRecord>{},
                                               config_.privacy.delta)};
  };
  absl::StatusOr<std::unique_ptr<http::HttpServer>> server =
      http::HttpServer::Start(config_.http.listen, std::move(routes));
  if (!server.ok()) return server.status();
  http_ = std::move(*server);
  spdlog::info("stage=start http port {}: /metrics /healthz /readyz and the status page at /",
               http_->port());
  return absl::OkStatus();
}

}  // namespace cohort::server
