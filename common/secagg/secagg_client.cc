#include "common/secagg/secagg_client.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/secagg/aead.h"
#include "common/secagg/neighborhood.h"
#include "common/secagg/prg.h"
#include "common/secagg/signature.h"
#include "common/util/site_id.h"

namespace cohort::secagg {
namespace {

constexpr size_t kSessionIdBytes = 32;
// The vector may hold at most this many words (a 2^31-parameter model, 8 GiB mod 2^32).
constexpr uint64_t kMaxVectorLength = uint64_t{1} << 31;


}  // namespace

absl::StatusOr<QuantizationParams> ValidateSecAggConfig(const v1::SecAggConfig& config) {
  if (config.session_id().size() != kSessionIdBytes) {
    return absl::InvalidArgumentError("secure aggregation session id must be 32 bytes");
  }
  if (config.graph_seed().size() != kSessionIdBytes) {
    return absl::InvalidArgumentError("secure aggregation graph seed must be 32 bytes");
  }
  const int n = config.cohort_size();
  std::set<std::string> members;
  for (const std::string& site : config.cohort()) {
    if (!IsValidSiteId(site)) {
      return absl::InvalidArgumentError(absl::StrCat("cohort names an invalid site id '", site, "'"));
    }
    if (!members.insert(site).second) {
      return absl::InvalidArgumentError(absl::StrCat("cohort names site '", site, "' twice"));
    }
  }
  if (absl::Status s = ValidateGraphParameters(n, static_cast<int>(config.degree()),
                                               static_cast<int>(config.threshold()));
      !s.ok()) {
    return s;
  }
  QuantizationParams params;
  params.bits = static_cast<int>(std::min<uint32_t>(config.bits(), 1000));
  params.clip_range = config.clip_range();
  params.modulus_bits = static_cast<int>(std::min<uint32_t>(config.modulus_bits(), 1000));
  if (absl::Status s = ValidateQuantization(params, n); !s.ok()) return s;
  // The weight word sums example counts capped at weight_cap: n of them must not wrap.
  const long double modulus = params.modulus_bits == 64 ? 18446744073709551616.0L : 4294967296.0L;
  if (config.weight_cap() < 1 ||
      static_cast<long double>(config.weight_cap()) * n >= modulus) {
    return absl::InvalidArgumentError(absl::StrCat("weight cap ", config.weight_cap(),
                                                   " for ", n, " sites can wrap modulo 2^",
                                                   params.modulus_bits));
  }
  if (config.vector_length() < 2 || config.vector_length() > kMaxVectorLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("masked vector length ", config.vector_length(), " is out of range"));
  }
  return params;
}

absl::StatusOr<std::unique_ptr<SecAggClient>> SecAggClient::Create(
    SiteCredentials credentials, uint64_t round, const v1::SecAggConfig& config) {
  absl::StatusOr<QuantizationParams> quantization = ValidateSecAggConfig(config);
  if (!quantization.ok()) return quantization.status();
  auto client = std::unique_ptr<SecAggClient>(
      new SecAggClient(std::move(credentials), round, config, *quantization));
  client->my_index_ = client->IndexOf(client->credentials_.site_id);
  if (client->my_index_ < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "site '", client->credentials_.site_id, "' is not in the round's cohort"));
  }
  client->neighbours_ = Neighbours(config.cohort_size(), static_cast<int>(config.degree()),
                                   config.graph_seed(), client->my_index_);
  return client;
}

SecAggClient::SecAggClient(SiteCredentials credentials, uint64_t round, v1::SecAggConfig config,
                           QuantizationParams quantization)
    : credentials_(std::move(credentials)),
      config_(std::move(config)),
      quantization_(quantization),
      scope_{credentials_.federation, round, config_.session_id()} {}

SecAggClient::~SecAggClient() {
  OPENSSL_cleanse(credentials_.private_key_pem.data(), credentials_.private_key_pem.size());
}

int SecAggClient::IndexOf(const std::string& site) const {
  for (int i = 0; i < config_.cohort_size(); ++i) {
    if (config_.cohort(i) == site) return i;
  }
  return -1;
}

absl::Status SecAggClient::Fail(absl::Status status) {
  stage_ = Stage::kAborted;
  encryption_keys_.reset();
  masking_keys_.reset();
  self_mask_seed_.Wipe();
  held_.clear();
  own_shares_ = HeldShares();
  return status;
}

std::vector<std::string> SecAggClient::share_holders_of() const {
  std::vector<std::string> sites;
  for (const auto& [site, shares] : held_) sites.push_back(site);
  return sites;
}

absl::StatusOr<SecretBytes> SecAggClient::ChannelKey(const Peer& peer) const {
  absl::StatusOr<SecretBytes> shared =
      X25519SharedSecret(encryption_keys_->private_key, peer.encryption_public_key);
  if (!shared.ok()) return shared.status();
  const std::string& other = config_.cohort(peer.index);
  return DeriveKey(*shared, KeyContext{scope_.federation, scope_.round, scope_.session_id,
                                       credentials_.site_id, other, kShareEncryptionPurpose});
}

absl::StatusOr<SecretBytes> SecAggClient::PairwiseMaskSeed(const std::string& peer_site,
                                                           const Peer& peer) const {
  absl::StatusOr<SecretBytes> shared =
      X25519SharedSecret(masking_keys_->private_key, peer.masking_public_key);
  if (!shared.ok()) return shared.status();
  return DeriveKey(*shared, KeyContext{scope_.federation, scope_.round, scope_.session_id,
                                       credentials_.site_id, peer_site, kPairwiseMaskPurpose});
}

absl::StatusOr<v1::KeyAdvertisement> SecAggClient::AdvertiseKeys() {
  if (stage_ != Stage::kAdvertise) {
    return absl::FailedPreconditionError("keys were already advertised for this round");
  }
  absl::StatusOr<X25519KeyPair> encryption = GenerateX25519KeyPair();
  if (!encryption.ok()) return Fail(encryption.status());
  absl::StatusOr<X25519KeyPair> masking = GenerateX25519KeyPair();
  if (!masking.ok()) return Fail(masking.status());
  self_mask_seed_ = RandomSecret(32);
  v1::KeyAdvertisement ad;
  ad.set_site_id(credentials_.site_id);
  ad.set_encryption_public_key(encryption->public_key);
  ad.set_masking_public_key(masking->public_key);
  ad.set_self_mask_commitment(SelfMaskCommitment(self_mask_seed_));
  ad.set_certificate_pem(credentials_.certificate_pem);
  absl::StatusOr<std::string> signature = SignMessage(
      credentials_.private_key_pem,
      AdvertisementSigningBytes(scope_, credentials_.site_id, encryption->public_key,
                                masking->public_key, ad.self_mask_commitment()));
  if (!signature.ok()) return Fail(signature.status());
  ad.set_signature(*signature);
  encryption_keys_ = std::move(*encryption);
  masking_keys_ = std::move(*masking);
  stage_ = Stage::kShareKeys;
  return ad;
}

absl::StatusOr<v1::ShareKeysResponse> SecAggClient::ShareKeys(const v1::PeerKeys& peers,
                                                              absl::Time now) {
  if (stage_ != Stage::kShareKeys) {
    return absl::FailedPreconditionError("not expecting peer keys in this stage");
  }
  const int threshold = static_cast<int>(config_.threshold());
  std::set<std::string> public_keys = {encryption_keys_->public_key,
                                       masking_keys_->public_key};
  std::map<std::string, Peer> peers_seen;
  // The CA bundle parsed once for all the neighbours' advertisements.
  absl::StatusOr<std::shared_ptr<const crypto::TrustStore>> trust =
      crypto::TrustStore::Create(credentials_.ca_pem);
  if (!trust.ok()) {
    return Fail(absl::FailedPreconditionError(
        absl::StrCat("this site's federation CA cannot be read: ", trust.status().message())));
  }
  for (const v1::KeyAdvertisement& ad : peers.advertisements()) {
    const int index = IndexOf(ad.site_id());
    if (index == my_index_) {
      // Our own advertisement echoed back must be exactly what we sent.
      if (ad.encryption_public_key() != encryption_keys_->public_key ||
          ad.masking_public_key() != masking_keys_->public_key ||
          ad.self_mask_commitment() != SelfMaskCommitment(self_mask_seed_)) {
        return Fail(absl::UnauthenticatedError(
            "the coordinator relayed a different key advertisement under this site's name"));
      }
      continue;
    }
    if (index < 0 || !std::binary_search(neighbours_.begin(), neighbours_.end(), index)) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("peer keys name '", ad.site_id(), "', not a neighbour in this round")));
    }
    if (peers_seen.count(ad.site_id()) > 0) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("peer keys list site '", ad.site_id(), "' twice")));
    }
    if (absl::Status s = VerifyAdvertisement(ad, scope_, ad.site_id(), **trust, now);
        !s.ok()) {
      return Fail(s);
    }
    // Distinct keys: one site's key replayed under another's name is refused.
    if (!public_keys.insert(ad.encryption_public_key()).second ||
        !public_keys.insert(ad.masking_public_key()).second) {
      return Fail(absl::UnauthenticatedError(
          absl::StrCat("site '", ad.site_id(), "' advertises a public key already in use")));
    }
    peers_seen[ad.site_id()] = Peer{index, ad.encryption_public_key(), ad.masking_public_key()};
  }
  // The shares go to the neighbours with keys and to this site itself.
  if (static_cast<int>(peers_seen.size()) + 1 < threshold) {
    return Fail(absl::FailedPreconditionError(
        absl::StrCat("only ", peers_seen.size(), " of ", neighbours_.size(),
                     " neighbours advertised keys; ", threshold - 1, " are needed")));
  }
  peers_ = std::move(peers_seen);
  std::vector<uint32_t> xs;
  for (const auto& [site, peer] : peers_) xs.push_back(static_cast<uint32_t>(peer.index + 1));
  xs.push_back(static_cast<uint32_t>(my_index_ + 1));  // last: our own share
  absl::StatusOr<std::vector<ShamirShare>> self_mask_shares =
      ShamirSplit(self_mask_seed_, threshold, xs);
  if (!self_mask_shares.ok()) return Fail(self_mask_shares.status());
  absl::StatusOr<std::vector<ShamirShare>> key_shares =
      ShamirSplit(masking_keys_->private_key, threshold, xs);
  if (!key_shares.ok()) return Fail(key_shares.status());

  v1::ShareKeysResponse response;
  size_t i = 0;
  for (const auto& [site, peer] : peers_) {
    absl::StatusOr<SecretBytes> key = ChannelKey(peer);
    if (!key.ok()) return Fail(key.status());
    SecretBytes plaintext(kShamirShareBytes * 2);
    std::copy((*self_mask_shares)[i].y.data(),
              (*self_mask_shares)[i].y.data() + kShamirShareBytes, plaintext.data());
    std::copy((*key_shares)[i].y.data(), (*key_shares)[i].y.data() + kShamirShareBytes,
              plaintext.data() + kShamirShareBytes);
    absl::StatusOr<std::string> sealed =
        Seal(*key, plaintext, ShareAssociatedData(scope_, credentials_.site_id, site));
    if (!sealed.ok()) return Fail(sealed.status());
    v1::EncryptedShare* share = response.add_shares();
    share->set_sender(credentials_.site_id);
    share->set_receiver(site);
    share->set_ciphertext(*sealed);
    ++i;
  }
  own_shares_ = HeldShares{std::move((*self_mask_shares)[i].y), std::move((*key_shares)[i].y)};
  stage_ = Stage::kMaskedInput;
  return response;
}

absl::StatusOr<ModVector> SecAggClient::MaskInput(const v1::ShareDelivery& delivery,
                                                  ModVector input) {
  if (stage_ != Stage::kMaskedInput) {
    return absl::FailedPreconditionError("not expecting shares in this stage");
  }
  if (input.modulus_bits() != quantization_.modulus_bits ||
      input.size() != config_.vector_length()) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "input has ", input.size(), " words mod 2^", input.modulus_bits(), ", the round expects ",
        config_.vector_length(), " mod 2^", quantization_.modulus_bits)));
  }
  std::map<std::string, HeldShares> held;
  for (const v1::EncryptedShare& share : delivery.shares()) {
    if (share.receiver() != credentials_.site_id) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("received a share addressed to '", share.receiver(), "'")));
    }
    auto peer = peers_.find(share.sender());
    if (peer == peers_.end()) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "received a share from '", share.sender(), "', which did not advertise keys to us")));
    }
    if (held.count(share.sender()) > 0) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("received two shares from '", share.sender(), "'")));
    }
    absl::StatusOr<SecretBytes> key = ChannelKey(peer->second);
    if (!key.ok()) return Fail(key.status());
    absl::StatusOr<SecretBytes> plaintext =
        Open(*key, share.ciphertext(), ShareAssociatedData(scope_, share.sender(), credentials_.site_id));
    if (!plaintext.ok()) {
      return Fail(absl::UnauthenticatedError(absl::StrCat(
          "the share from '", share.sender(),
          "' does not decrypt for this round and session (tampered or replayed): ",
          plaintext.status().message())));
    }
    if (plaintext->size() != 2 * kShamirShareBytes) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("the share from '", share.sender(), "' has the wrong size")));
    }
    HeldShares shares{SecretBytes(plaintext->view().substr(0, kShamirShareBytes)),
                      SecretBytes(plaintext->view().substr(kShamirShareBytes))};
    held.emplace(share.sender(), std::move(shares));
  }
  const int threshold = static_cast<int>(config_.threshold());
  if (static_cast<int>(held.size()) + 1 < threshold) {
    return Fail(absl::FailedPreconditionError(absl::StrCat(
        "only ", held.size(), " neighbours shared keys; ", threshold - 1, " are needed")));
  }
  // y = x + PRG(b) + sum over neighbours w of (+/-) PRG(s_{u,w}); the lower cohort position
  // adds the pairwise mask and the higher one subtracts it, so they cancel in the sum.
  if (absl::Status s = ApplyMask(self_mask_seed_, MaskSign::kAdd, &input); !s.ok()) {
    return Fail(s);
  }
  for (const auto& [site, shares] : held) {
    const Peer& peer = peers_.at(site);
    absl::StatusOr<SecretBytes> seed = PairwiseMaskSeed(site, peer);
    if (!seed.ok()) return Fail(seed.status());
    const MaskSign sign = my_index_ < peer.index ? MaskSign::kAdd : MaskSign::kSubtract;
    if (absl::Status s = ApplyMask(*seed, sign, &input); !s.ok()) return Fail(s);
  }
  held_ = std::move(held);
  // Our own secrets now live only as shares at the neighbours.
  self_mask_seed_.Wipe();
  encryption_keys_.reset();
  masking_keys_.reset();
  stage_ = Stage::kUnmask;
  return input;
}

absl::StatusOr<v1::UnmaskResponse> SecAggClient::Unmask(const v1::UnmaskRequest& request) {
  if (stage_ != Stage::kUnmask) {
    return absl::FailedPreconditionError(stage_ == Stage::kDone
                                             ? "this site already answered an unmask request "
                                               "for this round"
                                             : "not expecting an unmask request in this stage");
  }
  std::set<std::string> survivors, dropped;
  for (const std::string& site : request.survivors()) {
    if (IndexOf(site) < 0 || !survivors.insert(site).second) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("unmask request names '", site, "' twice or outside the cohort")));
    }
  }
  for (const std::string& site : request.dropped()) {
    if (IndexOf(site) < 0 || !dropped.insert(site).second) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("unmask request names '", site, "' twice or outside the cohort")));
    }
    if (survivors.count(site) > 0) {
      return Fail(absl::PermissionDeniedError(absl::StrCat(
          "the coordinator asks for both shares of site '", site, "' (as survivor and as dropped)")));
    }
  }
  if (dropped.count(credentials_.site_id) > 0) {
    return Fail(absl::InvalidArgumentError("the unmask request lists this site as dropped"));
  }
  // This site survives by definition (its input is in the sum): it reveals its own
  // self-mask share, never its own masking-key share.
  int surviving_holders = 1;
  for (const auto& [site, shares] : held_) surviving_holders += survivors.count(site);
  const int threshold = static_cast<int>(config_.threshold());
  if (surviving_holders < threshold) {
    return Fail(absl::FailedPreconditionError(absl::StrCat(
        "only ", surviving_holders, " share holders survive; unmasking needs ", threshold,
        " (a smaller sum could expose a single site's update)")));
  }
  v1::UnmaskResponse response;
  v1::RevealedShare* own = response.add_self_mask_shares();
  own->set_owner(credentials_.site_id);
  own->set_share(std::string(own_shares_.self_mask_share.view()));
  for (const auto& [site, shares] : held_) {
    if (survivors.count(site) > 0) {
      v1::RevealedShare* r = response.add_self_mask_shares();
      r->set_owner(site);
      r->set_share(std::string(shares.self_mask_share.view()));
    } else if (dropped.count(site) > 0) {
      v1::RevealedShare* r = response.add_key_shares();
      r->set_owner(site);
      r->set_share(std::string(shares.key_share.view()));
    }
  }
  held_.clear();
  own_shares_ = HeldShares();
  stage_ = Stage::kDone;
  return response;
}

}  // namespace cohort::secagg
