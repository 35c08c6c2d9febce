// Malformed, hostile or mistimed uploads are refused with a clear status and a log line, and
// the round still commits the exact FedAvg of the honest updates.
#include <cmath>
#include <cstring>
#include <limits>

#include <catch2/catch.hpp>

#include "absl/time/clock.h"
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "common/state/state_store.h"
#include "tests/integration/harness.h"

namespace cohort::testing {
namespace {

struct Chunk {
  uint64_t offset;
  std::string bytes;
};

std::string Floats(size_t count, float value) {
  std::vector<float> v(count, value);
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

// Streams `header` (unless null) and `chunks` as one UploadUpdate call.
grpc::Status UploadOnce(cohort::v1::Federation::Stub& stub,
                        const cohort::v1::UpdateHeader* header, const std::vector<Chunk>& chunks,
                        bool second_header) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  cohort::v1::UploadReceipt receipt;
  auto writer = stub.UploadUpdate(&context, &receipt);
  cohort::v1::UpdateChunk message;
  if (header != nullptr) {
    *message.mutable_header() = *header;
    writer->Write(message);
  }
  for (const Chunk& chunk : chunks) {
    message.Clear();
    message.mutable_data()->set_offset(chunk.offset);
    message.mutable_data()->set_data(chunk.bytes);
    if (!writer->Write(message)) break;
  }
  if (second_header && header != nullptr) {
    message.Clear();
    *message.mutable_header() = *header;
    writer->Write(message);
  }
  writer->WritesDone();
  return writer->Finish();
}

// One upload stream, sent once the coordinator has let go of this site's previous one: a
// stream the client saw fail (e.g. RESOURCE_EXHAUSTED from gRPC's size limit) can still be
// finishing in the coordinator's handler for a moment, and until then a new upload is
// refused as "already has an upload in flight", correctly. Watchdog: 10 s.
grpc::Status Upload(cohort::v1::Federation::Stub& stub, const cohort::v1::UpdateHeader* header,
                    const std::vector<Chunk>& chunks, bool second_header = false) {
  const absl::Time watchdog = absl::Now() + absl::Seconds(10);
  for (;;) {
    grpc::Status status = UploadOnce(stub, header, chunks, second_header);
    if (status.error_code() != grpc::StatusCode::ALREADY_EXISTS ||
        status.error_message().find("in flight") == std::string::npos ||
        absl::Now() > watchdog) {
      return status;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

// The payload of `values` floats of `value`, in chunks of at most `chunk_floats`.
std::vector<Chunk> Payload(size_t values, float value, size_t chunk_floats) {
  std::vector<Chunk> chunks;
  for (size_t start = 0; start < values; start += chunk_floats) {
    size_t n = std::min(chunk_floats, values - start);
    chunks.push_back({start * sizeof(float), Floats(n, value)});
  }
  return chunks;
}

}  // namespace

TEST_CASE("Bad uploads are refused and leave the aggregate exact", "[bad-input]") {
  auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
  spdlog::default_logger()->sinks().push_back(ring);

  Federation fed({"site-a", "site-b", "site-c"});
  fed.config().model.inputs = 20000;  // 40,002 values: several 64 KiB chunks
  fed.config().rounds.count = 1;
  fed.config().limits.max_chunk_bytes = 64 << 10;
  fed.Start();
  const std::vector<float> initial = fed.coordinator().GlobalModel();
  const size_t n = initial.size();
  const size_t chunk_floats = (64 << 10) / sizeof(float);

  ManualSite manual(fed.ChannelFor("site-c"));
  REQUIRE(manual.Connect());
  ClientRunner a(fed.ClientConfigFor("site-a"), std::make_unique<ScriptedTrainer>(1.0f, 10));
  ClientRunner b(fed.ClientConfigFor("site-b"), std::make_unique<ScriptedTrainer>(2.0f, 10));

  cohort::v1::CoordinatorMessage message;
  REQUIRE(manual.Next(&message));
  REQUIRE(message.has_train());
  const cohort::v1::TrainTask task = message.train();
  REQUIRE(task.model().num_values() == n);
  cohort::v1::UpdateHeader good;
  good.set_round(task.round());
  good.set_base_model_id(task.model().model_id());
  good.set_num_values(n);
  good.set_weight(20);
  good.mutable_metrics()->set_train_loss(0.5);
  good.mutable_metrics()->set_train_examples(20);
  auto& stub = manual.stub();
  const std::vector<Chunk> payload = Payload(n, 3.0f, chunk_floats);

  SECTION("every malformed stream gets a clear status") {
    // No header: data first.
    grpc::Status s = Upload(stub, nullptr, payload);
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(s.error_message(), Catch::Contains("UpdateHeader"));
    // Empty stream.
    s = Upload(stub, nullptr, {});
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    // Wrong shape: one value short.
    cohort::v1::UpdateHeader wrong_shape = good;
    wrong_shape.set_num_values(n - 1);
    s = Upload(stub, &wrong_shape, Payload(n - 1, 3.0f, chunk_floats));
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(s.error_message(), Catch::Contains("values, the model has"));
    // NaN and Inf inside the payload.
    for (float bad : {std::numeric_limits<float>::quiet_NaN(),
                      std::numeric_limits<float>::infinity()}) {
      std::vector<Chunk> poisoned = payload;
      std::memcpy(poisoned[2].bytes.data() + 8, &bad, sizeof(float));
      s = Upload(stub, &good, poisoned);
      CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
      CHECK_THAT(s.error_message(), Catch::Contains(std::isnan(bad) ? "NaN" : "infinite"));
    }
    // A gap between chunks.
    std::vector<Chunk> gap = payload;
    gap.erase(gap.begin() + 1);
    s = Upload(stub, &good, gap);
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(s.error_message(), Catch::Contains("contiguous"));
    // Truncated: the stream ends early.
    std::vector<Chunk> truncated(payload.begin(), payload.begin() + 2);
    s = Upload(stub, &good, truncated);
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(s.error_message(), Catch::Contains("truncated"));
    // A chunk just over the configured limit is refused by the stream check...
    s = Upload(stub, &good, {{0, Floats(chunk_floats + 1024, 3.0f)}});
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(s.error_message(), Catch::Contains("limit"));
    // ...and a far larger one already by gRPC's message size limit.
    s = Upload(stub, &good, {{0, Floats(4 * chunk_floats, 3.0f)}});
    CHECK(s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    // Bytes past the announced end.
    std::vector<Chunk> overlong = payload;
    overlong.push_back({n * sizeof(float), Floats(4, 3.0f)});
    s = Upload(stub, &good, overlong);
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    // A second header inside the stream.
    s = Upload(stub, &good, {payload[0]}, /*second_header=*/true);
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    // A round that is not open.
    cohort::v1::UpdateHeader stale = good;
    stale.set_round(task.round() + 7);
    s = Upload(stub, &stale, payload);
    CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    CHECK_THAT(s.error_message(), Catch::Contains("is not open"));
    // Trained from another model.
    cohort::v1::UpdateHeader other_base = good;
    other_base.set_base_model_id("model-41");
    s = Upload(stub, &other_base, payload);
    CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
    // A negative or NaN weight.
    cohort::v1::UpdateHeader bad_weight = good;
    bad_weight.set_weight(-5);
    s = Upload(stub, &bad_weight, payload);
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    bad_weight.set_weight(std::numeric_limits<double>::quiet_NaN());
    s = Upload(stub, &bad_weight, payload);
    CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    // A site that is not a member cannot upload at all.
    auto outsider_stub = cohort::v1::Federation::NewStub(fed.ChannelAs(fed.pki().IssueSite("site-x")));
    s = Upload(*outsider_stub, &good, payload);
    CHECK(s.error_code() == grpc::StatusCode::PERMISSION_DENIED);

    // Each refusal left a log line naming the site.
    int refusals = 0;
    for (const std::string& line : ring->last_formatted()) {
      if (line.find("site=site-c") != std::string::npos &&
          line.find("refused") != std::string::npos) {
        ++refusals;
      }
    }
    CHECK(refusals >= 15);

    // Now the honest upload is accepted, and a second one is refused.
    s = Upload(stub, &good, payload);
    REQUIRE(s.ok());
    s = Upload(stub, &good, payload);
    CHECK(s.error_code() == grpc::StatusCode::ALREADY_EXISTS);
    CHECK_THAT(s.error_message(), Catch::Contains("already uploaded"));

    // Answer the evaluation so the round can commit.
    REQUIRE(manual.Next(&message));
    REQUIRE(message.has_evaluate());
    cohort::v1::SiteMessage report;
    report.mutable_evaluation()->set_round(task.round());
    report.mutable_evaluation()->set_model_id(message.evaluate().model().model_id());
    report.mutable_evaluation()->set_examples(10);
    report.mutable_evaluation()->set_correct(9);
    report.mutable_evaluation()->set_loss(0.1);
    REQUIRE(manual.Send(report));

    REQUIRE(fed.coordinator().Wait().ok());
    // (10 * 1 + 10 * 2 + 20 * 3) / 40 = 2.25: the refused streams contributed nothing.
    const std::vector<float> model = fed.coordinator().GlobalModel();
    for (size_t i = 0; i < n; i += 997) {
      REQUIRE(model[i] == Approx(initial[i] + 2.25f).epsilon(1e-6));
    }
    std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
    REQUIRE(rounds.size() == 1);
    CHECK(rounds[0].participants == std::vector<std::string>{"site-a", "site-b", "site-c"});
    CHECK(rounds[0].examples == 40);
  }
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), ring), sinks.end());
}

TEST_CASE("An upload after the round closed is refused and the next round is unaffected",
          "[bad-input]") {
  Federation fed({"site-a", "site-c"});
  fed.config().rounds.count = 1;
  fed.config().rounds.min_clients = 1;
  // Long enough for site-a to finish even on a loaded machine; site-c never uploads in time.
  fed.config().rounds.stage_timeout = absl::Seconds(3);
  fed.Start();
  ManualSite late(fed.ChannelFor("site-c"));
  REQUIRE(late.Connect());
  ClientRunner a(fed.ClientConfigFor("site-a"), std::make_unique<ScriptedTrainer>(1.0f, 10));
  cohort::v1::CoordinatorMessage message;
  REQUIRE(late.Next(&message));
  REQUIRE(message.has_train());
  const cohort::v1::TrainTask task = message.train();
  // Miss the deadline: the round commits with site-a alone.
  REQUIRE(fed.coordinator().Wait().ok());
  cohort::v1::UpdateHeader header;
  header.set_round(task.round());
  header.set_base_model_id(task.model().model_id());
  header.set_num_values(task.model().num_values());
  header.set_weight(10);
  grpc::Status s = Upload(late.stub(), &header, Payload(task.model().num_values(), 9.0f, 1024));
  CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
  REQUIRE(rounds.size() == 1);
  CHECK(rounds[0].participants == std::vector<std::string>{"site-a"});
  CHECK(rounds[0].dropped == std::vector<std::string>{"site-c"});
}

TEST_CASE("A 100 MB model streams down and back up in chunks", "[large]") {
  Federation fed({"site-a"});
  // logreg with 12.5M inputs and 2 classes: 25,000,002 float32 values, 100 MB.
  fed.config().model.inputs = 12'500'000;
  fed.config().rounds.count = 1;
  fed.config().rounds.min_clients = 1;
  fed.config().rounds.stage_timeout = absl::Seconds(120);
  fed.Start();
  const std::vector<float> initial = fed.coordinator().GlobalModel();
  REQUIRE(initial.size() * sizeof(float) >= 100'000'000);
  auto trainer = std::make_unique<ScriptedTrainer>(0.5f, 10);
  ScriptedTrainer* trainer_view = trainer.get();
  ClientRunner a(fed.ClientConfigFor("site-a"), std::move(trainer));
  REQUIRE(fed.coordinator().Wait().ok());
  REQUIRE(a.Join().ok());
  CHECK(trainer_view->tasks() == 1);
  const std::vector<float> model = fed.coordinator().GlobalModel();
  REQUIRE(model.size() == initial.size());
  for (size_t i = 0; i < model.size(); i += 1'000'003) {
    REQUIRE(model[i] == Approx(initial[i] + 0.5f).epsilon(1e-6));
  }
  REQUIRE(model.back() == Approx(initial.back() + 0.5f).epsilon(1e-6));
}

}  // namespace cohort::testing

namespace cohort::testing {

TEST_CASE("A stalled upload is cut off when the training stage closes", "[bad-input]") {
  Federation fed({"site-a", "site-c"});
  fed.config().rounds.count = 1;
  fed.config().rounds.min_clients = 1;
  fed.config().rounds.stage_timeout = absl::Seconds(3);
  fed.config().limits.max_concurrent_uploads = 1;  // the stalled stream holds the only slot
  fed.config().rounds.select_timeout = absl::Seconds(1);  // round 1 starts without site-a
  fed.Start();
  ManualSite stalled(fed.ChannelFor("site-c"));
  REQUIRE(stalled.Connect());
  cohort::v1::CoordinatorMessage message;
  REQUIRE(stalled.Next(&message));
  REQUIRE(message.has_train());
  const cohort::v1::TrainTask task = message.train();

  // Header and one chunk, then silence, with no deadline of its own (a safety net of 60 s
  // only keeps a broken build from hanging the suite).
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  cohort::v1::UploadReceipt receipt;
  auto writer = stalled.stub().UploadUpdate(&context, &receipt);
  cohort::v1::UpdateChunk chunk;
  auto* header = chunk.mutable_header();
  header->set_round(task.round());
  header->set_base_model_id(task.model().model_id());
  header->set_num_values(task.model().num_values());
  header->set_weight(10);
  REQUIRE(writer->Write(chunk));
  chunk.Clear();
  chunk.mutable_data()->set_offset(0);
  chunk.mutable_data()->set_data(Floats(2, 1.0f));
  REQUIRE(writer->Write(chunk));

  // Round 1 selected site-c alone (site-a was not connected yet). At its deadline the stalled
  // stream is cancelled, releasing the only upload slot, and the round aborts; the next round
  // commits with site-a.
  ClientRunner a(fed.ClientConfigFor("site-a"), std::make_unique<ScriptedTrainer>(1.0f, 10));
  grpc::Status status = writer->Finish();
  CHECK(status.error_code() == grpc::StatusCode::CANCELLED);
  stalled.Close();
  REQUIRE(fed.coordinator().Wait().ok());
  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
  REQUIRE(rounds.size() == 1);
  CHECK(rounds[0].participants == std::vector<std::string>{"site-a"});
}

}  // namespace cohort::testing
