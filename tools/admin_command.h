#ifndef COHORT_TOOLS_ADMIN_COMMAND_H_
#define COHORT_TOOLS_ADMIN_COMMAND_H_

#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

#include "cohort/v1/admin.grpc.pb.h"

namespace cohort::tools {

// How a cohortctl command reaches the coordinator's Admin API: address and the admin's
// mutual-TLS files (flags, or COHORT_ADMIN_CERT / COHORT_ADMIN_KEY / COHORT_CA).
struct AdminConnection {
  std::string address;
  std::string cert;
  std::string key;
  std::string ca;
  std::string server_name;
  double timeout_seconds = 10;

  // Registers --coordinator (required or not), --cert, --key, --ca, --server-name, --timeout.
  void AddOptions(CLI::App& command, bool required);
  // A stub over mutual TLS; exits 2 on missing flags, 1 on unreadable files.
  std::unique_ptr<cohort::v1::Admin::Stub> Connect(const std::string& command) const;
  // Sets the call's deadline.
  void Prepare(grpc::ClientContext& context) const;
  // Exits 1 with a clear message unless `status` is OK.
  void Check(const std::string& command, const grpc::Status& status) const;
};

}  // namespace cohort::tools

#endif  // COHORT_TOOLS_ADMIN_COMMAND_H_
