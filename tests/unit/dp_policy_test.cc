// Unit tests for dp::CheckDpTask: which rule of a site's privacy policy refuses a task (the
// kind labels cohort_client_refusals_total), and that an allowed task is allowed.
#include <sqlite3.h>

#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "common/dp/accountant.h"
#include "common/dp/ledger.h"
#include "tests/support/temp_dir.h"

namespace cohort::dp {
namespace {

using ::cohort::testing::TempDir;

// A policy: epsilon 3 at delta 1e-5, sigma >= 0.8, clip <= 2.
SitePrivacyPolicy Policy() { return SitePrivacyPolicy{3.0, 1e-5, 0.8, 2.0}; }

// An initialised, empty ledger of site-a in `dir`.
std::unique_ptr<PrivacyLedger> EmptyLedger(const TempDir& dir) {
  const std::string path = dir.File("ledger.db");
  REQUIRE(PrivacyLedger::Initialize(path, "site-a").ok());
  absl::StatusOr<std::unique_ptr<PrivacyLedger>> ledger = PrivacyLedger::Open(path, "site-a");
  REQUIRE(ledger.ok());
  return std::move(*ledger);
}

}  // namespace

TEST_CASE("CheckDpTask allows a task within the policy and says no rule refused it", "[dp]") {
  TempDir dir;
  std::unique_ptr<PrivacyLedger> ledger = EmptyLedger(dir);
  DpRefusal refusal = DpRefusal::kBudget;
  // 10 steps at q = 0.1 with sigma 5: far within epsilon 3.
  absl::Status status = CheckDpTask(Policy(), *ledger, /*task_uses_dp=*/true, 5.0, 1.0,
                                    PlanDpRound(100, 10, 1), &refusal);
  INFO(status.ToString());
  CHECK(status.ok());
  CHECK(refusal == DpRefusal::kNone);
}

TEST_CASE("CheckDpTask names the rule that refused a task", "[dp]") {
  TempDir dir;
  std::unique_ptr<PrivacyLedger> ledger = EmptyLedger(dir);
  struct Ask {
    bool dp;
    double sigma;
    double clip;
    int64_t epochs;
    DpRefusal want;
    const char* reason;
  };
  // 30 epochs at q = 0.1 and sigma 0.8 cost more than epsilon 3.
  absl::StatusOr<EpsilonAtOrder> thirty_epochs = ComputeEpsilon(0.1, 0.8, 300, 1e-5);
  REQUIRE(thirty_epochs.ok());
  REQUIRE(thirty_epochs->epsilon > Policy().max_epsilon);
  const Ask ask = GENERATE(Ask{false, 0, 0, 1, DpRefusal::kNotDp, "requires DP-SGD"},
                           Ask{true, 0.5, 1.0, 1, DpRefusal::kNoise, "noise_multiplier >= 0.8"},
                           Ask{true, 1.0, 5.0, 1, DpRefusal::kClip, "max_grad_norm <= 2"},
                           Ask{true, 0.8, 1.0, 30, DpRefusal::kBudget, "over its budget"});
  INFO(ask.reason);
  DpRefusal refusal = DpRefusal::kNone;
  absl::Status status = CheckDpTask(Policy(), *ledger, ask.dp, ask.sigma, ask.clip,
                                    PlanDpRound(100, 10, ask.epochs), &refusal);
  CHECK(status.code() == absl::StatusCode::kPermissionDenied);
  CHECK_THAT(std::string(status.message()), Catch::Contains(ask.reason));
  CHECK(refusal == ask.want);
}

TEST_CASE("CheckDpTask refuses with kind ledger when the ledger cannot be read", "[dp]") {
  TempDir dir;
  std::unique_ptr<PrivacyLedger> ledger = EmptyLedger(dir);
  // Damage the open ledger from another connection: its rounds table disappears.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(dir.File("ledger.db").c_str(), &db) == SQLITE_OK);
  CHECK(sqlite3_exec(db, "DROP TABLE rounds", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  DpRefusal refusal = DpRefusal::kNone;
  absl::Status status =
      CheckDpTask(Policy(), *ledger, true, 1.0, 1.0, PlanDpRound(100, 10, 1), &refusal);
  CHECK(status.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(status.message()), Catch::Contains("privacy ledger"));
  CHECK(refusal == DpRefusal::kLedger);
}

}  // namespace cohort::dp
