// cohortctl rounds: the round history from a coordinator's state directory or, with
// --coordinator, from a running coordinator's Admin API.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/state/round_format.h"
#include "common/state/round_record_proto.h"
#include "common/state/state_store.h"
#include "tools/admin_command.h"
#include "tools/commands.h"

namespace cohort::tools {

void AddRoundsCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "rounds", "Show the round history: from a state_dir, or a running coordinator's Admin API");
  auto state_dir = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto all = std::make_shared<bool>(false);
  auto connection = std::make_shared<AdminConnection>();
  cmd->add_option("--state-dir", *state_dir, "The coordinator's state_dir (read locally)");
  connection->AddOptions(*cmd, /*required=*/false);
  cmd->add_flag("--json", *json, "Print a JSON array, one object per round");
  cmd->add_flag("--all", *all, "Include started and aborted rounds, not only committed ones");
  cmd->callback([state_dir, json, all, connection]() {
    if (state_dir->empty() == connection->address.empty()) {
      std::cerr << "cohortctl rounds: give exactly one of --state-dir DIR or --coordinator "
                   "HOST:PORT\n";
      throw CLI::RuntimeError(2);
    }
    std::vector<state::RoundRecord> rounds;
    if (!connection->address.empty()) {
      auto stub = connection->Connect("rounds");
      grpc::ClientContext context;
      connection->Prepare(context);
      cohort::v1::ListRoundsRequest request;
      request.set_include_aborted(*all);
      cohort::v1::ListRoundsResponse response;
      connection->Check("rounds", stub->ListRounds(&context, request, &response));
      for (const cohort::v1::RoundSummary& summary : response.rounds()) {
        rounds.push_back(state::FromProto(summary));
      }
    } else {
      auto store = state::StateStore::OpenReadOnly(*state_dir + "/state.db");
      if (!store.ok()) {
        std::cerr << "cohortctl rounds: " << store.status().message() << "\n";
        throw CLI::RuntimeError(1);
      }
      auto listed = (*store)->ListRounds(/*committed_only=*/!*all);
      if (!listed.ok()) {
        std::cerr << "cohortctl rounds: " << listed.status().message() << "\n";
        throw CLI::RuntimeError(1);
      }
      rounds = std::move(*listed);
    }
    std::cout << (*json ? state::RoundsAsJson(rounds) : state::RoundsAsTable(rounds));
  });
}

}  // namespace cohort::tools
