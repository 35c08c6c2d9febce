#ifndef COHORT_SERVER_FEDERATION_SERVICE_H_
#define COHORT_SERVER_FEDERATION_SERVICE_H_

#include <functional>
#include <memory>
#include <set>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "cohort/v1/cohort.grpc.pb.h"
#include "common/config/coordinator_config.h"
#include "common/tls/revocation.h"
#include "server/round.h"
#include "server/session_rate_limiter.h"
#include "server/session_registry.h"

namespace cohort::server {

class CoordinatorMetrics;

// Re-checks a caller's certificate (from its call's AuthContext) against the CA file at
// `ca_path`, its validity period and `crl` (null: none). A connection lives on across
// revocations and expiry, so every call checks again. Unauthenticated with the reason.
absl::Status RecheckCallerCertificate(const grpc::AuthContext& auth, const std::string& ca_path,
                                      tls::RevocationList* crl);

// Gives RPC handlers the round that is open right now (or null between rounds).
class RoundBoard {
 public:
  void Publish(std::shared_ptr<Round> round);
  std::shared_ptr<Round> Current() const;

 private:
  mutable absl::Mutex mu_;
  std::shared_ptr<Round> round_ ABSL_GUARDED_BY(mu_);
};

// Limits how many uploads are staged at once (each holds one model-sized buffer).
class UploadSlots {
 public:
  explicit UploadSlots(int capacity) : free_(capacity) {}
  // Waits for a slot until `deadline`; false if none became free in time.
  bool Acquire(absl::Time deadline);
  void Release();

 private:
  absl::Mutex mu_;
  int free_ ABSL_GUARDED_BY(mu_);
};

// The gRPC Federation service. Every handler first derives the caller's site id from its
// verified client certificate and refuses sites not on the allowlist; message fields never
// name the caller.
class FederationService final : public cohort::v1::Federation::Service {
 public:
  FederationService(const config::CoordinatorConfig& config, SessionRegistry* sessions,
                    RoundBoard* board);

  // Every RPC re-checks the caller's certificate against the CA, its validity and this CRL
  // (null: none): a connection opened before a revocation or an expiry cannot go on making
  // calls. Set before the server starts.
  void SetRevocationList(std::shared_ptr<tls::RevocationList> crl) { crl_ = std::move(crl); }
  // Counts the bytes of uploads, downloads and session messages. Set before the server
  // starts; may stay null.
  void SetMetrics(CoordinatorMetrics* metrics) { metrics_ = metrics; }
  // The federation's parameter layout: a Session whose Hello describes a different model
  // architecture (model::CheckSiteArchitecture) is refused with FAILED_PRECONDITION before
  // Welcome. Set before the server starts.
  void SetModelLayout(tensor::ParameterLayout layout) { layout_ = std::move(layout); }

  grpc::Status Session(grpc::ServerContext* context, SessionStream* stream) override;
  grpc::Status DownloadModel(grpc::ServerContext* context,
                             const cohort::v1::DownloadModelRequest* request,
                             grpc::ServerWriter<cohort::v1::ModelChunk>* writer) override;
  grpc::Status UploadUpdate(grpc::ServerContext* context,
                            grpc::ServerReader<cohort::v1::UpdateChunk>* reader,
                            cohort::v1::UploadReceipt* receipt) override;

 private:
  // Reads an upload's data chunks into `num_values` values and hands them to `complete`
  // (which folds them into the round); any framing error stops the read.
  template <typename Value, typename Complete>
  absl::Status ReceivePayload(grpc::ServerContext& context,
                              grpc::ServerReader<cohort::v1::UpdateChunk>& reader,
                              uint64_t num_values, uint64_t* bytes_received, Complete complete);
  // The allowed site id of the caller, or PERMISSION_DENIED / UNAUTHENTICATED.
  absl::StatusOr<std::string> Authorize(const grpc::ServerContext& context) const;

  const std::string federation_;
  const std::string ca_path_;
  std::shared_ptr<tls::RevocationList> crl_;
  CoordinatorMetrics* metrics_ = nullptr;
  config::ModelSpec model_spec_;
  tensor::ParameterLayout layout_;
  SessionRateLimiter session_starts_;
  const std::set<std::string> allowed_sites_;
  const int64_t max_chunk_bytes_;
  const int64_t max_sessions_per_minute_;
  const absl::Duration stage_timeout_;
  SessionRegistry* const sessions_;
  RoundBoard* const board_;
  UploadSlots upload_slots_;
};

// Converts an absl::Status to a grpc::Status with the same code and message.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace cohort::server

#endif  // COHORT_SERVER_FEDERATION_SERVICE_H_
