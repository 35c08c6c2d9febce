// bench_secagg_unmask: the coordinator's unmasking cost for a whole SecAgg+ round run in one
// process (common/secagg/local_round.h, no transport), against the raw OpenSSL AES-256-CTR
// keystream rate measured in the same run.
//
//   bench_secagg_unmask [--clients 100] [--params 1000000] [--dropped 10]
//                       [--dropout-tolerance 0.1] [--reps 3]
//
// Two scenarios: --dropped sites vanish before sending their masked input (the coordinator
// must reconstruct their masking keys and regenerate the pairwise masks their neighbours
// added), or after it (only the self masks). Reports CloseUnmask's wall time, the keystream it
// regenerated, and that rate as a fraction of raw AES-CTR generating the same bytes right
// after each round (target >= 0.5; medians over --reps). Timings are reported, never asserted.
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/stats.h"
#include "common/crypto/pki.h"
#include "common/secagg/local_round.h"
#include "common/secagg/neighborhood.h"
#include "common/secagg/prg.h"
#include "common/secagg/secret.h"

namespace cohort::bench {
namespace {

constexpr char kFederation[] = "bench";

// GB/s of raw AES-256-CTR keystream for `bytes` in total, generated model-sized block by
// block into one reused buffer (the work CloseUnmask does, without the folding).
double RawKeystreamGbPerSecond(double bytes, size_t block_bytes) {
  std::vector<uint8_t> buffer(block_bytes);
  double done = 0;
  const auto start = std::chrono::steady_clock::now();
  while (done < bytes) {
    secagg::SecretBytes seed = secagg::RandomSecret(32);
    if (!secagg::RawKeystream(seed, buffer.data(), buffer.size()).ok()) std::abort();
    done += buffer.size();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return done / s / 1e9;
}

int Main(int argc, char** argv) {
  CLI::App app{"Coordinator unmasking cost of one SecAgg+ round vs raw AES-256-CTR"};
  int clients = 100;
  int64_t params = 1000000;
  int dropped = 10;
  double tolerance = 0.1;
  int reps = 3;
  app.add_option("--clients", clients)->check(CLI::Range(3, 2000));
  app.add_option("--params", params)->check(CLI::Range(int64_t{1}, int64_t{1} << 28));
  app.add_option("--dropped", dropped)->check(CLI::Range(0, 1000));
  app.add_option("--dropout-tolerance", tolerance)->check(CLI::Range(0.0, 0.4999));
  app.add_option("--reps", reps)->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);

  const absl::Time now = absl::Now();
  absl::StatusOr<crypto::PemIdentity> ca =
      crypto::CreateCertificateAuthority("bench CA", now - absl::Hours(1), now + absl::Hours(24));
  if (!ca.ok()) return 1;
  std::vector<secagg::LocalSite> sites(clients);
  for (int i = 0; i < clients; ++i) {
    const std::string id = absl::StrFormat("site-%03d", i);
    crypto::CertificateSpec spec;
    spec.common_name = id;
    spec.uris = {crypto::SiteIdentityUri(kFederation, id)};
    spec.not_before = now - absl::Hours(1);
    spec.not_after = now + absl::Hours(24);
    spec.client_auth = true;
    absl::StatusOr<crypto::PemIdentity> identity = crypto::IssueCertificate(*ca, spec);
    if (!identity.ok()) return 1;
    sites[i].credentials = {kFederation, id, identity->cert_pem, identity->key_pem, ca->cert_pem};
    sites[i].input = secagg::ModVector(32, params + 1);
    std::mt19937 rng(i);
    for (auto& w : sites[i].input.words32()) w = rng() & 0xfffff;
  }
  absl::StatusOr<secagg::GraphParameters> graph = secagg::ChooseGraphParameters(clients, tolerance);
  if (!graph.ok()) {
    std::fprintf(stderr, "%s\n", std::string(graph.status().message()).c_str());
    return 2;
  }
  std::printf("clients %d, params %lld, k %d, t %d (%s graph), %d dropped\n", clients,
              static_cast<long long>(params), graph->degree, graph->threshold,
              graph->complete ? "complete" : "Harary", dropped);
  std::printf("%-22s %9s %10s %7s %8s %9s %9s %8s\n", "dropped", "round s", "unmask s",
              "masks", "GB", "GB/s", "raw GB/s", "ratio");
  for (secagg::VanishStage stage :
       {secagg::VanishStage::kMaskedInput, secagg::VanishStage::kUnmask}) {
    std::vector<double> round_s, unmask_s, rates, raw_rates, ratios;
    uint64_t words = 0;
    for (int r = 0; r < reps; ++r) {
      std::mt19937 pick(r + 17);
      std::vector<int> order(clients);
      for (int i = 0; i < clients; ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), pick);
      for (auto& site : sites) site.vanish = secagg::VanishStage::kNever;
      for (int j = 0; j < dropped; ++j) sites[order[j]].vanish = stage;
      v1::SecAggConfig config;
      config.set_session_id(std::string(secagg::RandomSecret(32).view()));
      config.set_graph_seed(std::string(secagg::RandomSecret(32).view()));
      for (const auto& site : sites) config.add_cohort(site.credentials.site_id);
      config.set_degree(graph->degree);
      config.set_threshold(graph->threshold);
      config.set_bits(20);
      config.set_clip_range(1.0);
      config.set_modulus_bits(32);
      config.set_weight_cap(1000);
      config.set_vector_length(params + 1);
      const auto start = std::chrono::steady_clock::now();
      secagg::LocalRoundResult result =
          secagg::RunLocalRound(config, kFederation, r + 1, ca->cert_pem, sites, absl::Now());
      round_s.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      if (!result.status.ok()) {
        std::fprintf(stderr, "round aborted: %s\n", std::string(result.status.message()).c_str());
        return 1;
      }
      unmask_s.push_back(absl::ToDoubleSeconds(result.unmask_time));
      words = result.regenerated_mask_words;
      rates.push_back(words * 4.0 / absl::ToDoubleSeconds(result.unmask_time) / 1e9);
      // The baseline right after, under the same load: the same bytes of raw keystream.
      raw_rates.push_back(RawKeystreamGbPerSecond(words * 4.0, (params + 1) * 4));
      ratios.push_back(rates.back() / raw_rates.back());
    }
    const double ratio = Median(ratios);
    std::printf("%-22s %9.2f %10.3f %7llu %8.2f %9.2f %9.2f %8.2f %s\n",
                stage == secagg::VanishStage::kMaskedInput ? "before masked input"
                                                           : "after masked input",
                Median(round_s), Median(unmask_s),
                static_cast<unsigned long long>(words / (params + 1)), words * 4.0 / 1e9,
                Median(rates), Median(raw_rates), ratio,
                ratio >= 0.5 ? "PASS (>= 0.5)" : "MISS (< 0.5)");
  }
  return 0;
}

}  // namespace
}  // namespace cohort::bench

int main(int argc, char** argv) { return cohort::bench::Main(argc, argv); }
