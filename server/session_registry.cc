#include "server/session_registry.h"

namespace cohort::server {

bool SiteSession::Send(const cohort::v1::CoordinatorMessage& message) {
  absl::MutexLock lock(&mu_);
  if (stream_ == nullptr) return false;
  if (!stream_->Write(message)) {
    stream_ = nullptr;
    return false;
  }
  return true;
}

void SiteSession::Cancel() {
  absl::MutexLock lock(&mu_);
  if (context_ != nullptr) context_->TryCancel();
  stream_ = nullptr;
}

void SiteSession::Detach() {
  absl::MutexLock lock(&mu_);
  context_ = nullptr;
  stream_ = nullptr;
}

std::string SiteSession::PeerCertificatePem(const grpc::ServerContext& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return "";
  std::vector<grpc::string_ref> values = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  return values.empty() ? "" : std::string(values[0].data(), values[0].size());
}

std::shared_ptr<SiteSession> SessionRegistry::Register(const std::string& site,
                                                       grpc::ServerContext* context,
                                                       SessionStream* stream,
                                                       cohort::v1::Hello hello) {
  std::shared_ptr<SiteSession> replaced;
  std::shared_ptr<SiteSession> session;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return nullptr;
    session = std::make_shared<SiteSession>(site, next_id_++, context, stream, std::move(hello));
    auto it = sessions_.find(site);
    if (it != sessions_.end()) replaced = it->second;
    sessions_[site] = session;
  }
  if (replaced) replaced->Cancel();
  return session;
}

void SessionRegistry::Unregister(const std::shared_ptr<SiteSession>& session) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session->site());
  if (it != sessions_.end() && it->second == session) sessions_.erase(it);
}

std::shared_ptr<SiteSession> SessionRegistry::Find(const std::string& site) const {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(site);
  return it == sessions_.end() ? nullptr : it->second;
}

std::vector<std::string> SessionRegistry::LiveSites() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> sites;
  for (const auto& [site, session] : sessions_) sites.push_back(site);
  return sites;
}

size_t SessionRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

bool SessionRegistry::WaitForAtLeast(size_t count, absl::Time deadline) const {
  absl::MutexLock lock(&mu_);
  auto ready = [this, count]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || sessions_.size() >= count;
  };
  mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
  return !closed_ && sessions_.size() >= count;
}

void SessionRegistry::Close() {
  std::map<std::string, std::shared_ptr<SiteSession>> sessions;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    sessions.swap(sessions_);
  }
  for (auto& [site, session] : sessions) session->Cancel();
}

bool SessionRegistry::closed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

}  // namespace cohort::server
