// cohort-sim: one coordinator and N sites in one process, over real gRPC with mutual TLS on
// loopback, with synthetic updates: for secure aggregation research and fault injection.
//
//   cohort-sim --clients N --params P [--secure|--plain] [--dropout-tolerance F]
//              [--drop STAGE:COUNT]... [--seed S] [--dump DIR]
//
// Runs one round and prints a one-line JSON summary; exits 1 if the round aborted.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <random>

#include <CLI/CLI.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/secagg/mod_vector.h"
#include "common/state/state_store.h"
#include "common/util/files.h"
#include "common/util/log.h"
#include "server/coordinator.h"
#include "tools/sim/loopback.h"

namespace cohort::sim {
namespace {

// Updates drawn uniformly from [-0.5, 0.5) (reproducible from --seed), for a site with a
// fixed number of examples; evaluation reports one example.
class SyntheticTrainer final : public client::Trainer {
 public:
  SyntheticTrainer(uint64_t seed, uint64_t examples) : rng_(seed), examples_(examples) {}
  uint64_t train_examples() const override { return examples_; }
  uint64_t test_examples() const override { return 1; }
  int64_t num_features() const override { return 0; }
  absl::Status CheckModel(const config::ModelSpec&, const tensor::ParameterLayout&) const override {
    return absl::OkStatus();
  }
  absl::StatusOr<client::TrainResult> Train(const config::ModelSpec&, const tensor::ParameterLayout&,
                                            const std::vector<float>& global,
                                            const client::TrainingParams&) override {
    client::TrainResult result;
    result.delta.resize(global.size());
    std::uniform_real_distribution<float> uniform(-0.5f, 0.5f);
    for (float& v : result.delta) v = uniform(rng_);
    result.train_loss = 0.5;
    result.examples = examples_;
    return result;
  }
  absl::StatusOr<client::EvalResult> Evaluate(const config::ModelSpec&, const tensor::ParameterLayout&,
                                              const std::vector<float>&) override {
    return client::EvalResult{1, 0.5, 1};
  }

 private:
  std::mt19937_64 rng_;
  uint64_t examples_;
};

struct DropRequest {
  client::SiteClient::SecAggStage stage;
  int count = 0;
  std::string name;
};

absl::StatusOr<DropRequest> ParseDrop(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  DropRequest drop;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[1], &drop.count) || drop.count < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--drop ", text, ": expected STAGE:COUNT, e.g. masked:2"));
  }
  absl::StatusOr<client::SiteClient::SecAggStage> stage =
      client::SiteClient::ParseSecAggStage(parts[0]);
  if (!stage.ok()) return absl::InvalidArgumentError(absl::StrCat("--drop ", text, ": ", stage.status().message()));
  drop.stage = *stage;
  drop.name = parts[0];
  return drop;
}

// Raw little-endian words of a ModVector, as cohort-sim --dump writes them.
absl::Status WriteWords(const std::string& path, const secagg::ModVector& words) {
  return WriteFileDurably(path, words.ToBytes(), 0644);
}

std::string JsonList(const std::vector<std::string>& items) {
  std::vector<std::string> quoted;
  for (const std::string& item : items) quoted.push_back(absl::StrCat("\"", item, "\""));
  return absl::StrCat("[", absl::StrJoin(quoted, ","), "]");
}

int Main(int argc, char** argv) {
  CLI::App app{"cohort-sim: a coordinator and N sites in one process over loopback mutual TLS, "
               "with synthetic updates"};
  int clients = 10;
  int64_t params = 1000;
  bool plain = false;
  bool secure_flag = false;
  double tolerance = 0.3;
  std::vector<std::string> drops_text;
  uint64_t seed = 1;
  std::string dump_dir;
  int bits = 20;
  int modulus_bits = 32;
  std::string log_level = "warn";
  app.set_version_flag("--version", std::string("cohort-sim ") + COHORT_VERSION);
  app.add_option("--clients", clients, "Number of sites")->check(CLI::Range(1, 10000));
  app.add_option("--params", params, "Model parameters")->check(CLI::Range(int64_t{2}, int64_t{1} << 30));
  app.add_flag("--secure", secure_flag, "Secure aggregation (the default)");
  app.add_flag("--plain", plain, "Plain FedAvg without secure aggregation");
  app.add_option("--dropout-tolerance", tolerance, "Fraction of sites that may drop")
      ->check(CLI::Range(0.0, 0.4999));
  app.add_option("--drop", drops_text,
                 "STAGE:COUNT: COUNT sites vanish during STAGE (advertise, share, masked, "
                 "unmask); may be repeated");
  app.add_option("--seed", seed, "Seed of the synthetic updates and of which sites drop");
  app.add_option("--dump", dump_dir,
                 "Write each site's quantized input, the unmasked sum, the survivors and "
                 "manifest.json here");
  app.add_option("--bits", bits, "Quantization bits")->check(CLI::Range(1, 62));
  app.add_option("--modulus-bits", modulus_bits, "32 or 64")->check(CLI::IsMember({32, 64}));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  CLI11_PARSE(app, argc, argv);
  if (plain && secure_flag) {
    std::cerr << "cohort-sim: --secure and --plain exclude each other\n";
    return 2;
  }
  const bool secure = !plain;
  std::vector<DropRequest> drops;
  int total_drops = 0;
  for (const std::string& text : drops_text) {
    absl::StatusOr<DropRequest> drop = ParseDrop(text);
    if (!drop.ok()) {
      std::cerr << "cohort-sim: " << drop.status().message() << "\n";
      return 2;
    }
    if (!secure) {
      std::cerr << "cohort-sim: --drop needs secure aggregation (its stages)\n";
      return 2;
    }
    total_drops += drop->count;
    drops.push_back(*drop);
  }
  if (total_drops > clients) {
    std::cerr << "cohort-sim: --drop asks for " << total_drops << " of " << clients << " sites\n";
    return 2;
  }
  if (secure && clients < 3) {
    std::cerr << "cohort-sim: secure aggregation needs at least 3 clients\n";
    return 2;
  }
  InitLogging("cohort-sim", false, spdlog::level::from_str(log_level));

  ScratchDir scratch("cohort-sim");
  if (!scratch.status().ok()) {
    std::cerr << "cohort-sim: " << scratch.status().message() << "\n";
    return 1;
  }
  auto fail = [](const absl::Status& status) {
    std::cerr << "cohort-sim: " << status.message() << "\n";
    return 1;
  };
  absl::StatusOr<std::unique_ptr<LoopbackPki>> pki = LoopbackPki::Create(scratch.File("pki"), "sim");
  if (!pki.ok()) return fail(pki.status());
  const std::vector<std::string> sites = SiteNames(clients);
  for (const std::string& site : sites) {
    if (absl::StatusOr<config::TlsFiles> files = (*pki)->IssueSite(site); !files.ok()) {
      return fail(files.status());
    }
  }
  if (!dump_dir.empty()) {
    if (absl::Status s = EnsureDirectory(dump_dir); !s.ok()) return fail(s);
  }

  config::CoordinatorConfig config;
  config.federation = "sim";
  config.listen = "127.0.0.1:0";
  config.tls = (*pki)->coordinator_files();
  config.sites = sites;
  config.state_dir = scratch.File("state");
  config.model.arch = "logreg";
  config.model.inputs = params - 1;  // logreg with one output: (P - 1) weights + 1 bias
  config.model.classes = 1;
  config.rounds.count = 1;
  config.rounds.min_clients = secure ? 2 : 1;
  config.rounds.stage_timeout = absl::Seconds(120);
  config.rounds.select_timeout = absl::Seconds(60);
  config.aggregation.secure.enabled = secure;
  config.aggregation.secure.dropout_tolerance = tolerance;
  config.aggregation.secure.bits = bits;
  config.aggregation.secure.clip_range = 1.0;
  config.aggregation.secure.modulus_bits = modulus_bits;
  config.aggregation.secure.stage_timeout = absl::Seconds(120);
  config.limits.max_concurrent_uploads = 2;
  config.has_seed = true;
  config.seed = seed;
  absl::StatusOr<std::unique_ptr<server::Coordinator>> coordinator =
      server::Coordinator::Create(config);
  if (!coordinator.ok()) return fail(coordinator.status());
  std::vector<std::string> dumped_survivors;
  absl::Status dump_status;
  if (!dump_dir.empty()) {
    (*coordinator)->SetSecureSumObserver(
        [&](uint64_t, const secagg::ModVector& sum, const std::vector<std::string>& survivors) {
          dump_status.Update(WriteWords(dump_dir + "/sum.bin", sum));
          dumped_survivors = survivors;
        });
  }
  if (absl::Status s = (*coordinator)->Start(); !s.ok()) return fail(s);

  // Which sites vanish at which stage: a seeded shuffle, so runs repeat.
  std::vector<int> order(clients);
  for (int i = 0; i < clients; ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  std::map<int, DropRequest> vanish;
  size_t next = 0;
  for (const DropRequest& drop : drops) {
    for (int j = 0; j < drop.count; ++j) vanish[order[next++]] = drop;
  }
  absl::Mutex inputs_mu;
  std::map<std::string, secagg::ModVector> inputs;  // only with --dump
  std::vector<std::unique_ptr<ClientThread>> threads;
  for (int i = 0; i < clients; ++i) {
    config::ClientConfig client_config = LoopbackClientConfig(**pki, sites[i], (*coordinator)->port());
    auto trainer = std::make_unique<SyntheticTrainer>(seed * 1000003 + i, 50 + (i * 37) % 100);
    auto setup = [&, i](client::SiteClient& client) {
      auto it = vanish.find(i);
      if (it != vanish.end()) {
        client.SetVanishAt(it->second.stage, [&client] { client.Stop(); });
      }
      if (!dump_dir.empty()) {
        client.SetInputObserver([&, i](uint64_t, const secagg::ModVector& input) {
          absl::MutexLock lock(&inputs_mu);
          inputs.insert_or_assign(sites[i], input);
        });
      }
    };
    threads.push_back(std::make_unique<ClientThread>(std::move(client_config), std::move(trainer), setup));
  }

  // One round: wait until it committed or aborted.
  const std::string db = config.state_dir + "/state.db";
  std::optional<state::RoundRecord> record;
  const absl::Time give_up = absl::Now() + absl::Minutes(30);
  while (!record.has_value() && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(50));
    absl::StatusOr<std::unique_ptr<state::StateStore>> store = state::StateStore::OpenReadOnly(db);
    if (!store.ok()) continue;
    absl::StatusOr<std::vector<state::RoundRecord>> rounds = (*store)->ListRounds(false);
    if (rounds.ok() && !rounds->empty() && rounds->front().status != "started") {
      record = rounds->front();
    }
  }
  (*coordinator)->Shutdown();
  uint64_t bytes = 0;
  // Per client: what a site that took part in every stage sent (the largest count).
  for (auto& thread : threads) bytes = std::max(bytes, thread->client().bytes_sent());
  // Stop every client first, then join them: destroying them one by one waited for each
  // client's current connection attempt in turn (minutes with 1,000 sites reconnecting to
  // the stopped coordinator).
  for (auto& thread : threads) thread->client().Stop();
  threads.clear();
  if (!record.has_value()) return fail(absl::DeadlineExceededError("the round did not end in 30 minutes"));

  const bool committed = record->status == "committed";
  if (!dump_dir.empty()) {
    std::vector<std::string> client_entries;
    for (const auto& [site, input] : inputs) {
      const std::string file = absl::StrCat("input-", site, ".bin");
      dump_status.Update(WriteWords(dump_dir + "/" + file, input));
      client_entries.push_back(absl::StrFormat("{\"id\":\"%s\",\"file\":\"%s\"}", site, file));
    }
    dump_status.Update(WriteFileDurably(dump_dir + "/survivors.txt",
                                        absl::StrCat(absl::StrJoin(dumped_survivors, "\n"), "\n"), 0644));
    const std::string dtype = modulus_bits == 32 ? "uint32" : "uint64";
    const std::string manifest = absl::StrFormat(
        "{\n  \"dtype\": \"%s\",\n  \"byte_order\": \"little\",\n  \"modulus_bits\": %d,\n"
        "  \"length\": %d,\n  \"value_words\": %d,\n  \"weight_word\": %d,\n"
        "  \"clients\": [%s],\n  \"survivors\": %s,\n  \"sum\": %s,\n  \"committed\": %s\n}\n",
        dtype, modulus_bits, params + 1, params, params, absl::StrJoin(client_entries, ", "),
        JsonList(dumped_survivors), committed && secure ? "\"sum.bin\"" : "null",
        committed ? "true" : "false");
    dump_status.Update(WriteFileDurably(dump_dir + "/manifest.json", manifest, 0644));
    if (!dump_status.ok()) return fail(dump_status);
  }
  std::cout << absl::StrFormat(
                   "{\"mode\":\"%s\",\"clients\":%d,\"params\":%d,\"round_seconds\":%.3f,"
                   "\"bytes_per_client\":%d,\"survivors\":%d,\"committed\":%s%s}",
                   secure ? "secure" : "plain", clients, params, record->duration_s,
                   bytes, record->participants.size(),
                   committed ? "true" : "false",
                   committed ? "" : absl::StrCat(",\"reason\":\"", record->reason, "\""))
            << std::endl;
  return committed ? 0 : 1;
}

}  // namespace
}  // namespace cohort::sim

int main(int argc, char** argv) { return cohort::sim::Main(argc, argv); }
