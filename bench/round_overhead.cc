// bench_round_overhead: seconds per federated round with N in-process no-op sites against a
// real coordinator (127.0.0.1, port 0, mutual TLS), compared with the time one loopback
// mutual-TLS gRPC stream takes to move the same number of bytes.
//
// Per site and round the payload is: the global model (download for training), the
// candidate model (download for evaluation) and the update (upload), each
// params x 4 bytes of float32, so 12 x params bytes. The baseline streams
// N x 12 x params bytes through ONE server-streaming RPC of a small gRPC service defined
// here (1 MiB ModelChunk messages, the coordinator's own chunk size and message type), over
// the same kind of mutual-TLS credentials (common/tls/credentials.h) and the same PKI.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "tools/sim/loopback.h"
#include "cohort/v1/cohort.grpc.pb.h"
#include "common/state/state_store.h"
#include "common/tls/credentials.h"
#include "server/coordinator.h"

namespace cohort::bench {
namespace {

using sim::ClientThread;
using sim::CollectSiteRoundTimes;
using sim::LoopbackClientConfig;
using sim::LoopbackPki;
using sim::NoOpTrainer;
using sim::PickFreeLoopbackPort;
using sim::ScratchDir;
using sim::SiteNames;
using sim::SiteRoundTimes;

constexpr size_t kChunkBytes = 1 << 20;

// Command-line options.
struct Options {
  std::vector<int> clients = {10, 100};
  int64_t inputs = 499999;  // logreg: 2 x inputs + 2 parameters
  int warmup_rounds = 1;
  int measured_rounds = 4;
  int baseline_repeats = 5;
  int timeout_s = 1200;
  bool per_round = false;
};

// The baseline server: DownloadModel streams `request.round()` bytes (the field is reused
// as a byte count) in 1 MiB ModelChunk messages from one preallocated buffer, exactly as
// the coordinator streams a model blob. Nothing else is implemented.
class StreamBaselineService final : public cohort::v1::Federation::Service {
 public:
  StreamBaselineService() : buffer_(kChunkBytes) {
    for (size_t i = 0; i < buffer_.size(); ++i) buffer_[i] = static_cast<char>(i * 131);
  }

  grpc::Status DownloadModel(grpc::ServerContext* context,
                             const cohort::v1::DownloadModelRequest* request,
                             grpc::ServerWriter<cohort::v1::ModelChunk>* writer) override {
    const uint64_t total = request->round();
    cohort::v1::ModelChunk chunk;
    for (uint64_t offset = 0; offset < total; offset += kChunkBytes) {
      if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunkBytes, total - offset));
      chunk.set_offset(offset);
      chunk.set_data(buffer_.data(), n);
      if (!writer->Write(chunk)) return grpc::Status(grpc::StatusCode::CANCELLED, "reader gone");
    }
    return grpc::Status::OK;
  }

 private:
  std::vector<char> buffer_;
};

// Bytes that crossed the loopback interface so far (rx of `lo` in /proc/net/dev; for lo,
// rx == tx). Machine-wide, so only a cross-check; -1 when unreadable.
int64_t LoopbackBytes() {
  std::ifstream in("/proc/net/dev");
  std::string line;
  while (std::getline(in, line)) {
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    name.erase(0, name.find_first_not_of(' '));
    if (name != "lo") continue;
    std::istringstream fields(line.substr(colon + 1));
    int64_t rx_bytes = -1;
    fields >> rx_bytes;
    return rx_bytes;
  }
  return -1;
}

// User + system CPU seconds this process has used so far (all threads).
double ProcessCpuSeconds() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
         usage.ru_stime.tv_usec / 1e6;
}

// What one baseline measurement produced.
struct BaselineResult {
  double seconds = 0;           // median over the repeats
  std::vector<double> samples;  // every repeat
  int64_t wire_bytes = -1;      // loopback bytes of one transfer (from the last repeat)
  double cpu_seconds = 0;       // process CPU time of one transfer (from the last repeat)
};

// Streams `total_bytes` once through one mutual-TLS stream, `repeats` times (after a small
// warm-up call that also completes the TLS handshake), and returns the median time.
absl::StatusOr<BaselineResult> RunBaseline(const LoopbackPki& pki, const std::string& site,
                                           uint64_t total_bytes, int repeats) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server_credentials =
      tls::MakeServerCredentials(pki.coordinator_files());
  if (!server_credentials.ok()) return server_credentials.status();
  StreamBaselineService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", *server_credentials, &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return absl::UnavailableError("baseline server did not start");

  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> channel_credentials =
      tls::MakeChannelCredentials(pki.site_files(site));
  if (!channel_credentials.ok()) return channel_credentials.status();
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", port), *channel_credentials, tls::MakeChannelArguments(""));
  auto stub = cohort::v1::Federation::NewStub(channel);

  auto transfer = [&](uint64_t bytes) -> absl::StatusOr<uint64_t> {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
    cohort::v1::DownloadModelRequest request;
    request.set_round(bytes);
    auto reader = stub->DownloadModel(&context, request);
    cohort::v1::ModelChunk chunk;
    uint64_t received = 0;
    while (reader->Read(&chunk)) received += chunk.data().size();
    grpc::Status status = reader->Finish();
    if (!status.ok()) {
      return absl::UnavailableError(absl::StrCat("baseline stream: ", status.error_message()));
    }
    if (received != bytes) return absl::DataLossError("baseline stream was short");
    return received;
  };

  if (absl::StatusOr<uint64_t> warm = transfer(8 * kChunkBytes); !warm.ok()) return warm.status();
  BaselineResult result;
  for (int i = 0; i < repeats; ++i) {
    const int64_t lo_before = LoopbackBytes();
    const double cpu_before = ProcessCpuSeconds();
    const absl::Time start = absl::Now();
    if (absl::StatusOr<uint64_t> done = transfer(total_bytes); !done.ok()) return done.status();
    result.samples.push_back(absl::ToDoubleSeconds(absl::Now() - start));
    result.cpu_seconds = ProcessCpuSeconds() - cpu_before;
    const int64_t lo_after = LoopbackBytes();
    if (lo_before >= 0 && lo_after >= 0) result.wire_bytes = lo_after - lo_before;
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  std::vector<double> sorted = result.samples;
  std::sort(sorted.begin(), sorted.end());
  result.seconds = sorted[sorted.size() / 2];
  return result;
}

// The figures of one federation run (one value of N).
struct FederationResult {
  double seconds_per_round = 0;        // wall time from the start of the first measured round
                                       // to the end of the last, divided by their number
  double coordinator_round_s = 0;      // mean of the coordinator's own duration_s
  double min_round_s = 0, max_round_s = 0;
  int64_t wire_bytes = -1;             // loopback bytes over the whole run (all rounds)
  double cpu_seconds_per_round = 0;    // process CPU time over the whole run / rounds
  int rounds_total = 0;
  // Mean phase times over the measured rounds, from the sites' point of view.
  double train_downloads_s = 0;  // round start -> last site holds the global model
  double uploads_aggregate_s = 0;  // -> first site holds the candidate (uploads, FedAvg, 1 download)
  double eval_downloads_s = 0;   // first -> last site holds the candidate
  double report_commit_s = 0;    // last candidate download -> round recorded (eval + checkpoint)
  double between_rounds_s = 0;   // round recorded -> next round starts (state commit, select)
};

absl::StatusOr<FederationResult> RunFederation(const Options& options, int num_clients,
                                               const ScratchDir& dir, const LoopbackPki& pki) {
  const std::vector<std::string> sites = SiteNames(num_clients);
  config::CoordinatorConfig config;
  config.federation = "bench";
  config.listen = "127.0.0.1:0";
  config.tls = pki.coordinator_files();
  config.sites = sites;
  config.state_dir = dir.File(absl::StrCat("state-", num_clients));
  config.model.arch = "logreg";
  config.model.inputs = options.inputs;
  config.model.classes = 2;
  config.rounds.count = options.warmup_rounds + options.measured_rounds;
  config.rounds.min_clients = num_clients;
  config.rounds.stage_timeout = absl::Seconds(120);
  config.rounds.select_timeout = absl::Milliseconds(200);
  config.limits.max_concurrent_uploads = 1;  // the default
  config.has_seed = true;
  config.seed = 1;

  absl::StatusOr<std::unique_ptr<server::Coordinator>> coordinator =
      server::Coordinator::Create(config);
  if (!coordinator.ok()) return coordinator.status();
  if (absl::Status s = (*coordinator)->Start(); !s.ok()) return s;
  const int port = (*coordinator)->port();

  const int64_t lo_before = LoopbackBytes();
  const double cpu_before = ProcessCpuSeconds();
  std::vector<std::unique_ptr<ClientThread>> clients;
  clients.reserve(sites.size());
  for (const std::string& site : sites) {
    clients.push_back(std::make_unique<ClientThread>(LoopbackClientConfig(pki, site, port)));
  }

  // Watchdog: a stalled federation is stopped instead of hanging the benchmark.
  absl::Notification finished;
  std::thread watchdog([&] {
    if (!finished.WaitForNotificationWithTimeout(absl::Seconds(options.timeout_s))) {
      std::cerr << "watchdog: federation of " << num_clients << " sites still running after "
                << options.timeout_s << " s; shutting the coordinator down\n";
      (*coordinator)->Shutdown();
    }
  });
  absl::Status loop = (*coordinator)->Wait();
  finished.Notify();
  watchdog.join();
  // After a failed loop the sites may keep reconnecting; their destructors stop them.
  for (auto& client : clients) {
    if (!loop.ok()) break;
    if (absl::Status s = client->Join(); !s.ok()) {
      loop = absl::InternalError(absl::StrCat("a site ended with: ", s.ToString()));
    }
  }
  const int64_t lo_after = LoopbackBytes();
  const double cpu_used = ProcessCpuSeconds() - cpu_before;
  std::vector<SiteRoundTimes> site_times = CollectSiteRoundTimes(clients);
  // The coordinator goes first: its shutdown also ends any model transfer a site might still
  // be blocked in (SiteClient::Stop() cancels only the session stream).
  (*coordinator)->Shutdown();
  clients.clear();
  coordinator->reset();
  if (!loop.ok()) return loop;

  absl::StatusOr<std::unique_ptr<state::StateStore>> store =
      state::StateStore::OpenReadOnly(config.state_dir + "/state.db");
  if (!store.ok()) return store.status();
  absl::StatusOr<std::vector<state::RoundRecord>> rounds = (*store)->ListRounds(false);
  if (!rounds.ok()) return rounds.status();
  const size_t expected = static_cast<size_t>(config.rounds.count);
  if (rounds->size() != expected) {
    return absl::InternalError(absl::StrCat(rounds->size(), " rounds recorded, expected ",
                                            expected, " (some aborted?)"));
  }
  for (const state::RoundRecord& r : *rounds) {
    if (r.status != "committed" || r.participants.size() != sites.size()) {
      return absl::InternalError(absl::StrCat("round ", r.round, " is ", r.status, " with ",
                                              r.participants.size(), " participants"));
    }
  }
  if (site_times.size() != expected) {
    return absl::InternalError("sites saw a different number of rounds than were recorded");
  }

  FederationResult result;
  result.rounds_total = static_cast<int>(expected);
  result.cpu_seconds_per_round = cpu_used / static_cast<double>(expected);
  result.wire_bytes = (lo_before >= 0 && lo_after >= 0) ? lo_after - lo_before : -1;
  result.min_round_s = 1e300;
  const size_t first = static_cast<size_t>(options.warmup_rounds);
  const size_t last = expected - 1;
  const double measured = static_cast<double>(expected - first);
  for (size_t i = first; i <= last; ++i) {
    const state::RoundRecord& r = (*rounds)[i];
    const SiteRoundTimes& t = site_times[i];
    const absl::Time end = r.started_at + absl::Seconds(r.duration_s);
    result.coordinator_round_s += r.duration_s / measured;
    result.min_round_s = std::min(result.min_round_s, r.duration_s);
    result.max_round_s = std::max(result.max_round_s, r.duration_s);
    result.train_downloads_s += absl::ToDoubleSeconds(t.last_train - r.started_at) / measured;
    result.uploads_aggregate_s += absl::ToDoubleSeconds(t.first_eval - t.last_train) / measured;
    result.eval_downloads_s += absl::ToDoubleSeconds(t.last_eval - t.first_eval) / measured;
    result.report_commit_s += absl::ToDoubleSeconds(end - t.last_eval) / measured;
    if (i < last) {
      result.between_rounds_s +=
          absl::ToDoubleSeconds((*rounds)[i + 1].started_at - end) / (measured - 1);
    }
    if (options.per_round) {
      std::printf("  N=%d round %llu: %.3f s (train downloads %.3f, uploads+aggregate %.3f, "
                  "eval downloads %.3f, report+checkpoint %.3f)\n",
                  num_clients, static_cast<unsigned long long>(r.round), r.duration_s,
                  absl::ToDoubleSeconds(t.last_train - r.started_at),
                  absl::ToDoubleSeconds(t.first_eval - t.last_train),
                  absl::ToDoubleSeconds(t.last_eval - t.first_eval),
                  absl::ToDoubleSeconds(end - t.last_eval));
    }
  }
  const state::RoundRecord& first_round = (*rounds)[first];
  const state::RoundRecord& last_round = (*rounds)[last];
  result.seconds_per_round =
      absl::ToDoubleSeconds(last_round.started_at + absl::Seconds(last_round.duration_s) -
                            first_round.started_at) /
      measured;
  return result;
}

// The 1-minute load average, to show whether other work shared the machine.
std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one;
  in >> one;
  return one.empty() ? "?" : one;
}

int Main(int argc, char** argv) {
  Options options;
  CLI::App app{"bench_round_overhead: seconds per round vs one loopback mutual-TLS stream"};
  app.add_option("--clients", options.clients, "Numbers of in-process sites to run (one run each)")
      ->delimiter(',');
  app.add_option("--inputs", options.inputs,
                 "logreg inputs (params = 2 x inputs + 2; default gives 1,000,000)");
  app.add_option("--warmup", options.warmup_rounds, "Rounds run before measuring")
      ->check(CLI::Range(1, 100));
  app.add_option("--rounds", options.measured_rounds, "Rounds measured")
      ->check(CLI::Range(2, 1000));
  app.add_option("--baseline-repeats", options.baseline_repeats,
                 "Baseline transfers (the median is reported)")
      ->check(CLI::Range(1, 100));
  app.add_option("--timeout", options.timeout_s, "Seconds before a stalled run is stopped");
  app.add_flag("--per-round", options.per_round, "Print every measured round");
  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(spdlog::level::warn);
  const int64_t params = 2 * options.inputs + 2;
  const uint64_t model_bytes = static_cast<uint64_t>(params) * sizeof(float);
  // Download for training + download for evaluation + upload of the update.
  const uint64_t bytes_per_client = 3 * model_bytes;

  ScratchDir dir("cohort-bench-rounds");
  if (!dir.status().ok()) {
    std::cerr << dir.status() << "\n";
    return 1;
  }
  int max_clients = *std::max_element(options.clients.begin(), options.clients.end());
  absl::StatusOr<std::unique_ptr<LoopbackPki>> pki = LoopbackPki::Create(dir.File("pki"), "bench");
  if (!pki.ok()) {
    std::cerr << "PKI: " << pki.status() << "\n";
    return 1;
  }
  for (const std::string& site : SiteNames(max_clients)) {
    if (absl::StatusOr<config::TlsFiles> files = (*pki)->IssueSite(site); !files.ok()) {
      std::cerr << "PKI: " << files.status() << "\n";
      return 1;
    }
  }

  std::printf("model: logreg inputs=%lld classes=2 -> %lld float32 params, %.3f MB\n",
              static_cast<long long>(options.inputs), static_cast<long long>(params),
              model_bytes / 1e6);
  std::printf("bytes per client per round = 3 x model bytes (train download + eval download + "
              "update upload) = %.3f MB\n",
              bytes_per_client / 1e6);
  std::printf("rounds: %d warm-up + %d measured per N; baseline: median of %d transfers of "
              "N x %.3f MB through one gRPC server stream (1 MiB chunks, mutual TLS)\n\n",
              options.warmup_rounds, options.measured_rounds, options.baseline_repeats,
              bytes_per_client / 1e6);
  std::fflush(stdout);

  const std::string load_at_start = LoadAverage();
  // Table rows are printed at the end, details as they come.
  std::vector<std::string> rows;
  int exit_code = 0;
  for (int n : options.clients) {
    // The baseline runs first, while the process is fresh (its best case), then the
    // federation.
    const uint64_t total_bytes = bytes_per_client * static_cast<uint64_t>(n);
    absl::StatusOr<BaselineResult> base =
        RunBaseline(**pki, SiteNames(1)[0], total_bytes, options.baseline_repeats);
    if (!base.ok()) {
      std::cerr << "N=" << n << ": baseline failed: " << base.status() << "\n";
      exit_code = 1;
      continue;
    }
    absl::StatusOr<FederationResult> fed = RunFederation(options, n, dir, **pki);
    if (!fed.ok()) {
      std::cerr << "N=" << n << ": federation failed: " << fed.status() << "\n";
      exit_code = 1;
      continue;
    }
    const double ratio = fed->seconds_per_round / base->seconds;
    std::printf("N=%d: round %.3f s wall (coordinator duration_s mean %.3f, min %.3f, max %.3f)\n",
                n, fed->seconds_per_round, fed->coordinator_round_s, fed->min_round_s,
                fed->max_round_s);
    std::printf("  phases (mean): train downloads %.3f | uploads+aggregate+1st eval download %.3f"
                " | eval downloads %.3f | eval reports+checkpoint %.3f | between rounds %.3f\n",
                fed->train_downloads_s, fed->uploads_aggregate_s, fed->eval_downloads_s,
                fed->report_commit_s, fed->between_rounds_s);
    if (fed->wire_bytes >= 0) {
      std::printf("  loopback bytes over all %d rounds: %.1f MB = %.3f MB/client/round on the wire"
                  " (payload %.3f)\n",
                  fed->rounds_total, fed->wire_bytes / 1e6,
                  fed->wire_bytes / 1e6 / fed->rounds_total / n, bytes_per_client / 1e6);
    }
    std::printf("  CPU (coordinator + sites, one process): %.2f s per round (all rounds incl. "
                "warm-up and connection setup); baseline transfer %.2f s CPU\n",
                fed->cpu_seconds_per_round, base->cpu_seconds);
    std::string samples;
    for (double s : base->samples) absl::StrAppend(&samples, samples.empty() ? "" : " ",
                                                   absl::StrFormat("%.3f", s));
    std::printf("  baseline: %.1f MB in %.3f s (%.0f MB/s; samples %s; %.1f MB on the wire)\n",
                total_bytes / 1e6, base->seconds, total_bytes / 1e6 / base->seconds,
                samples.c_str(), base->wire_bytes / 1e6);
    std::fflush(stdout);
    rows.push_back(absl::StrFormat("%5d %10lld %12.3f %16.3f %12.3f %8.2f %s", n,
                                   static_cast<long long>(params), fed->seconds_per_round,
                                   bytes_per_client / 1e6, base->seconds, ratio,
                                   ratio <= 2.0 ? "yes" : "NO"));
  }
  std::printf("\nload average (1 min) at start %s, at end %s\n", load_at_start.c_str(),
              LoadAverage().c_str());
  std::printf("\n%5s %10s %12s %16s %12s %8s %s\n", "N", "params", "s/round", "MB/client/round",
              "baseline_s", "ratio", "within 2x");
  for (const std::string& row : rows) std::printf("%s\n", row.c_str());
  return exit_code;
}

}  // namespace
}  // namespace cohort::bench

int main(int argc, char** argv) { return cohort::bench::Main(argc, argv); }
