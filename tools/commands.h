#ifndef COHORT_TOOLS_COMMANDS_H_
#define COHORT_TOOLS_COMMANDS_H_

#include <CLI/CLI.hpp>

namespace cohort::tools {

// Each Add*Commands registers one cohortctl subcommand tree on `app`. A command's callback
// throws CLI::RuntimeError(exit_code) after printing a clear error to stderr when it fails;
// exit code 2 means bad arguments, 1 means the operation failed.
void AddPkiCommands(CLI::App& app);
void AddRoundsCommand(CLI::App& app);
void AddDataCommands(CLI::App& app);
void AddLedgerCommands(CLI::App& app);
void AddPrivacyCommands(CLI::App& app);
// status, pause, resume, abort: the coordinator's Admin API.
void AddAdminCommands(CLI::App& app);
// state backup / restore of a coordinator's state_dir.
void AddStateCommands(CLI::App& app);

}  // namespace cohort::tools

#endif  // COHORT_TOOLS_COMMANDS_H_
