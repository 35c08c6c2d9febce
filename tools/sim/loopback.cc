#include "tools/sim/loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/util/files.h"

namespace cohort::sim {

ScratchDir::ScratchDir(const std::string& prefix) {
  std::error_code ec;
  std::filesystem::path tmp = std::filesystem::temp_directory_path(ec);
  if (ec) tmp = "/tmp";
  std::string pattern = (tmp / (prefix + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) {
    status_ = absl::InternalError(absl::StrCat("mkdtemp ", pattern, ": ", std::strerror(errno)));
    return;
  }
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

absl::StatusOr<std::unique_ptr<LoopbackPki>> LoopbackPki::Create(const std::string& dir,
                                                           const std::string& federation) {
  if (absl::Status s = EnsureDirectory(dir); !s.ok()) return s;
  const absl::Time now = absl::Now();
  absl::StatusOr<crypto::PemIdentity> ca = crypto::CreateCertificateAuthority(
      federation + " CA", now - absl::Hours(1), now + absl::Hours(48));
  if (!ca.ok()) return ca.status();
  std::unique_ptr<LoopbackPki> pki(new LoopbackPki(dir, federation, *ca));
  if (absl::Status s = crypto::WriteFileAtomically(dir + "/ca.pem", ca->cert_pem, 0644); !s.ok()) {
    return s;
  }
  if (absl::Status s = crypto::WriteFileAtomically(dir + "/ca.key", ca->key_pem, 0600); !s.ok()) {
    return s;
  }
  crypto::CertificateSpec spec;
  spec.common_name = "coordinator";
  spec.dns_names = {"localhost"};
  spec.ip_addresses = {"127.0.0.1"};
  spec.not_before = now - absl::Hours(1);
  spec.not_after = now + absl::Hours(24);
  spec.server_auth = true;
  spec.client_auth = true;
  absl::StatusOr<crypto::PemIdentity> coordinator = crypto::IssueCertificate(*ca, spec);
  if (!coordinator.ok()) return coordinator.status();
  if (absl::Status s = pki->Write("coordinator", *coordinator); !s.ok()) return s;
  return pki;
}

absl::Status LoopbackPki::Write(const std::string& stem, const crypto::PemIdentity& identity) {
  if (absl::Status s =
          crypto::WriteFileAtomically(dir_ + "/" + stem + ".pem", identity.cert_pem, 0644);
      !s.ok()) {
    return s;
  }
  return crypto::WriteFileAtomically(dir_ + "/" + stem + ".key", identity.key_pem, 0600);
}

absl::StatusOr<config::TlsFiles> LoopbackPki::IssueSite(const std::string& site) {
  const absl::Time now = absl::Now();
  crypto::CertificateSpec spec;
  spec.common_name = site;
  spec.uris = {crypto::SiteIdentityUri(federation_, site)};
  spec.not_before = now - absl::Hours(1);
  spec.not_after = now + absl::Hours(24);
  spec.client_auth = true;
  absl::StatusOr<crypto::PemIdentity> issued = crypto::IssueCertificate(ca_, spec);
  if (!issued.ok()) return issued.status();
  if (absl::Status s = Write(site, *issued); !s.ok()) return s;
  return site_files(site);
}

config::TlsFiles LoopbackPki::coordinator_files() const {
  return config::TlsFiles{dir_ + "/ca.pem", dir_ + "/coordinator.pem", dir_ + "/coordinator.key"};
}

config::TlsFiles LoopbackPki::site_files(const std::string& site) const {
  return config::TlsFiles{dir_ + "/ca.pem", dir_ + "/" + site + ".pem", dir_ + "/" + site + ".key"};
}

std::vector<std::string> SiteNames(int count) {
  std::vector<std::string> names;
  names.reserve(count);
  for (int i = 0; i < count; ++i) names.push_back(absl::StrFormat("site-%03d", i));
  return names;
}

absl::StatusOr<client::TrainResult> NoOpTrainer::Train(const config::ModelSpec&,
                                                       const tensor::ParameterLayout&,
                                                       const std::vector<float>& global,
                                                       const client::TrainingParams&) {
  {
    absl::MutexLock lock(&mu_);
    train_calls_.push_back(absl::Now());
  }
  client::TrainResult result;
  result.delta.assign(global.size(), 0.0f);
  result.train_loss = 0.5;
  result.examples = 1;
  return result;
}

absl::StatusOr<client::EvalResult> NoOpTrainer::Evaluate(const config::ModelSpec&,
                                                         const tensor::ParameterLayout&,
                                                         const std::vector<float>&) {
  absl::MutexLock lock(&mu_);
  evaluate_calls_.push_back(absl::Now());
  return client::EvalResult{1, 0.5, 1};
}

std::vector<absl::Time> NoOpTrainer::train_calls() const {
  absl::MutexLock lock(&mu_);
  return train_calls_;
}

std::vector<absl::Time> NoOpTrainer::evaluate_calls() const {
  absl::MutexLock lock(&mu_);
  return evaluate_calls_;
}

ClientThread::ClientThread(config::ClientConfig config) {
  auto trainer = std::make_unique<NoOpTrainer>();
  trainer_ = trainer.get();
  client_ = std::make_unique<client::SiteClient>(std::move(config), std::move(trainer));
  thread_ = std::thread([this] { status_ = client_->Run(); });
}

ClientThread::ClientThread(config::ClientConfig config, std::unique_ptr<client::Trainer> trainer,
                           const std::function<void(client::SiteClient&)>& setup) {
  client_ = std::make_unique<client::SiteClient>(std::move(config), std::move(trainer));
  if (setup) setup(*client_);
  thread_ = std::thread([this] { status_ = client_->Run(); });
}

ClientThread::~ClientThread() {
  client_->Stop();
  if (thread_.joinable()) thread_.join();
}

absl::Status ClientThread::Join() {
  if (!joined_) {
    thread_.join();
    joined_ = true;
  }
  return status_;
}

config::ClientConfig LoopbackClientConfig(const LoopbackPki& pki, const std::string& site, int port) {
  config::ClientConfig c;
  c.site = site;
  c.coordinator = absl::StrCat("127.0.0.1:", port);
  c.tls = pki.site_files(site);
  c.reconnect.initial_backoff = absl::Milliseconds(100);
  c.reconnect.max_backoff = absl::Seconds(1);
  c.exit_when_done = true;
  return c;
}

absl::StatusOr<int> PickFreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::string error = std::strerror(errno);
    close(fd);
    return absl::InternalError(absl::StrCat("bind 127.0.0.1:0: ", error));
  }
  close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

std::vector<SiteRoundTimes> CollectSiteRoundTimes(
    const std::vector<std::unique_ptr<ClientThread>>& clients) {
  std::vector<SiteRoundTimes> rounds;
  for (const auto& client : clients) {
    std::vector<absl::Time> train = client->trainer().train_calls();
    std::vector<absl::Time> eval = client->trainer().evaluate_calls();
    rounds.resize(std::max({rounds.size(), train.size(), eval.size()}));
    for (size_t k = 0; k < train.size(); ++k) {
      rounds[k].first_train = std::min(rounds[k].first_train, train[k]);
      rounds[k].last_train = std::max(rounds[k].last_train, train[k]);
    }
    for (size_t k = 0; k < eval.size(); ++k) {
      rounds[k].first_eval = std::min(rounds[k].first_eval, eval[k]);
      rounds[k].last_eval = std::max(rounds[k].last_eval, eval[k]);
    }
  }
  return rounds;
}

}  // namespace cohort::sim
