// cohortctl: the operator's command line for a cohort federation.
#include <CLI/CLI.hpp>

#include "tools/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"cohortctl: PKI, round history, privacy calculator, ledger and data tools"};
  app.set_version_flag("--version", std::string("cohortctl ") + COHORT_VERSION);
  app.require_subcommand(1);
  cohort::tools::AddPkiCommands(app);
  cohort::tools::AddRoundsCommand(app);
  cohort::tools::AddDataCommands(app);
  cohort::tools::AddLedgerCommands(app);
  cohort::tools::AddPrivacyCommands(app);
  cohort::tools::AddAdminCommands(app);
  cohort::tools::AddStateCommands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Usage errors (unknown flag, missing argument) exit 2; CLI::RuntimeError carries the
    // exit code chosen by the command itself.
    int code = app.exit(e);
    if (code != 0 && dynamic_cast<const CLI::RuntimeError*>(&e) == nullptr) return 2;
    return code;
  }
  return 0;
}
