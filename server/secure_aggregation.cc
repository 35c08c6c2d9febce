#include "server/secure_aggregation.h"

#include "absl/strings/str_cat.h"

namespace cohort::server {

absl::Status SecureAggregation::OnSiteMessage(const std::string& site,
                                              const v1::SecAggClientMessage& message) {
  absl::MutexLock lock(&mu_);
  switch (message.kind_case()) {
    case v1::SecAggClientMessage::kAdvertise:
      return server_->OnAdvertisement(site, message.advertise(), absl::Now());
    case v1::SecAggClientMessage::kShareKeys:
      return server_->OnShareKeys(site, message.share_keys());
    case v1::SecAggClientMessage::kUnmask:
      return server_->OnUnmaskResponse(site, message.unmask());
    case v1::SecAggClientMessage::kAbort:
      if (message.abort().tampering_detected()) {
        server_->Abort(absl::StrCat("site '", site, "' detected tampering with the protocol: ",
                                    message.abort().reason()));
      } else {
        server_->DropSite(site, absl::StrCat("site left secure aggregation: ",
                                             message.abort().reason()));
      }
      return absl::OkStatus();
    case v1::SecAggClientMessage::KIND_NOT_SET:
      break;
  }
  server_->DropSite(site, "an empty secure aggregation message");
  return absl::InvalidArgumentError("an empty secure aggregation message");
}

absl::Status SecureAggregation::CheckMaskedInput(const std::string& site) {
  absl::MutexLock lock(&mu_);
  return server_->CheckMaskedInput(site);
}

absl::Status SecureAggregation::OnMaskedInput(const std::string& site,
                                              const secagg::ModVector& masked) {
  absl::MutexLock lock(&mu_);
  return server_->OnMaskedInput(site, masked);
}

void SecureAggregation::DropSite(const std::string& site, const std::string& reason) {
  absl::MutexLock lock(&mu_);
  server_->DropSite(site, reason);
}

bool SecureAggregation::StageDone() const {
  using Stage = secagg::SecAggServer::Stage;
  return cancelled_ || server_->stage() == Stage::kAborted || server_->stage() == Stage::kDone ||
         server_->StageComplete();
}

bool SecureAggregation::WaitForStage(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithDeadline(absl::Condition(this, &SecureAggregation::StageDone), deadline);
  return !cancelled_ && server_->StageComplete();
}

void SecureAggregation::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
}

}  // namespace cohort::server
