// cohortctl status | pause | resume | abort, and rounds --coordinator: the coordinator's
// Admin API over mutual TLS with an admin certificate (cohortctl pki issue --admin NAME).
#include "tools/admin_command.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cohort/v1/admin.grpc.pb.h"
#include "common/config/coordinator_config.h"
#include "common/tls/credentials.h"
#include "tools/commands.h"

namespace cohort::tools {
namespace {

[[noreturn]] void Fail(const std::string& command, int code, const std::string& message) {
  std::cerr << "cohortctl " << command << ": " << message << "\n";
  throw CLI::RuntimeError(code);
}

std::string Json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

std::string Ago(int64_t unix_ms) {
  const int64_t s = absl::ToInt64Seconds(absl::Now() - absl::FromUnixMillis(unix_ms));
  if (s < 120) return absl::StrCat(s, "s");
  if (s < 7200) return absl::StrCat(s / 60, "m");
  return absl::StrCat(s / 3600, "h");
}

std::string StatusAsText(const cohort::v1::FederationStatus& status) {
  std::string out = absl::StrFormat(
      "federation %s  coordinator %s  up %s  secure aggregation %s\n", status.federation(),
      status.coordinator_version(), Ago(status.started_unix_ms()),
      status.secure_aggregation() ? "on" : "off");
  if (status.current_round() != 0) {
    absl::StrAppendFormat(&out, "round %d  stage %s (%s)", status.current_round(),
                          status.stage(), Ago(status.stage_started_unix_ms()));
  } else {
    absl::StrAppendFormat(&out, "no round running  stage %s (%s)", status.stage(),
                          Ago(status.stage_started_unix_ms()));
  }
  absl::StrAppendFormat(&out, "  committed %d of %d  last round number %d\n",
                        status.rounds_committed(), status.rounds_target(), status.last_round());
  if (status.paused()) absl::StrAppend(&out, "PAUSED: ", status.pause_reason(), "\n");
  int connected = 0;
  for (const auto& site : status.sites()) connected += site.connected() ? 1 : 0;
  absl::StrAppendFormat(&out, "sites (%d of %d connected):\n", connected, status.sites_size());
  absl::StrAppendFormat(&out, "  %-20s %-11s %-26s %8s %8s  %s\n", "site", "state", "address",
                        "train", "epsilon", "last dropped because");
  for (const auto& site : status.sites()) {
    absl::StrAppendFormat(&out, "  %-20s %-11s %-26s %8s %8s  %s\n", site.site_id(),
                          site.state(), site.peer().empty() ? "-" : site.peer(),
                          site.connected() ? absl::StrCat(site.train_examples()) : "-",
                          site.has_epsilon() ? absl::StrFormat("%.3f", site.epsilon()) : "-",
                          site.last_drop_reason());
  }
  if (!status.last_errors().empty()) {
    out += "last errors (newest last):\n";
    for (const auto& e : status.last_errors()) {
      absl::StrAppendFormat(
          &out, "  %s  %s%s%s\n",
          absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(e.unix_ms()),
                           absl::UTCTimeZone()),
          e.round() == 0 ? "" : absl::StrCat("round ", e.round(), " "),
          e.site_id().empty() ? "" : absl::StrCat(e.site_id(), ": "), e.message());
    }
  }
  return out;
}

}  // namespace

void AdminConnection::AddOptions(CLI::App& command, bool required) {
  CLI::Option* coordinator =
      command.add_option("--coordinator", address, "The coordinator's gRPC address HOST:PORT");
  if (required) coordinator->required();
  command.add_option("--cert", cert, "Admin certificate (cohortctl pki issue --admin NAME)")
      ->envname("COHORT_ADMIN_CERT");
  command.add_option("--key", key, "Admin private key")->envname("COHORT_ADMIN_KEY");
  command.add_option("--ca", ca, "Federation CA certificate")->envname("COHORT_CA");
  command.add_option("--server-name", server_name,
                     "Name to verify the coordinator's certificate against (default: HOST)");
  command.add_option("--timeout", timeout_seconds, "Seconds to wait for the coordinator")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
}

std::unique_ptr<cohort::v1::Admin::Stub> AdminConnection::Connect(
    const std::string& command) const {
  if (address.empty()) Fail(command, 2, "--coordinator HOST:PORT is required");
  if (cert.empty() || key.empty() || ca.empty()) {
    Fail(command, 2,
         "the Admin API needs an admin certificate: give --cert, --key and --ca (or set "
         "COHORT_ADMIN_CERT, COHORT_ADMIN_KEY, COHORT_CA)");
  }
  config::TlsFiles files(ca, cert, key);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      tls::MakeChannelCredentials(files);
  if (!credentials.ok()) Fail(command, 1, std::string(credentials.status().message()));
  const std::string host = address.substr(0, address.rfind(':'));
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      address, *credentials, tls::MakeChannelArguments(server_name.empty() ? host : server_name));
  return cohort::v1::Admin::NewStub(channel);
}

void AdminConnection::Prepare(grpc::ClientContext& context) const {
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)));
  context.set_wait_for_ready(false);
}

void AdminConnection::Check(const std::string& command, const grpc::Status& status) const {
  if (status.ok()) return;
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      Fail(command, 1, absl::StrCat("cannot reach the coordinator at ", address, ": ",
                                    status.error_message()));
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      Fail(command, 1, absl::StrCat("the coordinator refused this certificate: ",
                                    status.error_message()));
    default:
      Fail(command, 1, status.error_message());
  }
}

void AddAdminCommands(CLI::App& app) {
  {
    auto* cmd = app.add_subcommand("status", "Show a running coordinator's federation status");
    auto connection = std::make_shared<AdminConnection>();
    auto json = std::make_shared<bool>(false);
    connection->AddOptions(*cmd, /*required=*/true);
    cmd->add_flag("--json", *json, "Print the status as JSON");
    cmd->callback([connection, json] {
      auto stub = connection->Connect("status");
      grpc::ClientContext context;
      connection->Prepare(context);
      cohort::v1::FederationStatus status;
      connection->Check("status", stub->GetStatus(&context, {}, &status));
      std::cout << (*json ? Json(status) + "\n" : StatusAsText(status));
    });
  }
  {
    auto* cmd = app.add_subcommand(
        "pause", "Start no new round until resumed (the round in progress finishes)");
    auto connection = std::make_shared<AdminConnection>();
    auto reason = std::make_shared<std::string>();
    connection->AddOptions(*cmd, /*required=*/true);
    cmd->add_option("--reason", *reason, "Why (shown in the status)");
    cmd->callback([connection, reason] {
      auto stub = connection->Connect("pause");
      grpc::ClientContext context;
      connection->Prepare(context);
      cohort::v1::PauseRequest request;
      request.set_reason(*reason);
      cohort::v1::FederationStatus status;
      connection->Check("pause", stub->Pause(&context, request, &status));
      std::cout << "paused: " << status.pause_reason() << "\n"
                << (status.current_round() != 0
                        ? absl::StrCat("round ", status.current_round(),
                                       " is still running and will finish (cohortctl abort "
                                       "stops it)\n")
                        : std::string());
    });
  }
  {
    auto* cmd = app.add_subcommand("resume", "Start rounds again after a pause");
    auto connection = std::make_shared<AdminConnection>();
    connection->AddOptions(*cmd, /*required=*/true);
    cmd->callback([connection] {
      auto stub = connection->Connect("resume");
      grpc::ClientContext context;
      connection->Prepare(context);
      cohort::v1::FederationStatus status;
      connection->Check("resume", stub->Resume(&context, {}, &status));
      std::cout << "resumed\n";
    });
  }
  {
    auto* cmd = app.add_subcommand("abort", "Abort the round in progress");
    auto connection = std::make_shared<AdminConnection>();
    auto round = std::make_shared<uint64_t>(0);
    auto reason = std::make_shared<std::string>();
    connection->AddOptions(*cmd, /*required=*/true);
    cmd->add_option("--round", *round, "Abort only if this is the round running (default: any)");
    cmd->add_option("--reason", *reason, "Why (recorded in the round history)");
    cmd->callback([connection, round, reason] {
      auto stub = connection->Connect("abort");
      grpc::ClientContext context;
      connection->Prepare(context);
      cohort::v1::AbortRoundRequest request;
      request.set_round(*round);
      request.set_reason(*reason);
      cohort::v1::AbortRoundResponse response;
      connection->Check("abort", stub->AbortRound(&context, request, &response));
      std::cout << "round " << response.round()
                << " is being aborted; its number is never reused\n";
    });
  }
}

}  // namespace cohort::tools
