#ifndef COHORT_SERVER_ADMIN_SERVICE_H_
#define COHORT_SERVER_ADMIN_SERVICE_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "cohort/v1/admin.grpc.pb.h"
#include "common/state/state_store.h"
#include "common/tls/revocation.h"

namespace cohort::server {

// What the Admin service may ask of the coordinator. `by` names the admin (for the log and
// the round history).
class FederationControl {
 public:
  virtual ~FederationControl() = default;
  virtual cohort::v1::FederationStatus Status() const = 0;
  virtual absl::Status Pause(const std::string& by, const std::string& reason) = 0;
  virtual absl::Status Resume(const std::string& by) = 0;
  // Aborts round `round` (0: the one running); returns its number. FailedPrecondition when
  // no round is running or another one is.
  virtual absl::StatusOr<uint64_t> AbortRound(uint64_t round, const std::string& by,
                                              const std::string& reason) = 0;
  virtual absl::StatusOr<std::vector<state::RoundRecord>> Rounds(bool include_aborted) = 0;
};

// The gRPC Admin service. Every call is authorized from the caller's verified certificate:
// it must carry spiffe://<federation>/admin/<name>, name an allowed admin (when the config
// lists `admins:`), and still pass the CA, validity and CRL check. Site certificates get
// PERMISSION_DENIED.
class AdminService final : public cohort::v1::Admin::Service {
 public:
  AdminService(std::string federation, std::string ca_path, std::vector<std::string> admins,
               FederationControl* control);
  void SetRevocationList(std::shared_ptr<tls::RevocationList> crl) { crl_ = std::move(crl); }

  grpc::Status GetStatus(grpc::ServerContext* context, const cohort::v1::GetStatusRequest* request,
                         cohort::v1::FederationStatus* response) override;
  grpc::Status Pause(grpc::ServerContext* context, const cohort::v1::PauseRequest* request,
                     cohort::v1::FederationStatus* response) override;
  grpc::Status Resume(grpc::ServerContext* context, const cohort::v1::ResumeRequest* request,
                      cohort::v1::FederationStatus* response) override;
  grpc::Status AbortRound(grpc::ServerContext* context,
                          const cohort::v1::AbortRoundRequest* request,
                          cohort::v1::AbortRoundResponse* response) override;
  grpc::Status ListRounds(grpc::ServerContext* context,
                          const cohort::v1::ListRoundsRequest* request,
                          cohort::v1::ListRoundsResponse* response) override;

 private:
  // The caller's admin name, or the gRPC status to answer with.
  absl::StatusOr<std::string> Authorize(const grpc::ServerContext& context,
                                        const char* method) const;

  const std::string federation_;
  const std::string ca_path_;
  const std::set<std::string> admins_;  // empty: any admin certificate of the CA
  std::shared_ptr<tls::RevocationList> crl_;
  FederationControl* const control_;
};

}  // namespace cohort::server

#endif  // COHORT_SERVER_ADMIN_SERVICE_H_
