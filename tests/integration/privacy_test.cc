// The site's privacy policy and ledger: the budget is the site's, and it is final.
#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

#include "common/dp/ledger.h"
#include "client/torch_trainer.h"
#include "common/data/csv.h"
#include "common/data/split.h"
#include "common/dp/accountant.h"
#include "common/dp/calibration.h"
#include "common/state/state_store.h"
#include "tests/integration/harness.h"

namespace cohort::testing {
namespace {

using dp::LedgerEntry;
using dp::PrivacyLedger;

LedgerEntry Entry(uint64_t round, double q, double sigma, int64_t steps) {
  LedgerEntry e;
  e.round = round;
  e.sample_rate = q;
  e.noise_multiplier = sigma;
  e.steps = steps;
  e.max_grad_norm = 1.0;
  e.delta = 1e-5;
  e.epsilon_after = 0;
  e.recorded_at = absl::Now();
  return e;
}

}  // namespace

TEST_CASE("The privacy ledger fails closed", "[privacy]") {
  TempDir dir;
  const std::string path = dir.File("ledger.db");
  SECTION("a missing ledger is refused, and names the command that creates it") {
    auto ledger = PrivacyLedger::Open(path, "site-a");
    CHECK(ledger.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(ledger.status().message()), Catch::Contains("cohortctl ledger init"));
    CHECK_FALSE(std::filesystem::exists(path));  // never created behind the operator's back
  }
  SECTION("a file that is not a database is refused") {
    WriteTextFile(path, "this is not a ledger\n");
    auto ledger = PrivacyLedger::Open(path, "site-a");
    CHECK(ledger.status().code() == absl::StatusCode::kFailedPrecondition);
  }
  SECTION("another site's ledger is refused") {
    REQUIRE(PrivacyLedger::Initialize(path, "site-b").ok());
    auto ledger = PrivacyLedger::Open(path, "site-a");
    CHECK(ledger.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(ledger.status().message()), Catch::Contains("site-b"));
  }
  SECTION("a damaged ledger is refused") {
    REQUIRE(PrivacyLedger::Initialize(path, "site-a").ok());
    {
      auto ledger = PrivacyLedger::Open(path, "site-a");
      REQUIRE(ledger.ok());
      for (uint64_t r = 1; r <= 50; ++r) REQUIRE((*ledger)->Record(Entry(r, 0.1, 1.0, 10)).ok());
    }
    // Overwrite part of the database file's pages.
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(100);
    std::string garbage(3000, '\xAB');
    file.write(garbage.data(), garbage.size());
    file.close();
    auto ledger = PrivacyLedger::Open(path, "site-a");
    CHECK(ledger.status().code() == absl::StatusCode::kFailedPrecondition);
  }
  SECTION("an existing ledger is never re-initialised") {
    REQUIRE(PrivacyLedger::Initialize(path, "site-a").ok());
    CHECK(PrivacyLedger::Initialize(path, "site-a").code() == absl::StatusCode::kAlreadyExists);
  }
}

TEST_CASE("The ledger's epsilon is the RDP composition of its rounds", "[privacy]") {
  TempDir dir;
  REQUIRE(PrivacyLedger::Initialize(dir.File("ledger.db"), "site-a").ok());
  auto ledger = PrivacyLedger::Open(dir.File("ledger.db"), "site-a");
  REQUIRE(ledger.ok());
  auto empty = (*ledger)->Epsilon(1e-5);
  REQUIRE(empty.ok());
  CHECK(*empty == 0.0);
  REQUIRE((*ledger)->Record(Entry(1, 0.01, 1.1, 600)).ok());
  REQUIRE((*ledger)->Record(Entry(2, 0.01, 1.1, 400)).ok());
  auto spent = (*ledger)->Epsilon(1e-5);
  REQUIRE(spent.ok());
  // 1000 steps at q = 0.01, sigma = 1.1: the reference value 1.7118.
  CHECK(*spent == Approx(1.7118).margin(5e-5));
  auto projected = (*ledger)->Epsilon(1e-5, 0.05, 2.0, 100);
  REQUIRE(projected.ok());
  dp::RdpAccountant accountant;
  accountant.AddSteps(0.01, 1.1, 1000);
  accountant.AddSteps(0.05, 2.0, 100);
  auto want = accountant.GetEpsilon(1e-5);
  REQUIRE(want.ok());
  CHECK(*projected == Approx(want->epsilon).epsilon(1e-12));
  auto entries = (*ledger)->Entries();
  REQUIRE(entries.ok());
  REQUIRE(entries->size() == 2);
  CHECK((*entries)[1].round == 2);
  CHECK((*entries)[1].steps == 400);
}

namespace {

// hospital-a on its third of the breast cancer data, with LibTorch.
std::unique_ptr<client::Trainer> WdbcTrainer() {
  auto all = data::LoadCsv(SourcePath("data/wdbc.csv"), "malignant");
  REQUIRE(all.ok());
  auto parts = data::PartitionRows(all->labels, 3, *data::ParsePartitionScheme("iid"), 1);
  REQUIRE(parts.ok());
  data::TrainTestSplit split = data::SplitTrainTest(all->Subset((*parts)[0]), 0.2, 1);
  data::Standardizer standardizer = data::Standardizer::Fit(split.train);
  standardizer.Apply(&split.train);
  standardizer.Apply(&split.test);
  return client::MakeTorchTrainerFromSplit(std::move(split), 1);
}

}  // namespace

TEST_CASE("A site refuses rounds past its budget, and the coordinator records why",
          "[privacy]") {
  Federation fed({"hospital-a", "hospital-b"});
  fed.config().model.arch = "logreg";
  fed.config().model.inputs = 30;
  fed.config().rounds.count = 3;
  fed.config().rounds.min_clients = 1;
  fed.config().training.batch_size = 32;
  fed.config().privacy.enabled = true;
  fed.config().privacy.noise_multiplier = 1.0;
  fed.config().privacy.max_grad_norm = 1.0;
  fed.Start();

  TempDir site_dir;
  config::ClientConfig site = fed.ClientConfigFor("hospital-a");
  site.privacy.enabled = true;
  site.privacy.delta = 1e-5;
  site.privacy.min_noise_multiplier = 0.5;
  site.privacy.max_grad_norm = 2.0;
  site.privacy.ledger = site_dir.File("ledger.db");
  REQUIRE(PrivacyLedger::Initialize(site.privacy.ledger, "hospital-a").ok());
  // A budget for exactly one round: between the epsilon of one and of two rounds, computed
  // as the site will (RDP composes sublinearly, so two rounds cost less than twice one).
  const dp::DpRoundPlan plan = dp::PlanDpRound(WdbcTrainer()->train_examples(), 32, 1);
  auto one_round = dp::ComputeEpsilon(plan.sample_rate, 1.0, plan.steps, 1e-5);
  auto two_rounds = dp::ComputeEpsilon(plan.sample_rate, 1.0, 2 * plan.steps, 1e-5);
  REQUIRE((one_round.ok() && two_rounds.ok()));
  site.privacy.max_epsilon = (one_round->epsilon + two_rounds->epsilon) / 2;

  ClientRunner a(site, WdbcTrainer());
  ClientRunner b(fed.ClientConfigFor("hospital-b"),
                 std::make_unique<ScriptedTrainer>(0.0f, 10));
  REQUIRE(fed.coordinator().Wait().ok());
  REQUIRE(a.Join().ok());

  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), false);
  REQUIRE(rounds.size() == 3);
  CHECK(rounds[0].participants == std::vector<std::string>{"hospital-a", "hospital-b"});
  for (size_t i = 1; i < 3; ++i) {
    CHECK(rounds[i].participants == std::vector<std::string>{"hospital-b"});
    REQUIRE(rounds[i].drop_reasons.count("hospital-a") == 1);
    CHECK_THAT(rounds[i].drop_reasons.at("hospital-a"), Catch::Contains("over its budget"));
  }
  // The ledger holds the one round that left the site, and its epsilon is within budget.
  auto ledger = PrivacyLedger::Open(site.privacy.ledger, "hospital-a");
  REQUIRE(ledger.ok());
  auto entries = (*ledger)->Entries();
  REQUIRE(entries.ok());
  REQUIRE(entries->size() == 1);
  CHECK((*entries)[0].round == 1);
  CHECK((*entries)[0].steps == plan.steps);
  CHECK((*entries)[0].epsilon_after == Approx(one_round->epsilon).epsilon(1e-9));
  CHECK(a.client().spent_epsilon() <= site.privacy.max_epsilon);
  // The coordinator's round history shows the same epsilon for the site's round.
  REQUIRE(rounds[0].site_epsilon.count("hospital-a") == 1);
  CHECK(rounds[0].site_epsilon.at("hospital-a").steps == plan.steps);
  CHECK(rounds[0].site_epsilon.at("hospital-a").epsilon ==
        Approx(one_round->epsilon).epsilon(1e-9));
  CHECK(rounds[0].site_epsilon.count("hospital-b") == 0);  // it trained without DP
}

TEST_CASE("A site refuses a coordinator that asks for less noise or a larger clip, or no DP",
          "[privacy]") {
  struct Ask {
    bool dp;
    double sigma;
    double clip;
    const char* reason;
  };
  for (const Ask& ask : std::vector<Ask>{{true, 0.3, 1.0, "noise_multiplier >= 0.8"},
                                         {true, 1.0, 5.0, "max_grad_norm <= 2"},
                                         {false, 0, 0, "requires DP-SGD"}}) {
    Federation fed({"hospital-a", "hospital-b"});
    fed.config().model.inputs = 30;
    fed.config().rounds.count = 1;
    fed.config().rounds.min_clients = 1;
    fed.config().privacy.enabled = ask.dp;
    fed.config().privacy.noise_multiplier = ask.sigma;
    fed.config().privacy.max_grad_norm = ask.clip;
    fed.Start();
    TempDir site_dir;
    config::ClientConfig site = fed.ClientConfigFor("hospital-a");
    site.privacy = {true, 10.0, 1e-5, 0.8, 2.0, site_dir.File("ledger.db")};
    REQUIRE(PrivacyLedger::Initialize(site.privacy.ledger, "hospital-a").ok());
    ClientRunner a(site, WdbcTrainer());
    ClientRunner b(fed.ClientConfigFor("hospital-b"),
                   std::make_unique<ScriptedTrainer>(0.0f, 10));
    REQUIRE(fed.coordinator().Wait().ok());
    std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), false);
    REQUIRE(rounds.size() == 1);
    REQUIRE(rounds[0].drop_reasons.count("hospital-a") == 1);
    CHECK_THAT(rounds[0].drop_reasons.at("hospital-a"), Catch::Contains(ask.reason));
    auto ledger = PrivacyLedger::Open(site.privacy.ledger, "hospital-a");
    REQUIRE(ledger.ok());
    auto entries = (*ledger)->Entries();
    REQUIRE(entries.ok());
    CHECK(entries->empty());  // nothing left the site
  }
}

TEST_CASE("A site with a privacy policy and no ledger does not train at all", "[privacy]") {
  Federation fed({"hospital-a"});
  fed.config().rounds.count = 1;
  fed.config().rounds.min_clients = 1;
  fed.Start();
  TempDir site_dir;
  config::ClientConfig site = fed.ClientConfigFor("hospital-a");
  site.privacy = {true, 3.0, 1e-5, 0.8, 1.0, site_dir.File("missing-ledger.db")};
  ClientRunner a(site, std::make_unique<ScriptedTrainer>(1.0f, 10));
  absl::Status status = a.Join();
  CHECK(status.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(status.message()), Catch::Contains("does not exist"));
  fed.StopCoordinator();
}

TEST_CASE("The coordinator plans the noise that keeps every site within a target epsilon",
          "[privacy]") {
  Federation fed({"hospital-a", "hospital-b"});
  fed.config().model.arch = "logreg";
  fed.config().model.inputs = 30;
  fed.config().rounds.count = 3;
  fed.config().training.batch_size = 16;
  fed.config().privacy.enabled = true;
  fed.config().privacy.target_epsilon = 2.0;
  fed.config().privacy.max_grad_norm = 1.0;
  fed.Start();
  ClientRunner a(fed.ClientConfigFor("hospital-a"), WdbcTrainer());
  // hospital-b is the small site: 12 examples at batch 16, so q = 1 for it.
  ClientRunner b(fed.ClientConfigFor("hospital-b"),
                 std::make_unique<ScriptedTrainer>(0.0f, 12));
  REQUIRE(fed.coordinator().Wait().ok());
  std::vector<state::RoundRecord> rounds = ReadRounds(fed.state_dir(), true);
  REQUIRE(rounds.size() == 3);
  // Only hospital-a runs real DP-SGD (the scripted site reports none), and its epsilon after
  // the last round stays within the target; sigma was planned for the most exposed site.
  REQUIRE(rounds.back().site_epsilon.count("hospital-a") == 1);
  const state::SiteEpsilon& last = rounds.back().site_epsilon.at("hospital-a");
  CHECK(last.epsilon <= 2.0);
  auto small_site = dp::CalibrateNoise(2.0, 1.0, 3, 1e-5);
  REQUIRE(small_site.ok());
  CHECK(last.noise_multiplier == Approx(small_site->noise_multiplier).epsilon(1e-12));
}

}  // namespace cohort::testing
