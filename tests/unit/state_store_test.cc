// Unit tests for common/state: the coordinator's SQLite round history.
#include <catch2/catch.hpp>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "common/state/state_store.h"
#include "tests/support/temp_dir.h"

namespace cohort::state {
namespace {

using cohort::testing::TempDir;

// A time with an exactly representable fraction, so it round-trips through a REAL column.
const absl::Time kStart = absl::FromUnixSeconds(1700000000) + absl::Milliseconds(250);

// started_at is stored as REAL seconds since the epoch: about 0.24 us of resolution today.
bool SameTime(absl::Time a, absl::Time b) {
  return absl::AbsDuration(a - b) < absl::Microseconds(1);
}

std::unique_ptr<StateStore> OpenOrDie(const std::string& path) {
  absl::StatusOr<std::unique_ptr<StateStore>> store = StateStore::Open(path);
  INFO(store.status().ToString());
  REQUIRE(store.ok());
  REQUIRE(*store != nullptr);
  return std::move(*store);
}

std::vector<RoundRecord> ListOrDie(StateStore& store, bool committed_only) {
  absl::StatusOr<std::vector<RoundRecord>> rounds = store.ListRounds(committed_only);
  INFO(rounds.status().ToString());
  REQUIRE(rounds.ok());
  return *rounds;
}

uint64_t LastOrDie(StateStore& store) {
  absl::StatusOr<uint64_t> last = store.LastRoundNumber();
  INFO(last.status().ToString());
  REQUIRE(last.ok());
  return *last;
}

RoundRecord FullRecord(uint64_t round) {
  RoundRecord r;
  r.round = round;
  r.duration_s = 12.5;
  r.participants = {"hospital-a", "hospital_b", "clinic.3"};
  r.dropped = {"site-d"};
  r.examples = 1234;
  r.train_loss = 0.6931;
  r.test_loss = 0.5;
  r.test_accuracy = 0.875;
  r.test_examples = 321;
  r.checkpoint = "round-000007.pt";
  return r;
}

TEST_CASE("StateStore round-trips every field of a committed round", "[state]") {
  TempDir dir;
  std::unique_ptr<StateStore> store = OpenOrDie(dir.File("state.db"));
  REQUIRE(store->BeginRound(7, kStart).ok());
  REQUIRE(store->CommitRound(FullRecord(7)).ok());

  std::vector<RoundRecord> rounds = ListOrDie(*store, false);
  REQUIRE(rounds.size() == 1);
  const RoundRecord& r = rounds[0];
  CHECK(r.round == 7);
  CHECK(r.status == "committed");
  CHECK(SameTime(r.started_at, kStart));
  CHECK(r.duration_s == 12.5);
  CHECK(r.participants == std::vector<std::string>{"hospital-a", "hospital_b", "clinic.3"});
  CHECK(r.dropped == std::vector<std::string>{"site-d"});
  CHECK(r.examples == 1234);
  REQUIRE(r.train_loss.has_value());
  CHECK(*r.train_loss == 0.6931);
  REQUIRE(r.test_loss.has_value());
  CHECK(*r.test_loss == 0.5);
  REQUIRE(r.test_accuracy.has_value());
  CHECK(*r.test_accuracy == 0.875);
  CHECK(r.test_examples == 321);
  CHECK(r.checkpoint == "round-000007.pt");
  CHECK(r.reason.empty());
}

TEST_CASE("StateStore keeps unset metrics as null and empty lists as empty", "[state]") {
  TempDir dir;
  std::unique_ptr<StateStore> store = OpenOrDie(dir.File("state.db"));
  REQUIRE(store->BeginRound(1, kStart).ok());
  RoundRecord r;
  r.round = 1;
  r.participants = {"only-site"};
  r.train_loss = 0.0;  // zero is a value, not null
  REQUIRE(store->CommitRound(r).ok());

  std::vector<RoundRecord> rounds = ListOrDie(*store, true);
  REQUIRE(rounds.size() == 1);
  CHECK(rounds[0].participants == std::vector<std::string>{"only-site"});
  CHECK(rounds[0].dropped.empty());
  REQUIRE(rounds[0].train_loss.has_value());
  CHECK(*rounds[0].train_loss == 0.0);
  CHECK_FALSE(rounds[0].test_loss.has_value());
  CHECK_FALSE(rounds[0].test_accuracy.has_value());
  CHECK(rounds[0].examples == 0);
  CHECK(rounds[0].test_examples == 0);
  CHECK(rounds[0].checkpoint.empty());
}

TEST_CASE("StateStore lists a begun round as started until it is committed", "[state]") {
  TempDir dir;
  std::unique_ptr<StateStore> store = OpenOrDie(dir.File("state.db"));
  REQUIRE(store->BeginRound(3, kStart).ok());
  std::vector<RoundRecord> rounds = ListOrDie(*store, false);
  REQUIRE(rounds.size() == 1);
  CHECK(rounds[0].status == "started");
  CHECK(SameTime(rounds[0].started_at, kStart));
  CHECK(rounds[0].participants.empty());
  CHECK_FALSE(rounds[0].train_loss.has_value());
  CHECK(ListOrDie(*store, true).empty());
}

TEST_CASE("Rounds left started by a killed coordinator are aborted on reopen, numbers kept",
          "[state]") {
  TempDir dir;
  {
    std::unique_ptr<StateStore> store = OpenOrDie(dir.File("state.db"));
    REQUIRE(store->BeginRound(1, kStart).ok());
    RoundRecord committed;
    committed.round = 1;
    committed.checkpoint = "checkpoints/round-000001.pt";
    REQUIRE(store->CommitRound(committed).ok());
    REQUIRE(store->BeginRound(2, kStart + absl::Seconds(5)).ok());
    // The process dies here: round 2 stays 'started'.
  }
  std::unique_ptr<StateStore> store = OpenOrDie(dir.File("state.db"));
  absl::StatusOr<int> aborted =
      store->AbortInterruptedRounds(kStart + absl::Seconds(9), "interrupted by a crash");
  REQUIRE(aborted.ok());
  CHECK(*aborted == 1);
  std::vector<RoundRecord> rounds = ListOrDie(*store, false);
  REQUIRE(rounds.size() == 2);
  CHECK(rounds[0].status == "committed");
  CHECK(rounds[1].status == "aborted");
  CHECK(rounds[1].reason == "interrupted by a crash");
  CHECK(rounds[1].duration_s == Approx(4.0));
  // The interrupted round's number is still consumed; a second call finds nothing.
  CHECK(store->BeginRound(2, kStart).code() == absl::StatusCode::kAlreadyExists);
  CHECK(*store->AbortInterruptedRounds(kStart + absl::Seconds(10), "again") == 0);
}

TEST_CASE("StateStore refuses to begin a round number that was already used", "[state]") {
  TempDir dir;
  std::unique_ptr<StateStore> store = OpenOrDie(dir.File("state.db"));
  SECTION("started") {
    REQUIRE(store->BeginRound(1, kStart).ok());
    absl::Status again = store->BeginRound(1, kStart + absl::Seconds(5));
    CHECK(again.code() == absl::StatusCode::kAlreadyExists);
    CHECK(absl::StrContains(again.message(), "round 1"));
  }
  SECTION("committed") {
    REQUIRE(store->BeginRound(1, kStart).ok());
    REQUIRE(store->CommitRound(FullRecord(1)).ok());
    CHECK(store->BeginRound(1, kStart).code() == absl::StatusCode::kAlreadyExists);
  }
  SECTION("aborted") {
    REQUIRE(store->BeginRound(1, kStart).ok());
    REQUIRE(store->AbortRound(1, absl::Seconds(3), "too few sites").ok());
    CHECK(store->BeginRound(1, kStart).code() == absl::StatusCode::kAlreadyExists);
  }
  // The refused attempt did not change the stored row.
  std::vector<RoundRecord> rounds = ListOrDie(*store, false);
  REQUIRE(rounds.size() == 1);
  CHECK(SameTime(rounds[0].started_at, kStart));
}

TEST_CASE("StateStore refuses a used round number after the file is closed and reopened",
          "[state]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  {
    std::unique_ptr<StateStore> store = OpenOrDie(path);
    REQUIRE(store->BeginRound(1, kStart).ok());
    REQUIRE(store->CommitRound(FullRecord(1)).ok());
    REQUIRE(store->BeginRound(2, kStart).ok());
    REQUIRE(store->AbortRound(2, absl::Seconds(1), "shutdown").ok());
    REQUIRE(store->BeginRound(3, kStart).ok());  // left started (crash mid-round)
  }
  std::unique_ptr<StateStore> store = OpenOrDie(path);
  CHECK(store->BeginRound(1, kStart).code() == absl::StatusCode::kAlreadyExists);
  CHECK(store->BeginRound(2, kStart).code() == absl::StatusCode::kAlreadyExists);
  CHECK(store->BeginRound(3, kStart).code() == absl::StatusCode::kAlreadyExists);
  CHECK(LastOrDie(*store) == 3);
  CHECK(store->BeginRound(4, kStart).ok());
}

TEST_CASE("StateStore LastRoundNumber is 0 when empty and counts aborted rounds", "[state]") {
  TempDir dir;
  std::unique_ptr<StateStore> store = OpenOrDie(dir.File("state.db"));
  CHECK(LastOrDie(*store) == 0);
  REQUIRE(store->BeginRound(1, kStart).ok());
  REQUIRE(store->CommitRound(FullRecord(1)).ok());
  CHECK(LastOrDie(*store) == 1);
  REQUIRE(store->BeginRound(2, kStart).ok());
  REQUIRE(store->AbortRound(2, absl::Seconds(2), "deadline").ok());
  CHECK(LastOrDie(*store) == 2);
  // A started, never finished round counts too.
  REQUIRE(store->BeginRound(3, kStart).ok());
  CHECK(LastOrDie(*store) == 3);
}

TEST_CASE("StateStore records the reason and duration of an aborted round", "[state]") {
  TempDir dir;
  std::unique_ptr<StateStore> store = OpenOrDie(dir.File("state.db"));
  REQUIRE(store->BeginRound(5, kStart).ok());
  REQUIRE(store->AbortRound(5, absl::Milliseconds(1500), "only 1 of 2 sites answered").ok());
  std::vector<RoundRecord> rounds = ListOrDie(*store, false);
  REQUIRE(rounds.size() == 1);
  CHECK(rounds[0].status == "aborted");
  CHECK(rounds[0].duration_s == 1.5);
  CHECK(rounds[0].reason == "only 1 of 2 sites answered");
}

TEST_CASE("StateStore ListRounds filters committed rounds and orders by number", "[state]") {
  TempDir dir;
  std::unique_ptr<StateStore> store = OpenOrDie(dir.File("state.db"));
  // Begun out of order: 3, 1, 2, 4.
  REQUIRE(store->BeginRound(3, kStart).ok());
  REQUIRE(store->BeginRound(1, kStart).ok());
  REQUIRE(store->BeginRound(2, kStart).ok());
  REQUIRE(store->BeginRound(4, kStart).ok());
  REQUIRE(store->CommitRound(FullRecord(1)).ok());
  REQUIRE(store->AbortRound(2, absl::Seconds(1), "no sites").ok());
  REQUIRE(store->CommitRound(FullRecord(3)).ok());

  std::vector<RoundRecord> all = ListOrDie(*store, false);
  REQUIRE(all.size() == 4);
  CHECK(all[0].round == 1);
  CHECK(all[0].status == "committed");
  CHECK(all[1].round == 2);
  CHECK(all[1].status == "aborted");
  CHECK(all[2].round == 3);
  CHECK(all[2].status == "committed");
  CHECK(all[3].round == 4);
  CHECK(all[3].status == "started");

  std::vector<RoundRecord> committed = ListOrDie(*store, true);
  REQUIRE(committed.size() == 2);
  CHECK(committed[0].round == 1);
  CHECK(committed[1].round == 3);
  for (const RoundRecord& r : committed) CHECK(r.status == "committed");

  absl::StatusOr<std::optional<RoundRecord>> last = store->LastCommittedRound();
  REQUIRE(last.ok());
  REQUIRE(last->has_value());
  CHECK((*last)->round == 3);
}

TEST_CASE("StateStore LastCommittedRound is empty without a committed round", "[state]") {
  TempDir dir;
  std::unique_ptr<StateStore> store = OpenOrDie(dir.File("state.db"));
  REQUIRE(store->BeginRound(1, kStart).ok());
  REQUIRE(store->AbortRound(1, absl::Seconds(1), "x").ok());
  absl::StatusOr<std::optional<RoundRecord>> last = store->LastCommittedRound();
  REQUIRE(last.ok());
  CHECK_FALSE(last->has_value());
}

TEST_CASE("StateStore refuses to commit a round that was never begun", "[state]") {
  TempDir dir;
  std::unique_ptr<StateStore> store = OpenOrDie(dir.File("state.db"));
  absl::Status status = store->CommitRound(FullRecord(9));
  CHECK(status.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(absl::StrContains(status.message(), "round 9"));
  // Nothing was inserted by the refused commit.
  CHECK(ListOrDie(*store, false).empty());
  CHECK(LastOrDie(*store) == 0);
}

TEST_CASE("StateStore refuses to commit a round twice or after it was aborted", "[state]") {
  TempDir dir;
  std::unique_ptr<StateStore> store = OpenOrDie(dir.File("state.db"));
  REQUIRE(store->BeginRound(1, kStart).ok());
  REQUIRE(store->CommitRound(FullRecord(1)).ok());
  RoundRecord changed = FullRecord(1);
  changed.examples = 1;
  CHECK(store->CommitRound(changed).code() == absl::StatusCode::kFailedPrecondition);

  REQUIRE(store->BeginRound(2, kStart).ok());
  REQUIRE(store->AbortRound(2, absl::Seconds(1), "x").ok());
  CHECK(store->CommitRound(FullRecord(2)).code() == absl::StatusCode::kFailedPrecondition);

  std::vector<RoundRecord> rounds = ListOrDie(*store, false);
  REQUIRE(rounds.size() == 2);
  CHECK(rounds[0].examples == 1234);  // the first commit stands
  CHECK(rounds[1].status == "aborted");
}

TEST_CASE("StateStore OpenReadOnly of a missing file is NotFound", "[state]") {
  TempDir dir;
  const std::string path = dir.File("missing/state.db");
  absl::StatusOr<std::unique_ptr<StateStore>> store = StateStore::OpenReadOnly(path);
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().code() == absl::StatusCode::kNotFound);
  CHECK(absl::StrContains(store.status().message(), path));
  // And it did not create the file.
  CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("StateStore data survives closing and reopening, also read-only", "[state]") {
  TempDir dir;
  const std::string path = dir.File("state.db");
  {
    std::unique_ptr<StateStore> store = OpenOrDie(path);
    REQUIRE(store->BeginRound(1, kStart).ok());
    REQUIRE(store->CommitRound(FullRecord(1)).ok());
    REQUIRE(store->BeginRound(2, kStart + absl::Seconds(30)).ok());
    REQUIRE(store->AbortRound(2, absl::Seconds(4), "deadline passed").ok());
  }
  SECTION("read-write") {
    std::unique_ptr<StateStore> store = OpenOrDie(path);
    std::vector<RoundRecord> rounds = ListOrDie(*store, false);
    REQUIRE(rounds.size() == 2);
    CHECK(rounds[0].status == "committed");
    CHECK(rounds[0].participants == FullRecord(1).participants);
    CHECK(rounds[0].test_accuracy == std::optional<double>(0.875));
    CHECK(rounds[1].status == "aborted");
    CHECK(rounds[1].reason == "deadline passed");
    CHECK(SameTime(rounds[1].started_at, kStart + absl::Seconds(30)));
  }
  SECTION("read-only") {
    absl::StatusOr<std::unique_ptr<StateStore>> store = StateStore::OpenReadOnly(path);
    INFO(store.status().ToString());
    REQUIRE(store.ok());
    std::vector<RoundRecord> rounds = ListOrDie(**store, false);
    REQUIRE(rounds.size() == 2);
    CHECK(rounds[0].checkpoint == "round-000007.pt");
    CHECK(LastOrDie(**store) == 2);
    // A read-only store cannot begin a round.
    absl::Status begin = (*store)->BeginRound(3, kStart);
    CHECK_FALSE(begin.ok());
  }
}

TEST_CASE("StateStore Open fails for a path in a missing directory", "[state]") {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<StateStore>> store =
      StateStore::Open(dir.File("no/such/dir/state.db"));
  REQUIRE_FALSE(store.ok());
  CHECK(absl::StrContains(store.status().message(), "no/such/dir/state.db"));
}

TEST_CASE("StateStore OpenReadOnly of a file that is not a state database fails", "[state]") {
  TempDir dir;
  const std::string path = dir.File("not.db");
  cohort::testing::WriteTextFile(path, "this is not sqlite");
  absl::StatusOr<std::unique_ptr<StateStore>> store = StateStore::OpenReadOnly(path);
  if (store.ok()) {
    // SQLite opens lazily: the error shows on first use.
    CHECK_FALSE((*store)->ListRounds(false).ok());
  } else {
    CHECK(store.status().code() != absl::StatusCode::kOk);
  }
}

}  // namespace
}  // namespace cohort::state

namespace cohort::state {

TEST_CASE("Per-site epsilon commits with its round and survives a reopen", "[state]") {
  testing::TempDir dir;
  const std::string path = dir.File("state.db");
  {
    auto store = StateStore::Open(path);
    REQUIRE(store.ok());
    REQUIRE((*store)->BeginRound(1, absl::Now()).ok());
    RoundRecord record;
    record.round = 1;
    record.participants = {"a", "b"};
    record.site_epsilon["a"] = SiteEpsilon{0.1, 1.2, 30, 0.75};
    REQUIRE((*store)->CommitRound(record).ok());
    // A failed commit (round never begun) leaves no per-site rows behind.
    RoundRecord bogus = record;
    bogus.round = 9;
    CHECK((*store)->CommitRound(bogus).code() == absl::StatusCode::kFailedPrecondition);
  }
  auto store = StateStore::Open(path);
  REQUIRE(store.ok());
  auto rounds = (*store)->ListRounds(true);
  REQUIRE(rounds.ok());
  REQUIRE(rounds->size() == 1);
  REQUIRE((*rounds)[0].site_epsilon.count("a") == 1);
  CHECK((*rounds)[0].site_epsilon.at("a").steps == 30);
  CHECK((*rounds)[0].site_epsilon.at("a").epsilon == 0.75);
  auto history = (*store)->SitePrivacyHistory();
  REQUIRE(history.ok());
  REQUIRE(history->size() == 1);
  REQUIRE(history->at("a").size() == 1);
  CHECK(history->at("a")[0].noise_multiplier == 1.2);
}

}  // namespace cohort::state
