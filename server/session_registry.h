#ifndef COHORT_SERVER_SESSION_REGISTRY_H_
#define COHORT_SERVER_SESSION_REGISTRY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cohort/v1/cohort.grpc.pb.h"

namespace cohort::server {

using SessionStream =
    grpc::ServerReaderWriter<cohort::v1::CoordinatorMessage, cohort::v1::SiteMessage>;

// One site's live Session stream. Writes are serialised by the session's own mutex because
// the round loop pushes tasks while the handler thread reads.
class SiteSession {
 public:
  SiteSession(std::string site, uint64_t id, grpc::ServerContext* context, SessionStream* stream,
              cohort::v1::Hello hello)
      : site_(std::move(site)), id_(id), context_(context), stream_(stream),
        hello_(std::move(hello)), certificate_pem_(PeerCertificatePem(*context)),
        peer_(context->peer()) {}

  const std::string& site() const { return site_; }
  uint64_t id() const { return id_; }
  const cohort::v1::Hello& hello() const { return hello_; }
  // The client certificate the session was opened with (PEM; empty if unavailable), so
  // that a site revoked or expired later can be cut off.
  const std::string& certificate_pem() const { return certificate_pem_; }
  // The peer's address as gRPC reports it (e.g. ipv4:127.0.0.1:41234).
  const std::string& peer() const { return peer_; }
  // Sends one message; false once the stream is broken or closed.
  bool Send(const cohort::v1::CoordinatorMessage& message);
  // Ends the stream from the server side (a newer session replaced it, or shutdown).
  void Cancel();
  // Called by the handler before it returns: the stream and context die with the handler,
  // so later Send/Cancel calls from other threads become no-ops.
  void Detach();

 private:
  const std::string site_;
  const uint64_t id_;
  absl::Mutex mu_;
  grpc::ServerContext* context_ ABSL_GUARDED_BY(mu_);
  SessionStream* stream_ ABSL_GUARDED_BY(mu_);
  const cohort::v1::Hello hello_;
  const std::string certificate_pem_;
  const std::string peer_;

  static std::string PeerCertificatePem(const grpc::ServerContext& context);
};

// The sites connected right now, at most one session per site: a reconnecting site's new
// session replaces (and cancels) its old one.
class SessionRegistry {
 public:
  std::shared_ptr<SiteSession> Register(const std::string& site, grpc::ServerContext* context,
                                        SessionStream* stream, cohort::v1::Hello hello);
  // Removes `session` if it is still the site's current one.
  void Unregister(const std::shared_ptr<SiteSession>& session);
  std::shared_ptr<SiteSession> Find(const std::string& site) const;
  std::vector<std::string> LiveSites() const;
  size_t size() const;
  // Blocks until at least `count` sites are connected, `deadline` passes or Close() is called.
  bool WaitForAtLeast(size_t count, absl::Time deadline) const;
  // Cancels every session and refuses new ones.
  void Close();
  bool closed() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<SiteSession>> sessions_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace cohort::server

#endif  // COHORT_SERVER_SESSION_REGISTRY_H_
