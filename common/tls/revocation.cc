#include "common/tls/revocation.h"

#include "common/tls/certificate_review.h"

#include <sys/stat.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto/pki.h"
#include "common/util/files.h"
#include "common/util/log.h"

namespace cohort::tls {
namespace {

// Every RevocationList alive in the process, for RefreshAllRevocationLists().
absl::Mutex registry_mu(absl::kConstInit);
std::vector<std::weak_ptr<RevocationList>>& Registry() ABSL_EXCLUSIVE_LOCKS_REQUIRED(registry_mu) {
  static auto* lists = new std::vector<std::weak_ptr<RevocationList>>();
  return *lists;
}

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

}  // namespace

absl::StatusOr<std::shared_ptr<RevocationList>> RevocationList::Open(std::string crl_path,
                                                                     std::string ca_path) {
  std::shared_ptr<RevocationList> list(
      new RevocationList(std::move(crl_path), std::move(ca_path)));
  if (absl::Status s = list->Refresh(/*force=*/true); !s.ok()) return s;
  absl::MutexLock lock(&registry_mu);
  auto& lists = Registry();
  lists.erase(std::remove_if(lists.begin(), lists.end(),
                             [](const std::weak_ptr<RevocationList>& w) { return w.expired(); }),
              lists.end());
  lists.push_back(list);
  return list;
}

RevocationList::~RevocationList() = default;

absl::Status RevocationList::Refresh(bool force) {
  struct stat st = {};
  FileStamp stamp;
  if (stat(crl_path_.c_str(), &st) == 0) {
    stamp.inode = static_cast<uint64_t>(st.st_ino);
    stamp.size = static_cast<int64_t>(st.st_size);
    stamp.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  }
  absl::MutexLock lock(&mu_);
  if (!force && stamp == stamp_) return absl::OkStatus();
  absl::Status loaded = Load();
  // Remember a bad version too, so it is reported once and not re-read at every handshake.
  stamp_ = stamp;
  return loaded;
}

absl::Status RevocationList::Load() {
  absl::StatusOr<std::string> crl_pem = ReadFileToString(crl_path_);
  if (!crl_pem.ok()) return crl_pem.status();
  absl::StatusOr<std::string> ca_pem = ReadFileToString(ca_path_);
  if (!ca_pem.ok()) return ca_pem.status();
  absl::StatusOr<crypto::CrlInfo> crl = crypto::ParseCrl(*crl_pem, *ca_pem);
  if (!crl.ok()) {
    return absl::Status(crl.status().code(),
                        absl::StrCat("CRL ", crl_path_, ": ", crl.status().message()));
  }
  if (loaded_ && crl->number < number_) {
    return absl::FailedPreconditionError(
        absl::StrCat("CRL ", crl_path_, " has number ", crl->number, ", older than the CRL ",
                     number_, " in force; keeping the newer one"));
  }
  revoked_.clear();
  detail_.clear();
  for (const crypto::RevokedCertificate& entry : crl->revoked) {
    Key key{crl->issuer_common_name, entry.serial_hex};
    revoked_.insert(key);
    detail_[key] =
        absl::StrCat("revoked at ", FormatUtc(entry.revoked_at), " (reason: ", entry.reason, ")");
  }
  number_ = crl->number;
  loaded_ = true;
  next_update_ = crl->next_update;
  spdlog::info("stage=tls loaded CRL {} number {}: {} revoked certificate(s), next update {}",
               crl_path_, number_, revoked_.size(), FormatUtc(next_update_));
  if (next_update_ < absl::Now()) {
    spdlog::warn("stage=tls CRL {} is past its next update ({}); still enforcing it, re-issue "
                 "it with `cohortctl pki crl`",
                 crl_path_, FormatUtc(next_update_));
  }
  return absl::OkStatus();
}

absl::Status RevocationList::Check(const std::string& cert_pem) const {
  absl::StatusOr<crypto::CertificateInfo> info = crypto::InspectCertificate(cert_pem);
  if (!info.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("cannot read the client certificate: ", info.status().message()));
  }
  Key key{info->issuer_common_name, info->serial_hex};
  absl::MutexLock lock(&mu_);
  if (revoked_.count(key) == 0) return absl::OkStatus();
  return absl::UnauthenticatedError(absl::StrCat("client certificate CN=", info->common_name,
                                                 " serial ", info->serial_hex, " is ",
                                                 detail_.at(key), " by ", crl_path_));
}

int64_t RevocationList::number() const {
  absl::MutexLock lock(&mu_);
  return number_;
}

void RefreshAllRevocationLists() {
  std::vector<std::shared_ptr<RevocationList>> lists;
  {
    absl::MutexLock lock(&registry_mu);
    for (const auto& weak : Registry()) {
      if (auto list = weak.lock()) lists.push_back(std::move(list));
    }
  }
  for (const auto& list : lists) {
    if (absl::Status s = list->Refresh(/*force=*/true); !s.ok()) {
      spdlog::error("stage=tls reloading {} failed, the previous CRL stays in force: {}",
                    list->path(), s.message());
    }
  }
}

absl::Status CheckSiteCertificate(const std::string& cert_pem, const std::string& ca_pem,
                                  const RevocationList* crl) {
  absl::StatusOr<CertificateReview> review =
      ReviewCertificate(cert_pem, ca_pem, "client certificate");
  if (!review.ok()) return review.status();
  const crypto::CertificateInfo* info = &review->info;
  std::vector<std::string>* reasons = &review->reasons;
  if (!info->client_auth) {
    reasons->push_back("it is not a client certificate (no extendedKeyUsage clientAuth)");
  }
  // Revocation is checked last and only for an otherwise valid certificate: its message
  // already names the certificate.
  if (reasons->empty() && crl != nullptr) return crl->Check(cert_pem);
  if (reasons->empty()) return absl::OkStatus();
  return absl::UnauthenticatedError(absl::StrCat("client certificate CN=", info->common_name,
                                                 " serial ", info->serial_hex, " refused: ",
                                                 absl::StrJoin(*reasons, "; ")));
}

bool SiteVerifier::Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
                          std::function<void(grpc::Status)> /*callback*/,
                          grpc::Status* sync_status) {
  const grpc::string_ref pem = request->peer_cert();
  const absl::Status checked =
      CheckClientCertificate(absl::string_view(pem.data(), pem.size()), ca_path_, crl_.get());
  if (checked.ok()) {
    *sync_status = grpc::Status::OK;
  } else {
    spdlog::warn("stage=tls refused a TLS handshake: {}", checked.message());
    *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(checked.message()));
  }
  return true;  // decided synchronously
}

absl::Status CheckClientCertificate(absl::string_view cert_pem, const std::string& ca_path,
                                    RevocationList* crl) {
  if (crl != nullptr) {
    if (absl::Status s = crl->Refresh(/*force=*/false); !s.ok()) {
      spdlog::error("stage=tls reloading {} failed, the previous CRL stays in force: {}",
                    crl->path(), s.message());
    }
  }
  absl::StatusOr<std::string> ca_pem = ReadFileToString(ca_path);
  if (!ca_pem.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("cannot read tls.ca: ", ca_pem.status().message()));
  }
  if (cert_pem.empty()) return absl::UnauthenticatedError("the client presented no certificate");
  return CheckSiteCertificate(std::string(cert_pem), *ca_pem, crl);
}

}  // namespace cohort::tls
