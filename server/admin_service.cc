#include "server/admin_service.h"

#include "absl/strings/str_cat.h"
#include "common/state/round_record_proto.h"
#include "common/tls/peer_identity.h"
#include "server/federation_service.h"
#include "spdlog/spdlog.h"

namespace cohort::server {

AdminService::AdminService(std::string federation, std::string ca_path,
                           std::vector<std::string> admins, FederationControl* control)
    : federation_(std::move(federation)),
      ca_path_(std::move(ca_path)),
      admins_(admins.begin(), admins.end()),
      control_(control) {}

absl::StatusOr<std::string> AdminService::Authorize(const grpc::ServerContext& context,
                                                    const char* method) const {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return absl::UnauthenticatedError("no TLS peer identity");
  absl::StatusOr<tls::PeerIdentity> peer = tls::PeerFromAuthContext(*auth, federation_);
  if (!peer.ok()) {
    spdlog::warn("admin: refused {} from {}: {}", method, context.peer(), std::string(peer.status().message()));
    return peer.status();
  }
  if (peer->role != tls::PeerIdentity::Role::kAdmin) {
    spdlog::warn("admin: refused {} from site '{}' ({}): not an admin certificate", method,
                 peer->name, context.peer());
    return absl::PermissionDeniedError(absl::StrCat(
        "the Admin API needs an admin certificate (spiffe://", federation_,
        "/admin/<name>, cohortctl pki issue --admin NAME); this one is site '", peer->name, "'"));
  }
  if (!admins_.empty() && admins_.count(peer->name) == 0) {
    spdlog::warn("admin: refused {} from admin '{}': not on the admins list", method, peer->name);
    return absl::PermissionDeniedError(
        absl::StrCat("admin '", peer->name, "' is not on this coordinator's admins list"));
  }
  if (absl::Status valid = RecheckCallerCertificate(*auth, ca_path_, crl_.get()); !valid.ok()) {
    spdlog::warn("admin: refused {} from admin '{}': {}", method, peer->name, std::string(valid.message()));
    return valid;
  }
  return peer->name;
}

grpc::Status AdminService::GetStatus(grpc::ServerContext* context,
                                     const cohort::v1::GetStatusRequest*,
                                     cohort::v1::FederationStatus* response) {
  absl::StatusOr<std::string> admin = Authorize(*context, "GetStatus");
  if (!admin.ok()) return ToGrpcStatus(admin.status());
  *response = control_->Status();
  return grpc::Status::OK;
}

grpc::Status AdminService::Pause(grpc::ServerContext* context,
                                 const cohort::v1::PauseRequest* request,
                                 cohort::v1::FederationStatus* response) {
  absl::StatusOr<std::string> admin = Authorize(*context, "Pause");
  if (!admin.ok()) return ToGrpcStatus(admin.status());
  if (absl::Status s = control_->Pause(*admin, request->reason()); !s.ok()) {
    return ToGrpcStatus(s);
  }
  *response = control_->Status();
  return grpc::Status::OK;
}

grpc::Status AdminService::Resume(grpc::ServerContext* context, const cohort::v1::ResumeRequest*,
                                  cohort::v1::FederationStatus* response) {
  absl::StatusOr<std::string> admin = Authorize(*context, "Resume");
  if (!admin.ok()) return ToGrpcStatus(admin.status());
  if (absl::Status s = control_->Resume(*admin); !s.ok()) return ToGrpcStatus(s);
  *response = control_->Status();
  return grpc::Status::OK;
}

grpc::Status AdminService::AbortRound(grpc::ServerContext* context,
                                      const cohort::v1::AbortRoundRequest* request,
                                      cohort::v1::AbortRoundResponse* response) {
  absl::StatusOr<std::string> admin = Authorize(*context, "AbortRound");
  if (!admin.ok()) return ToGrpcStatus(admin.status());
  absl::StatusOr<uint64_t> round =
      control_->AbortRound(request->round(), *admin, request->reason());
  if (!round.ok()) return ToGrpcStatus(round.status());
  response->set_round(*round);
  return grpc::Status::OK;
}

grpc::Status AdminService::ListRounds(grpc::ServerContext* context,
                                      const cohort::v1::ListRoundsRequest* request,
                                      cohort::v1::ListRoundsResponse* response) {
  absl::StatusOr<std::string> admin = Authorize(*context, "ListRounds");
  if (!admin.ok()) return ToGrpcStatus(admin.status());
  absl::StatusOr<std::vector<state::RoundRecord>> rounds =
      control_->Rounds(request->include_aborted());
  if (!rounds.ok()) return ToGrpcStatus(rounds.status());
  for (const state::RoundRecord& record : *rounds) {
    *response->add_rounds() = state::ToProto(record);
  }
  return grpc::Status::OK;
}

}  // namespace cohort::server
