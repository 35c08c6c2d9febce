// cohortctl state backup | restore: a consistent copy of a coordinator's state_dir (state.db
// through SQLite's online backup, and the checkpoints its committed rounds name), taken while
// the coordinator runs, and its restoration into an empty state_dir.
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/state/state_store.h"
#include "common/util/files.h"
#include "tools/commands.h"

namespace cohort::tools {
namespace {

namespace fs = std::filesystem;

// Round numbers a restored coordinator skips: rounds that ran after the backup was taken are
// lost with the old state, and their numbers (and secure-aggregation rounds) must never be
// used again. A restore moves the next round number past them by this much (or --round-gap).
constexpr uint64_t kDefaultRoundGap = 100000;

[[noreturn]] void Fail(const std::string& sub, int code, absl::string_view message) {
  std::cerr << "cohortctl state " << sub << ": " << message << "\n";
  throw CLI::RuntimeError(code);
}

// The committed rounds of the state.db at `db`, and checks that each one's checkpoint is in
// `dir`. Returns the number of bytes of checkpoints.
uint64_t CheckCheckpoints(const std::string& sub, state::StateStore& store, const fs::path& dir,
                          std::vector<std::string>* checkpoints, uint64_t* last_committed) {
  absl::StatusOr<std::vector<state::RoundRecord>> rounds = store.ListRounds(true);
  if (!rounds.ok()) Fail(sub, 1, rounds.status().message());
  uint64_t bytes = 0;
  *last_committed = rounds->empty() ? 0 : rounds->back().round;
  for (const state::RoundRecord& round : *rounds) {
    const fs::path file = dir / round.checkpoint;
    std::error_code error;
    const uint64_t size = fs::file_size(file, error);
    if (error) {
      Fail(sub, 1, absl::StrCat("round ", round.round, " is committed but its checkpoint ",
                                file.string(), " is missing: ", error.message()));
    }
    bytes += size;
    checkpoints->push_back(round.checkpoint);
  }
  return bytes;
}

// Copies a committed round's checkpoint `name` (checkpoints/round-NNNNNN.pt) from `from` to
// `to`, with the server optimizer state written next to it (round-NNNNNN.opt) when there is
// one (rounds committed before server optimizers existed have none).
void CopyRoundFiles(const std::string& sub, const fs::path& from, const fs::path& to,
                    const std::string& name) {
  std::error_code error;
  fs::copy_file(from / name, to / name, error);
  if (error) Fail(sub, 1, absl::StrCat("copying ", name, ": ", error.message()));
  fs::path optimizer_state = fs::path(name).replace_extension(".opt");
  if (fs::exists(from / optimizer_state)) {
    fs::copy_file(from / optimizer_state, to / optimizer_state, error);
    if (error) {
      Fail(sub, 1, absl::StrCat("copying ", optimizer_state.string(), ": ", error.message()));
    }
  }
}

void Backup(const std::string& state_dir, const std::string& out) {
  const std::string sub = "backup";
  if (fs::exists(out) && !fs::is_empty(out)) {
    Fail(sub, 2, absl::StrCat("--out ", out, " exists and is not empty"));
  }
  absl::StatusOr<std::unique_ptr<state::StateStore>> live =
      state::StateStore::OpenReadOnly(state_dir + "/state.db");
  if (!live.ok()) Fail(sub, 1, live.status().message());
  if (absl::Status s = EnsureDirectory(out + "/checkpoints"); !s.ok()) Fail(sub, 1, s.message());
  fs::permissions(out, fs::perms::owner_all, fs::perm_options::replace);
  if (absl::Status s = (*live)->BackupTo(out + "/state.db"); !s.ok()) Fail(sub, 1, s.message());
  // Checkpoints are written (atomically) before the row that names them commits, and never
  // change afterwards: every committed round of the copy has its file in state_dir.
  absl::StatusOr<std::unique_ptr<state::StateStore>> copy =
      state::StateStore::OpenReadOnly(out + "/state.db");
  if (!copy.ok()) Fail(sub, 1, copy.status().message());
  std::vector<std::string> checkpoints;
  uint64_t last = 0;
  const uint64_t bytes = CheckCheckpoints(sub, **copy, state_dir, &checkpoints, &last);
  for (const std::string& name : checkpoints) CopyRoundFiles(sub, state_dir, out, name);
  absl::StatusOr<uint64_t> last_number = (*copy)->LastRoundNumber();
  std::cout << "Backed up " << state_dir << " to " << out << ": " << checkpoints.size()
            << " committed rounds (last " << last << "), highest round number "
            << (last_number.ok() ? *last_number : 0) << ", " << bytes << " bytes of checkpoints\n";
}

void Restore(const std::string& from, const std::string& state_dir, uint64_t round_gap) {
  const std::string sub = "restore";
  if (fs::exists(state_dir + "/state.db")) {
    Fail(sub, 2, absl::StrCat(state_dir, "/state.db exists: stop the coordinator and move its "
                              "state_dir aside before restoring into it"));
  }
  absl::StatusOr<std::unique_ptr<state::StateStore>> backup =
      state::StateStore::OpenReadOnly(from + "/state.db");
  if (!backup.ok()) Fail(sub, 1, backup.status().message());
  std::vector<std::string> checkpoints;
  uint64_t last = 0;
  CheckCheckpoints(sub, **backup, from, &checkpoints, &last);
  absl::StatusOr<uint64_t> last_number = (*backup)->LastRoundNumber();
  if (!last_number.ok()) Fail(sub, 1, last_number.status().message());
  if (absl::Status s = EnsureDirectory(state_dir + "/checkpoints"); !s.ok()) {
    Fail(sub, 1, s.message());
  }
  if (absl::Status s = (*backup)->BackupTo(state_dir + "/state.db"); !s.ok()) {
    Fail(sub, 1, s.message());
  }
  for (const std::string& name : checkpoints) CopyRoundFiles(sub, from, state_dir, name);
  absl::StatusOr<std::unique_ptr<state::StateStore>> restored =
      state::StateStore::Open(state_dir + "/state.db");
  if (!restored.ok()) Fail(sub, 1, restored.status().message());
  const uint64_t floor = *last_number + round_gap;
  if (absl::Status s = (*restored)->PutSetting("round_floor", std::to_string(floor)); !s.ok()) {
    Fail(sub, 1, s.message());
  }
  std::cout << "Restored " << checkpoints.size() << " committed rounds (last " << last
            << ") into " << state_dir << "; the coordinator resumes from round " << last
            << " and numbers new rounds from " << floor + 1
            << " (numbers used after the backup are never reused)\n";
}

}  // namespace

void AddStateCommands(CLI::App& app) {
  CLI::App* state = app.add_subcommand("state", "Back up and restore a coordinator's state_dir");
  state->require_subcommand(1);
  {
    auto* cmd = state->add_subcommand(
        "backup", "Copy state.db (online, consistent) and the committed checkpoints");
    auto state_dir = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    cmd->add_option("--state-dir", *state_dir, "The coordinator's state_dir")->required();
    cmd->add_option("--out", *out, "A new (or empty) directory for the backup")->required();
    cmd->callback([state_dir, out] { Backup(*state_dir, *out); });
  }
  {
    auto* cmd = state->add_subcommand(
        "restore", "Restore a backup into an empty state_dir (coordinator stopped)");
    auto from = std::make_shared<std::string>();
    auto state_dir = std::make_shared<std::string>();
    auto gap = std::make_shared<uint64_t>(kDefaultRoundGap);
    cmd->add_option("--from", *from, "The backup directory (cohortctl state backup --out)")
        ->required();
    cmd->add_option("--state-dir", *state_dir, "The coordinator's (empty) state_dir")->required();
    cmd->add_option("--round-gap", *gap,
                    "New round numbers start this far past the backup's highest, skipping "
                    "those used after the backup")
        ->capture_default_str()
        ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
    cmd->callback([from, state_dir, gap] { Restore(*from, *state_dir, *gap); });
  }
}

}  // namespace cohort::tools
