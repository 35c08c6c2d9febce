// cohortctl privacy: the (epsilon, delta) guarantee of DP-SGD style training (the Sampled
// Gaussian Mechanism composed over steps, Rényi DP accountant), and the noise multiplier
// needed for a target epsilon.
#include <cmath>
#include <cstdint>
#include <iostream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/dp/accountant.h"
#include "common/dp/calibration.h"
#include "tools/commands.h"

namespace cohort::tools {
namespace {

struct PrivacyArgs {
  double sample_rate = 0;
  double noise_multiplier = 0;
  double target_epsilon = 0;
  int64_t steps = 0;
  double delta = 0;
  bool json = false;
};

// Prints `cohortctl privacy <sub>: <message>` and exits 2 for bad arguments
// (InvalidArgument), 1 for anything else.
[[noreturn]] void Fail(const std::string& sub, const absl::Status& status) {
  std::cerr << "cohortctl privacy " << sub << ": " << status.message() << "\n";
  throw CLI::RuntimeError(status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1);
}

// A JSON number with enough digits to round-trip the values shown (null if not finite).
std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.10g", v);
}

void RunEpsilon(const PrivacyArgs& args) {
  absl::StatusOr<dp::EpsilonAtOrder> result =
      dp::ComputeEpsilon(args.sample_rate, args.noise_multiplier, args.steps, args.delta);
  if (!result.ok()) Fail("epsilon", result.status());
  if (args.json) {
    std::cout << "{\"epsilon\": " << JsonNumber(result->epsilon)
              << ", \"order\": " << JsonNumber(result->order) << "}\n";
    return;
  }
  std::cout << absl::StrFormat(
      "epsilon = %.6f at delta = %g (RDP order %g; sample rate %g, noise multiplier %g, "
      "%d steps)\n",
      result->epsilon, args.delta, result->order, args.sample_rate, args.noise_multiplier,
      args.steps);
}

void RunNoise(const PrivacyArgs& args) {
  absl::StatusOr<dp::Calibration> result =
      dp::CalibrateNoise(args.target_epsilon, args.sample_rate, args.steps, args.delta);
  if (!result.ok()) Fail("noise", result.status());
  if (args.json) {
    std::cout << "{\"noise_multiplier\": " << JsonNumber(result->noise_multiplier)
              << ", \"epsilon\": " << JsonNumber(result->epsilon) << "}\n";
    return;
  }
  std::cout << absl::StrFormat(
      "noise multiplier = %.6f gives epsilon = %.6f <= %g at delta = %g (sample rate %g, "
      "%d steps)\n",
      result->noise_multiplier, result->epsilon, args.target_epsilon, args.delta, args.sample_rate,
      args.steps);
}

}  // namespace

void AddPrivacyCommands(CLI::App& app) {
  auto* privacy = app.add_subcommand(
      "privacy", "Differential privacy accounting for the Sampled Gaussian Mechanism (RDP)");
  privacy->require_subcommand(1);

  auto* epsilon = privacy->add_subcommand(
      "epsilon", "Epsilon after STEPS noisy steps at sample rate Q and noise multiplier S");
  auto eps_args = std::make_shared<PrivacyArgs>();
  epsilon->add_option("--sample-rate", eps_args->sample_rate, "Sampling probability q, in (0, 1]")
      ->required();
  epsilon
      ->add_option("--noise-multiplier", eps_args->noise_multiplier,
                   "Noise standard deviation / clipping norm, > 0")
      ->required();
  epsilon->add_option("--steps", eps_args->steps, "Number of steps, >= 1")->required();
  epsilon->add_option("--delta", eps_args->delta, "Target delta, in (0, 1)")->required();
  epsilon->add_flag("--json", eps_args->json, "Print {\"epsilon\": ..., \"order\": ...}");
  epsilon->callback([eps_args]() { RunEpsilon(*eps_args); });

  auto* noise = privacy->add_subcommand(
      "noise", "Smallest noise multiplier reaching a target epsilon after STEPS steps");
  auto noise_args = std::make_shared<PrivacyArgs>();
  noise->add_option("--target-epsilon", noise_args->target_epsilon, "Target epsilon, > 0")
      ->required();
  noise->add_option("--sample-rate", noise_args->sample_rate, "Sampling probability q, in (0, 1]")
      ->required();
  noise->add_option("--steps", noise_args->steps, "Number of steps, >= 1")->required();
  noise->add_option("--delta", noise_args->delta, "Target delta, in (0, 1)")->required();
  noise->add_flag("--json", noise_args->json,
                  "Print {\"noise_multiplier\": ..., \"epsilon\": ...}");
  noise->callback([noise_args]() { RunNoise(*noise_args); });
}

}  // namespace cohort::tools
