#include "tests/integration/harness.h"

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "common/tls/credentials.h"

namespace cohort::testing {

std::vector<state::RoundRecord> ReadRounds(const std::string& state_dir, bool committed_only) {
  auto store = state::StateStore::OpenReadOnly(state_dir + "/state.db");
  REQUIRE(store.ok());
  auto rounds = (*store)->ListRounds(committed_only);
  REQUIRE(rounds.ok());
  return *rounds;
}

absl::StatusOr<client::TrainResult> ScriptedTrainer::Train(const config::ModelSpec&,
                                                           const tensor::ParameterLayout&,
                                                           const std::vector<float>& global,
                                                           const client::TrainingParams& params) {
  int index = tasks_++;
  if (on_params) on_params(params);
  if (before_train) before_train(index);
  if (fail_train) {
    if (absl::Status s = fail_train(index); !s.ok()) return s;
  }
  client::TrainResult result;
  result.delta.assign(global.size(), delta_value_);
  result.train_loss = 0.25;
  result.examples = examples_;
  return result;
}

grpc::Status ProbeClosedRound(const std::shared_ptr<grpc::Channel>& channel,
                              grpc::ClientContext* context) {
  grpc::ClientContext local;
  if (context == nullptr) context = &local;
  auto stub = cohort::v1::Federation::NewStub(channel);
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  cohort::v1::DownloadModelRequest request;
  request.set_round(999);
  request.set_model_id("model-0");
  auto reader = stub->DownloadModel(context, request);
  cohort::v1::ModelChunk chunk;
  while (reader->Read(&chunk)) {
  }
  return reader->Finish();
}

ClientRunner::ClientRunner(config::ClientConfig config, std::unique_ptr<client::Trainer> trainer)
    : client_(std::make_unique<client::SiteClient>(std::move(config), std::move(trainer))) {
  thread_ = std::thread([this] { status_ = client_->Run(); });
}

ClientRunner::~ClientRunner() {
  client_->Stop();
  if (thread_.joinable()) thread_.join();
}

absl::Status ClientRunner::Join() {
  if (!joined_) {
    thread_.join();
    joined_ = true;
  }
  return status_;
}

Federation::Federation(std::vector<std::string> sites, std::string federation)
    : pki_(dir_.File("pki"), federation) {
  config_.federation = federation;
  config_.listen = "127.0.0.1:0";
  config_.tls = pki_.coordinator_files();
  config_.sites = sites;
  config_.state_dir = dir_.File("state");
  config_.model.arch = "logreg";
  config_.model.inputs = 4;
  config_.model.classes = 2;
  config_.rounds.count = 2;
  config_.rounds.min_clients = static_cast<int64_t>(sites.size());
  config_.rounds.stage_timeout = absl::Seconds(30);
  // Rounds start once every site is connected; the timeout only matters when one is missing,
  // and must be long enough for slow starters on a loaded machine (parallel ctest).
  config_.rounds.select_timeout = absl::Seconds(10);
  config_.has_seed = true;
  config_.seed = 7;
  for (const std::string& site : sites) pki_.IssueSite(site);
}

Federation::~Federation() { StopCoordinator(); }

void Federation::Start() {
  auto coordinator = server::Coordinator::Create(config_);
  REQUIRE(coordinator.ok());
  coordinator_ = std::move(*coordinator);
  absl::Status started = coordinator_->Start();
  INFO(started.ToString());
  REQUIRE(started.ok());
  REQUIRE(coordinator_->port() > 0);
}

void Federation::StopCoordinator() {
  if (coordinator_) coordinator_->Shutdown();
}

std::string Federation::address() const {
  return absl::StrCat("127.0.0.1:", coordinator_->port());
}

config::ClientConfig Federation::ClientConfigFor(const std::string& site) const {
  config::ClientConfig c;
  c.site = site;
  c.coordinator = address();
  c.tls = config::TlsFiles{pki_.ca_path(), pki_.dir() + "/" + site + ".pem",
                           pki_.dir() + "/" + site + ".key"};
  c.reconnect.initial_backoff = absl::Milliseconds(50);
  c.reconnect.max_backoff = absl::Milliseconds(500);
  return c;
}

std::shared_ptr<grpc::Channel> Federation::ChannelAs(const config::TlsFiles& files) const {
  auto credentials = tls::MakeChannelCredentials(files);
  REQUIRE(credentials.ok());
  return grpc::CreateCustomChannel(address(), *credentials, tls::MakeChannelArguments(""));
}

std::shared_ptr<grpc::Channel> Federation::ChannelFor(const std::string& site) const {
  return ChannelAs(config::TlsFiles{pki_.ca_path(), pki_.dir() + "/" + site + ".pem",
                                    pki_.dir() + "/" + site + ".key"});
}

ManualSite::ManualSite(std::shared_ptr<grpc::Channel> channel)
    : stub_(cohort::v1::Federation::NewStub(channel)) {}

ManualSite::~ManualSite() { Close(); }

bool ManualSite::Connect() {
  stream_ = stub_->Session(&context_);
  cohort::v1::SiteMessage hello;
  hello.mutable_hello()->set_client_version("test");
  hello.mutable_hello()->set_train_examples(5);
  if (!stream_->Write(hello)) return false;
  cohort::v1::CoordinatorMessage welcome;
  return stream_->Read(&welcome) && welcome.has_welcome();
}

bool ManualSite::Next(cohort::v1::CoordinatorMessage* message) {
  return stream_ != nullptr && stream_->Read(message);
}

bool ManualSite::Send(const cohort::v1::SiteMessage& message) {
  return stream_ != nullptr && stream_->Write(message);
}

void ManualSite::Close() {
  if (closed_ || stream_ == nullptr) return;
  closed_ = true;
  context_.TryCancel();
  stream_->Finish();
}

}  // namespace cohort::testing
