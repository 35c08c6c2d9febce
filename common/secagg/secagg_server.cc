#include "common/secagg/secagg_server.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/secagg/key_agreement.h"
#include "common/secagg/neighborhood.h"
#include "common/secagg/prg.h"
#include "common/secagg/secagg_client.h"

namespace cohort::secagg {
namespace {

// nonce (12) + two 40-byte shares + GCM tag (16).
constexpr size_t kSealedSharesBytes = 12 + 2 * kShamirShareBytes + 16;

const char* StageName(SecAggServer::Stage stage) {
  switch (stage) {
    case SecAggServer::Stage::kAdvertise:
      return "advertise keys";
    case SecAggServer::Stage::kShareKeys:
      return "share keys";
    case SecAggServer::Stage::kMaskedInput:
      return "masked input";
    case SecAggServer::Stage::kUnmask:
      return "unmasking";
    case SecAggServer::Stage::kDone:
      return "done";
    case SecAggServer::Stage::kAborted:
      return "aborted";
  }
  return "?";
}

}  // namespace

absl::StatusOr<std::unique_ptr<SecAggServer>> SecAggServer::Create(const v1::SecAggConfig& config,
                                                                   std::string federation,
                                                                   uint64_t round,
                                                                   std::string ca_pem) {
  absl::StatusOr<QuantizationParams> quantization = ValidateSecAggConfig(config);
  if (!quantization.ok()) return quantization.status();
  auto server = std::unique_ptr<SecAggServer>(new SecAggServer(
      config, *quantization, std::move(federation), round, std::move(ca_pem)));
  const int n = config.cohort_size();
  for (int i = 0; i < n; ++i) {
    server->neighbours_.push_back(
        Neighbours(n, static_cast<int>(config.degree()), config.graph_seed(), i));
  }
  return server;
}

SecAggServer::SecAggServer(v1::SecAggConfig config, QuantizationParams quantization,
                           std::string federation, uint64_t round, std::string ca_pem)
    : config_(std::move(config)),
      quantization_(quantization),
      scope_{std::move(federation), round, config_.session_id()},
      ca_pem_(std::move(ca_pem)),
      threshold_(static_cast<int>(config_.threshold())) {}

int SecAggServer::IndexOf(const std::string& site) const {
  for (int i = 0; i < config_.cohort_size(); ++i) {
    if (config_.cohort(i) == site) return i;
  }
  return -1;
}

bool SecAggServer::NeedsSecret(int w) const {
  if (masked_.count(w) > 0) return true;
  for (int v : neighbours_[w]) {
    if (masked_.count(v) > 0) return true;
  }
  return false;
}

absl::Status SecAggServer::Reject(int index, absl::Status why) {
  DropSite(config_.cohort(index), std::string(why.message()));
  return why;
}

absl::Status SecAggServer::AbortWith(const std::string& reason) {
  Abort(reason);
  return absl::FailedPreconditionError(reason);
}

void SecAggServer::Abort(const std::string& reason) {
  if (stage_ == Stage::kAborted || stage_ == Stage::kDone) return;
  stage_ = Stage::kAborted;
  abort_reason_ = reason;
  sum_.reset();
  self_mask_shares_.clear();
  key_shares_.clear();
}

void SecAggServer::DropSite(const std::string& site, const std::string& reason) {
  const int index = IndexOf(site);
  if (index < 0 || dropped_.count(index) > 0) return;
  if (stage_ == Stage::kDone || stage_ == Stage::kAborted) return;
  dropped_[index] = reason;
  drop_reasons_[site] = reason;
}

absl::Status SecAggServer::ExpectStage(Stage stage, const std::string& site, int* index) const {
  *index = IndexOf(site);
  if (*index < 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("site '", site, "' is not in round ", scope_.round, "'s cohort"));
  }
  if (stage_ != stage) {
    return absl::FailedPreconditionError(absl::StrCat("secure aggregation of round ",
                                                      scope_.round, " is in stage '",
                                                      StageName(stage_), "', not '",
                                                      StageName(stage), "'"));
  }
  if (!IsLive(*index)) {
    return absl::FailedPreconditionError(absl::StrCat("site '", site, "' was dropped from round ",
                                                      scope_.round, ": ",
                                                      dropped_.at(*index)));
  }
  return absl::OkStatus();
}

std::vector<std::string> SecAggServer::Active() const {
  std::vector<std::string> sites;
  for (int i = 0; i < config_.cohort_size(); ++i) {
    bool member = false;
    switch (stage_) {
      case Stage::kAdvertise:
        member = true;
        break;
      case Stage::kShareKeys:
        member = advertisements_.count(i) > 0;
        break;
      case Stage::kMaskedInput:
        member = shared_.count(i) > 0;
        break;
      case Stage::kUnmask:
        member = masked_.count(i) > 0;
        break;
      default:
        break;
    }
    if (member && IsLive(i)) sites.push_back(config_.cohort(i));
  }
  return sites;
}

std::vector<std::string> SecAggServer::Pending() const {
  std::vector<std::string> sites;
  for (const std::string& site : Active()) {
    const int i = IndexOf(site);
    bool answered = false;
    switch (stage_) {
      case Stage::kAdvertise:
        answered = advertisements_.count(i) > 0;
        break;
      case Stage::kShareKeys:
        answered = shared_.count(i) > 0;
        break;
      case Stage::kMaskedInput:
        answered = masked_.count(i) > 0;
        break;
      case Stage::kUnmask:
        answered = responded_.count(i) > 0;
        break;
      default:
        break;
    }
    if (!answered) sites.push_back(site);
  }
  return sites;
}

void SecAggServer::DropUnderconnected(std::set<int>* members, const std::string& reason) {
  bool changed = true;
  while (changed) {
    changed = false;
    for (auto it = members->begin(); it != members->end();) {
      int holders = 1;  // the site itself holds a share of its secrets
      for (int j : neighbours_[*it]) holders += members->count(j);
      if (holders < threshold_) {
        DropSite(config_.cohort(*it), absl::StrCat(reason, " (", holders - 1, " of ",
                                                   threshold_ - 1, " needed)"));
        it = members->erase(it);
        changed = true;
      } else {
        ++it;
      }
    }
  }
}

absl::Status SecAggServer::OnAdvertisement(const std::string& site,
                                           const v1::KeyAdvertisement& ad, absl::Time now) {
  int index;
  if (absl::Status s = ExpectStage(Stage::kAdvertise, site, &index); !s.ok()) return s;
  if (advertisements_.count(index) > 0) {
    return Reject(index, absl::AlreadyExistsError("a second key advertisement in one round"));
  }
  // The CA bundle is parsed once per round, not once per advertisement.
  if (trust_ == nullptr) {
    absl::StatusOr<std::shared_ptr<const crypto::TrustStore>> trust =
        crypto::TrustStore::Create(ca_pem_);
    if (!trust.ok()) {
      return Reject(index, absl::UnauthenticatedError(absl::StrCat(
                               "the federation CA cannot be read: ", trust.status().message())));
    }
    trust_ = std::move(*trust);
  }
  if (absl::Status s = VerifyAdvertisement(ad, scope_, site, *trust_, now); !s.ok()) {
    return Reject(index, s);
  }
  for (const auto& [other, existing] : advertisements_) {
    if (existing.encryption_public_key() == ad.encryption_public_key() ||
        existing.masking_public_key() == ad.masking_public_key() ||
        existing.encryption_public_key() == ad.masking_public_key() ||
        existing.masking_public_key() == ad.encryption_public_key()) {
      return Reject(index, absl::InvalidArgumentError(absl::StrCat(
                               "advertises a public key already used by '",
                               config_.cohort(other), "'")));
    }
  }
  advertisements_[index] = ad;
  return absl::OkStatus();
}

absl::Status SecAggServer::CloseAdvertise() {
  if (stage_ != Stage::kAdvertise) {
    return absl::FailedPreconditionError("the advertise stage is not open");
  }
  for (const std::string& site : Pending()) {
    DropSite(site, "no key advertisement before the deadline");
  }
  std::set<int> members;
  for (const auto& [index, ad] : advertisements_) {
    if (IsLive(index)) members.insert(index);
  }
  DropUnderconnected(&members, "too few neighbours advertised keys");
  for (auto it = advertisements_.begin(); it != advertisements_.end();) {
    it = members.count(it->first) > 0 ? std::next(it) : advertisements_.erase(it);
  }
  if (members.empty()) {
    return AbortWith(absl::StrCat("secure aggregation aborted: no site has ", threshold_,
                                  " neighbours with advertised keys"));
  }
  stage_ = Stage::kShareKeys;
  return absl::OkStatus();
}

absl::StatusOr<v1::PeerKeys> SecAggServer::PeerKeysFor(const std::string& site) const {
  int index;
  if (absl::Status s = ExpectStage(Stage::kShareKeys, site, &index); !s.ok()) return s;
  if (advertisements_.count(index) == 0) {
    return absl::FailedPreconditionError(absl::StrCat("site '", site, "' advertised no keys"));
  }
  v1::PeerKeys keys;
  for (int j : neighbours_[index]) {
    auto it = advertisements_.find(j);
    if (it != advertisements_.end()) *keys.add_advertisements() = it->second;
  }
  return keys;
}

absl::Status SecAggServer::OnShareKeys(const std::string& site,
                                       const v1::ShareKeysResponse& response) {
  int index;
  if (absl::Status s = ExpectStage(Stage::kShareKeys, site, &index); !s.ok()) return s;
  if (advertisements_.count(index) == 0) {
    return absl::FailedPreconditionError(absl::StrCat("site '", site, "' advertised no keys"));
  }
  if (shared_.count(index) > 0) {
    return Reject(index, absl::AlreadyExistsError("shared its keys twice in one round"));
  }
  // Exactly one sealed share for every neighbour that advertised keys: otherwise two
  // neighbours could disagree on whether they mask with each other.
  std::set<int> expected;
  for (int j : neighbours_[index]) {
    if (advertisements_.count(j) > 0) expected.insert(j);
  }
  std::map<int, std::string> sealed;
  for (const v1::EncryptedShare& share : response.shares()) {
    const int receiver = IndexOf(share.receiver());
    if (share.sender() != site) {
      return Reject(index, absl::InvalidArgumentError(
                               absl::StrCat("a share claims sender '", share.sender(), "'")));
    }
    if (receiver < 0 || expected.count(receiver) == 0 || sealed.count(receiver) > 0) {
      return Reject(index, absl::InvalidArgumentError(absl::StrCat(
                               "a share for '", share.receiver(),
                               "', which is not a neighbour with keys, or is named twice")));
    }
    if (share.ciphertext().size() != kSealedSharesBytes) {
      return Reject(index, absl::InvalidArgumentError(absl::StrCat(
                               "the share for '", share.receiver(), "' has ",
                               share.ciphertext().size(), " bytes, not ", kSealedSharesBytes)));
    }
    sealed[receiver] = share.ciphertext();
  }
  if (sealed.size() != expected.size()) {
    return Reject(index, absl::InvalidArgumentError(
                             absl::StrCat("shares for ", sealed.size(), " of its ",
                                          expected.size(), " neighbours with keys")));
  }
  for (auto& [receiver, ciphertext] : sealed) {
    ciphertexts_[receiver][index] = std::move(ciphertext);
  }
  shared_.insert(index);
  return absl::OkStatus();
}

absl::Status SecAggServer::CloseShareKeys() {
  if (stage_ != Stage::kShareKeys) {
    return absl::FailedPreconditionError("the share-keys stage is not open");
  }
  for (const std::string& site : Pending()) DropSite(site, "no key shares before the deadline");
  std::set<int> members;
  for (int i : shared_) {
    if (IsLive(i)) members.insert(i);
  }
  DropUnderconnected(&members, "too few neighbours shared keys");
  shared_ = members;
  if (shared_.empty()) {
    return AbortWith(absl::StrCat("secure aggregation aborted: no site has ", threshold_,
                                  " neighbours that shared keys"));
  }
  stage_ = Stage::kMaskedInput;
  return absl::OkStatus();
}

absl::StatusOr<v1::ShareDelivery> SecAggServer::SharesFor(const std::string& site) const {
  int index;
  if (absl::Status s = ExpectStage(Stage::kMaskedInput, site, &index); !s.ok()) return s;
  if (shared_.count(index) == 0) {
    return absl::FailedPreconditionError(absl::StrCat("site '", site, "' shared no keys"));
  }
  v1::ShareDelivery delivery;
  auto inbox = ciphertexts_.find(index);
  if (inbox == ciphertexts_.end()) return delivery;
  for (const auto& [sender, ciphertext] : inbox->second) {
    if (shared_.count(sender) == 0) continue;
    v1::EncryptedShare* share = delivery.add_shares();
    share->set_sender(config_.cohort(sender));
    share->set_receiver(site);
    share->set_ciphertext(ciphertext);
  }
  return delivery;
}

absl::Status SecAggServer::CheckMaskedInput(const std::string& site) const {
  int index;
  if (absl::Status s = ExpectStage(Stage::kMaskedInput, site, &index); !s.ok()) return s;
  if (shared_.count(index) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("site '", site, "' did not share keys, so its input cannot be unmasked"));
  }
  if (masked_.count(index) > 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("site '", site, "' already sent its masked input for round ", scope_.round));
  }
  return absl::OkStatus();
}

absl::Status SecAggServer::OnMaskedInput(const std::string& site, const ModVector& masked) {
  if (absl::Status s = CheckMaskedInput(site); !s.ok()) return s;
  const int index = IndexOf(site);
  if (masked.modulus_bits() != quantization_.modulus_bits ||
      masked.size() != config_.vector_length()) {
    return Reject(index, absl::InvalidArgumentError(absl::StrCat(
                             "masked input has ", masked.size(), " words mod 2^",
                             masked.modulus_bits(), ", the round expects ",
                             config_.vector_length(), " mod 2^", quantization_.modulus_bits)));
  }
  if (!sum_.has_value()) {
    sum_ = masked;
  } else if (absl::Status s = sum_->AddAssign(masked); !s.ok()) {
    return Reject(index, s);
  }
  masked_.insert(index);
  return absl::OkStatus();
}

absl::Status SecAggServer::CloseMaskedInput() {
  if (stage_ != Stage::kMaskedInput) {
    return absl::FailedPreconditionError("the masked-input stage is not open");
  }
  for (const std::string& site : Pending()) {
    DropSite(site, "no masked input before the deadline");
  }
  if (masked_.empty()) return AbortWith("secure aggregation aborted: no masked input arrived");
  // Every secret to be reconstructed needs t holders that can still answer.
  for (int w : shared_) {
    if (!NeedsSecret(w)) continue;
    int holders = masked_.count(w) > 0 && IsLive(w);
    for (int v : neighbours_[w]) holders += masked_.count(v) > 0 && IsLive(v);
    if (holders < threshold_) {
      return AbortWith(absl::StrCat("secure aggregation aborted: only ", holders,
                                    " holders of the secrets of '", config_.cohort(w),
                                    "' remain to unmask; ", threshold_, " are needed"));
    }
  }
  stage_ = Stage::kUnmask;
  return absl::OkStatus();
}

absl::StatusOr<v1::UnmaskRequest> SecAggServer::UnmaskRequestFor(const std::string& site) const {
  int index;
  if (absl::Status s = ExpectStage(Stage::kUnmask, site, &index); !s.ok()) return s;
  if (masked_.count(index) == 0) {
    return absl::FailedPreconditionError(absl::StrCat("site '", site, "' has no input in the sum"));
  }
  v1::UnmaskRequest request;
  for (int j : neighbours_[index]) {
    if (masked_.count(j) > 0) {
      request.add_survivors(config_.cohort(j));
    } else if (shared_.count(j) > 0) {
      request.add_dropped(config_.cohort(j));
    }
  }
  return request;
}

absl::Status SecAggServer::OnUnmaskResponse(const std::string& site,
                                            const v1::UnmaskResponse& response) {
  int index;
  if (absl::Status s = ExpectStage(Stage::kUnmask, site, &index); !s.ok()) return s;
  if (masked_.count(index) == 0) {
    return absl::FailedPreconditionError(absl::StrCat("site '", site, "' has no input in the sum"));
  }
  if (responded_.count(index) > 0) {
    return Reject(index, absl::AlreadyExistsError("a second unmask response in one round"));
  }
  const std::vector<int>& mine = neighbours_[index];
  auto is_neighbour = [&mine](int j) { return std::binary_search(mine.begin(), mine.end(), j); };
  std::set<int> seen;
  std::vector<std::pair<int, ShamirShare>> self_mask, keys;
  for (const auto* list : {&response.self_mask_shares(), &response.key_shares()}) {
    const bool self_mask_list = list == &response.self_mask_shares();
    for (const v1::RevealedShare& revealed : *list) {
      const int owner = IndexOf(revealed.owner());
      // Self-mask shares of survivors (the responder's own included); masking-key shares
      // only of neighbours that dropped after sharing.
      const bool expected =
          owner >= 0 &&
          (self_mask_list ? (owner == index || is_neighbour(owner)) && masked_.count(owner) > 0
                          : is_neighbour(owner) && shared_.count(owner) > 0 &&
                                masked_.count(owner) == 0);
      if (!expected || !seen.insert(owner).second) {
        return Reject(index, absl::InvalidArgumentError(absl::StrCat(
                                 "an unrequested or repeated share of '", revealed.owner(), "'")));
      }
      if (revealed.share().size() != kShamirShareBytes) {
        return Reject(index, absl::InvalidArgumentError(absl::StrCat(
                                 "the share of '", revealed.owner(), "' is not ",
                                 kShamirShareBytes, " bytes")));
      }
      ShamirShare share{static_cast<uint32_t>(index + 1), SecretBytes(revealed.share())};
      (self_mask_list ? self_mask : keys).emplace_back(owner, std::move(share));
    }
  }
  for (auto& [owner, share] : self_mask) self_mask_shares_[owner].push_back(std::move(share));
  for (auto& [owner, share] : keys) key_shares_[owner].push_back(std::move(share));
  responded_.insert(index);
  return absl::OkStatus();
}

absl::Status SecAggServer::CloseUnmask() {
  if (stage_ != Stage::kUnmask) {
    return absl::FailedPreconditionError("the unmasking stage is not open");
  }
  for (const std::string& site : Pending()) DropSite(site, "no unmask response before the deadline");
  // Check first, reconstruct after: an abort must leave every secret unrecovered.
  for (int w : shared_) {
    if (!NeedsSecret(w)) continue;
    const bool survived = masked_.count(w) > 0;
    const auto& shares = survived ? self_mask_shares_[w] : key_shares_[w];
    if (static_cast<int>(shares.size()) < threshold_) {
      return AbortWith(absl::StrCat("secure aggregation aborted: ", shares.size(), " of ",
                                    threshold_, " shares of the ",
                                    survived ? "self-mask seed" : "masking key", " of '",
                                    config_.cohort(w), "' arrived"));
    }
  }
  for (int w : masked_) {
    absl::StatusOr<SecretBytes> seed = ShamirReconstruct(self_mask_shares_[w], threshold_);
    if (!seed.ok()) {
      return AbortWith(absl::StrCat("cannot reconstruct the self mask of '", config_.cohort(w),
                                    "': ", seed.status().message()));
    }
    if (SelfMaskCommitment(*seed) != advertisements_.at(w).self_mask_commitment()) {
      return AbortWith(absl::StrCat("the reconstructed self mask of '", config_.cohort(w),
                                    "' does not match its commitment (corrupted shares)"));
    }
    if (absl::Status s = ApplyMask(*seed, MaskSign::kSubtract, &*sum_); !s.ok()) {
      return AbortWith(std::string(s.message()));
    }
    regenerated_words_ += sum_->size();
  }
  for (int w : shared_) {
    if (masked_.count(w) > 0 || !NeedsSecret(w)) continue;
    absl::StatusOr<SecretBytes> key = ShamirReconstruct(key_shares_[w], threshold_);
    if (!key.ok()) {
      return AbortWith(absl::StrCat("cannot reconstruct the masking key of '",
                                    config_.cohort(w), "': ", key.status().message()));
    }
    absl::StatusOr<X25519KeyPair> pair = X25519KeyPairFromPrivate(*key);
    if (!pair.ok() || pair->public_key != advertisements_.at(w).masking_public_key()) {
      return AbortWith(absl::StrCat("the reconstructed masking key of '", config_.cohort(w),
                                    "' does not match its advertisement (forged shares)"));
    }
    for (int v : neighbours_[w]) {
      if (masked_.count(v) == 0) continue;
      absl::StatusOr<SecretBytes> shared =
          X25519SharedSecret(pair->private_key, advertisements_.at(v).masking_public_key());
      if (!shared.ok()) return AbortWith(std::string(shared.status().message()));
      absl::StatusOr<SecretBytes> seed =
          DeriveKey(*shared, KeyContext{scope_.federation, scope_.round, scope_.session_id,
                                        config_.cohort(w), config_.cohort(v),
                                        kPairwiseMaskPurpose});
      if (!seed.ok()) return AbortWith(std::string(seed.status().message()));
      // v added the mask when it is the lower position; undo with the opposite sign.
      const MaskSign undo = v < w ? MaskSign::kSubtract : MaskSign::kAdd;
      if (absl::Status s = ApplyMask(*seed, undo, &*sum_); !s.ok()) {
        return AbortWith(std::string(s.message()));
      }
      regenerated_words_ += sum_->size();
    }
  }
  self_mask_shares_.clear();
  key_shares_.clear();
  for (int w : masked_) survivors_.push_back(config_.cohort(w));
  stage_ = Stage::kDone;
  return absl::OkStatus();
}

}  // namespace cohort::secagg
