// bench_secagg_masking: the cost of secure-aggregation masking against the raw OpenSSL
// AES-256-CTR keystream rate measured in the same run.
//
//   1. raw keystream: RawKeystream into a 4 MiB buffer (the baseline, GB/s);
//   2. ExpandMask and ApplyMask (add, subtract) on a --words vector mod 2^32 and mod 2^64,
//      GB/s of keystream and ratio to raw (target: ApplyMask >= 80% of raw);
//   3. client masking: k pairwise ApplyMask + 1 self mask on a --words vector mod 2^32 against
//      k + 1 raw keystreams of the vector's byte size, k in {8, 16, 32} (target: <= 1.3x);
//   4. Quantize of --words floats (16 bits, mod 2^32).
//
// Every measurement is repeated --reps times with the variants interleaved; medians are
// printed. Timings are reported, never asserted.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "bench/stats.h"
#include "common/secagg/mod_vector.h"
#include "common/secagg/prg.h"
#include "common/secagg/quantizer.h"
#include "common/secagg/secret.h"

namespace cohort::bench {
namespace {

using secagg::MaskSign;
using secagg::ModVector;
using secagg::SecretBytes;

constexpr size_t kRawBufferBytes = size_t{4} << 20;

void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, std::string(s.message()).c_str());
    std::exit(1);
  }
}

double Seconds(const std::function<void()>& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A named measurement: `bytes` of keystream per call, the seconds of each repetition.
struct Timed {
  Timed(std::string name, double bytes, std::function<void()> run)
      : name(std::move(name)), bytes(bytes), run(std::move(run)) {}
  std::string name;
  double bytes;
  std::function<void()> run;
  std::vector<double> seconds;
};

// Runs every variant once as warm-up, then `reps` rounds with the variants interleaved.
void Measure(std::vector<Timed>* variants, int reps) {
  for (Timed& t : *variants) t.run();
  for (int r = 0; r < reps; ++r) {
    for (Timed& t : *variants) t.seconds.push_back(Seconds(t.run));
  }
}

const char* Verdict(bool met) { return met ? "PASS" : "MISS"; }

}  // namespace
}  // namespace cohort::bench

int main(int argc, char** argv) {
  using namespace cohort;         // NOLINT: a benchmark driver
  using namespace cohort::bench;  // NOLINT
  CLI::App app{"bench_secagg_masking: mask PRG throughput vs raw AES-256-CTR"};
  int reps = 9;
  size_t words = size_t{1} << 20;
  app.add_option("--reps", reps, "Repetitions per measurement (the median is printed)")
      ->check(CLI::PositiveNumber);
  app.add_option("--words", words, "Vector length (model parameters)")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  std::vector<SecretBytes> seeds;
  for (int i = 0; i < 33; ++i) seeds.push_back(secagg::RandomSecret(32));
  std::vector<uint8_t> raw(kRawBufferBytes);
  ModVector v32(32, words), v64(64, words);

  // ---- 1 and 2: keystream rates --------------------------------------------------------
  std::vector<Timed> rates;
  rates.push_back({"raw AES-256-CTR (4 MiB buffer)", static_cast<double>(raw.size()), [&] {
                     Check(secagg::RawKeystream(seeds[0], raw.data(), raw.size()), "raw");
                   }});
  rates.push_back({"ExpandMask mod 2^32", static_cast<double>(v32.byte_size()),
                   [&] { Check(secagg::ExpandMask(seeds[1], &v32), "expand32"); }});
  rates.push_back({"ApplyMask add mod 2^32", static_cast<double>(v32.byte_size()),
                   [&] { Check(secagg::ApplyMask(seeds[2], MaskSign::kAdd, &v32), "apply32"); }});
  rates.push_back(
      {"ApplyMask subtract mod 2^32", static_cast<double>(v32.byte_size()),
       [&] { Check(secagg::ApplyMask(seeds[3], MaskSign::kSubtract, &v32), "apply32"); }});
  rates.push_back({"ExpandMask mod 2^64", static_cast<double>(v64.byte_size()),
                   [&] { Check(secagg::ExpandMask(seeds[4], &v64), "expand64"); }});
  rates.push_back({"ApplyMask add mod 2^64", static_cast<double>(v64.byte_size()),
                   [&] { Check(secagg::ApplyMask(seeds[5], MaskSign::kAdd, &v64), "apply64"); }});
  Measure(&rates, reps);

  std::printf("bench_secagg_masking: %zu words, median of %d reps\n\n", words, reps);
  std::printf("%-34s %10s %10s %10s %10s\n", "keystream", "MiB/call", "ms/call", "GB/s",
              "vs raw");
  const double raw_rate = rates[0].bytes / Median(rates[0].seconds);
  std::vector<double> rate(rates.size());
  for (size_t i = 0; i < rates.size(); ++i) {
    const double s = Median(rates[i].seconds);
    rate[i] = rates[i].bytes / s;
    std::printf("%-34s %10.2f %10.3f %10.2f %10.3f\n", rates[i].name.c_str(),
                rates[i].bytes / (1 << 20), 1e3 * s, rate[i] / 1e9, rate[i] / raw_rate);
  }
  for (size_t i : {2, 3, 5}) {
    std::printf("target %-27s >= 0.80 of raw: %.3f %s\n", rates[i].name.c_str(),
                rate[i] / raw_rate, Verdict(rate[i] / raw_rate >= 0.80));
  }

  // ---- 3: client masking ---------------------------------------------------------------
  std::printf("\nclient masking: k pairwise + 1 self ApplyMask on %zu words mod 2^32 vs k+1 raw "
              "keystreams of %.2f MiB\n",
              words, static_cast<double>(v32.byte_size()) / (1 << 20));
  std::printf("%-6s %12s %12s %10s %18s\n", "k", "masking ms", "raw ms", "ratio",
              "target <= 1.30");
  std::vector<uint8_t> raw_model(v32.byte_size());
  for (int k : {8, 16, 32}) {
    std::vector<Timed> client;
    client.push_back({"masking", 0, [&] {
                        for (int j = 0; j < k; ++j) {
                          // Pairwise masks: added for half of the peers, subtracted for the rest.
                          const MaskSign sign = j % 2 ? MaskSign::kSubtract : MaskSign::kAdd;
                          Check(secagg::ApplyMask(seeds[j], sign, &v32), "pairwise");
                        }
                        Check(secagg::ApplyMask(seeds[32], MaskSign::kAdd, &v32), "self");
                      }});
    client.push_back({"raw", 0, [&] {
                        for (int j = 0; j <= k; ++j) {
                          Check(secagg::RawKeystream(seeds[j], raw_model.data(),
                                                     raw_model.size()),
                                "raw");
                        }
                      }});
    Measure(&client, reps);
    const double masking = Median(client[0].seconds), baseline = Median(client[1].seconds);
    std::printf("%-6d %12.2f %12.2f %10.3f %18s\n", k, 1e3 * masking, 1e3 * baseline,
                masking / baseline, Verdict(masking / baseline <= 1.30));
  }

  // ---- 4: quantization -----------------------------------------------------------------
  secagg::QuantizationParams params;
  params.bits = 16;
  params.clip_range = 1.0;
  params.modulus_bits = 32;
  std::vector<float> values(words);
  for (size_t i = 0; i < words; ++i) {
    values[i] = static_cast<float>(static_cast<double>(i % 2001) / 1000.0 - 1.0);
  }
  const SecretBytes rounding_seed = secagg::RandomSecret(32);
  std::vector<Timed> quantize;
  quantize.push_back({"quantize", 0, [&] {
                        Check(secagg::Quantize(values, params, rounding_seed, &v32), "quantize");
                      }});
  Measure(&quantize, reps);
  const double q = Median(quantize[0].seconds);
  std::printf("\nQuantize %zu floats (16 bits, mod 2^32): %.2f ms, %.1f M values/s\n", words,
              1e3 * q, static_cast<double>(words) / q / 1e6);
  return 0;
}
