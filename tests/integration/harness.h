#ifndef COHORT_TESTS_INTEGRATION_HARNESS_H_
#define COHORT_TESTS_INTEGRATION_HARNESS_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "client/site_client.h"
#include "client/trainer.h"
#include "cohort/v1/cohort.grpc.pb.h"
#include "common/config/client_config.h"
#include "common/config/coordinator_config.h"
#include "common/state/state_store.h"
#include "server/coordinator.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_pki.h"

namespace cohort::testing {

// The round history in `state_dir` (all rounds, or committed ones only); fails the test if it
// cannot be read.
std::vector<state::RoundRecord> ReadRounds(const std::string& state_dir, bool committed_only);

// A trainer that returns a chosen delta instead of training (no LibTorch): lets a test know
// the exact update every site sends. `delta_for_round(round_index, num_values)` is called
// once per training task; `hook` runs before the result is returned (e.g. to stall).
class ScriptedTrainer final : public client::Trainer {
 public:
  ScriptedTrainer(float delta_value, uint64_t examples)
      : delta_value_(delta_value), examples_(examples) {}

  std::function<void(int task_index)> before_train;
  std::function<absl::Status(int task_index)> fail_train;
  // Sees the hyperparameters of each training task.
  std::function<void(const client::TrainingParams&)> on_params;

  uint64_t train_examples() const override { return examples_; }
  uint64_t test_examples() const override { return 10; }
  int64_t num_features() const override { return 0; }
  absl::Status CheckModel(const config::ModelSpec&, const tensor::ParameterLayout&) const override {
    return absl::OkStatus();
  }
  absl::StatusOr<client::TrainResult> Train(const config::ModelSpec&,
                                            const tensor::ParameterLayout&,
                                            const std::vector<float>& global,
                                            const client::TrainingParams&) override;
  absl::StatusOr<client::EvalResult> Evaluate(const config::ModelSpec&,
                                              const tensor::ParameterLayout&,
                                              const std::vector<float>&) override {
    const int index = evaluations_++;
    if (evaluate_result) return evaluate_result(index);
    return client::EvalResult{10, 0.5, 7};
  }
  // The result of the index-th evaluation (default: 10 examples, loss 0.5, 7 correct).
  std::function<client::EvalResult(int evaluation_index)> evaluate_result;
  int evaluations() const { return evaluations_; }
  int tasks() const { return tasks_; }

 private:
  float delta_value_;
  uint64_t examples_;
  std::atomic<int> tasks_{0};
  std::atomic<int> evaluations_{0};
};

// Runs a SiteClient on its own thread; stops and joins it on destruction.
class ClientRunner {
 public:
  ClientRunner(config::ClientConfig config, std::unique_ptr<client::Trainer> trainer);
  ~ClientRunner();
  // Waits for Run() to return and gives its status.
  absl::Status Join();
  client::SiteClient& client() { return *client_; }

 private:
  std::unique_ptr<client::SiteClient> client_;
  std::thread thread_;
  absl::Status status_;
  bool joined_ = false;
};

// A coordinator on 127.0.0.1 (port chosen at run time) with a real PKI in a temp dir.
class Federation {
 public:
  explicit Federation(std::vector<std::string> sites, std::string federation = "testfed");
  ~Federation();

  config::CoordinatorConfig& config() { return config_; }
  TestPki& pki() { return pki_; }
  const std::string& state_dir() const { return config_.state_dir; }
  // Creates and starts the coordinator from config().
  void Start();
  server::Coordinator& coordinator() { return *coordinator_; }
  std::string address() const;
  // A client config for `site` whose certificate was issued by IssueSite at construction.
  config::ClientConfig ClientConfigFor(const std::string& site) const;
  // Channel credentials of `site` (or of explicit files) for raw stub tests.
  std::shared_ptr<grpc::Channel> ChannelAs(const config::TlsFiles& files) const;
  std::shared_ptr<grpc::Channel> ChannelFor(const std::string& site) const;
  void StopCoordinator();

 private:
  TempDir dir_;
  TestPki pki_;
  config::CoordinatorConfig config_;
  std::unique_ptr<server::Coordinator> coordinator_;
};

// Calls DownloadModel for a round that is not open, with a 10 s deadline: a caller that passes
// TLS and authorization gets FAILED_PRECONDITION, so the status tells how far the call got.
// `context` (optional) lets the caller read the connection's auth context afterwards.
grpc::Status ProbeClosedRound(const std::shared_ptr<grpc::Channel>& channel,
                              grpc::ClientContext* context = nullptr);

// Opens a Session as a site and reads messages on demand (for tests that drive the protocol
// by hand).
class ManualSite {
 public:
  explicit ManualSite(std::shared_ptr<grpc::Channel> channel);
  ~ManualSite();
  // Sends Hello and expects Welcome.
  bool Connect();
  // Reads the next coordinator message (false when the stream ended).
  bool Next(cohort::v1::CoordinatorMessage* message);
  bool Send(const cohort::v1::SiteMessage& message);
  cohort::v1::Federation::Stub& stub() { return *stub_; }
  void Close();

 private:
  std::unique_ptr<cohort::v1::Federation::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<cohort::v1::SiteMessage, cohort::v1::CoordinatorMessage>>
      stream_;
  bool closed_ = false;
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_INTEGRATION_HARNESS_H_
