#ifndef COHORT_COMMON_SECAGG_SECAGG_CLIENT_H_
#define COHORT_COMMON_SECAGG_SECAGG_CLIENT_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cohort/v1/secagg.pb.h"
#include "common/secagg/advertisement.h"
#include "common/secagg/key_agreement.h"
#include "common/secagg/mod_vector.h"
#include "common/secagg/quantizer.h"
#include "common/secagg/secret.h"
#include "common/secagg/shamir.h"

namespace cohort::secagg {

// What a site needs to take part: its identity as in its TLS certificate, the PEM files of
// that identity, and the federation CA its peers' certificates must chain to.
struct SiteCredentials {
  std::string federation;
  std::string site_id;
  std::string certificate_pem;
  std::string private_key_pem;
  std::string ca_pem;
};

// Validates a SecAggConfig as a site must before it takes part (a coordinator that asks for
// a weak threshold, a tiny cohort or wrapping quantization is refused). Returns the
// quantization parameters on success.
absl::StatusOr<QuantizationParams> ValidateSecAggConfig(const v1::SecAggConfig& config);

// The site's side of one round of secure aggregation (SecAgg+), as a state machine with no
// transport, clock or threads: each call takes the coordinator's message for a stage and
// returns the site's answer.
//
//   AdvertiseKeys -> ShareKeys(PeerKeys) -> MaskInput(ShareDelivery, x) -> Unmask(request)
//
// Any invalid input moves it to kAborted for good and wipes its secrets; the error says
// whether tampering was detected (Unauthenticated) or the round cannot go on
// (FailedPrecondition / InvalidArgument). Invariants: keys are fresh for every instance (one
// per round, never reused); the site answers one unmask request only, and for each
// neighbour reveals either its self-mask share or its masking-key share, never both.
class SecAggClient {
 public:
  enum class Stage { kAdvertise, kShareKeys, kMaskedInput, kUnmask, kDone, kAborted };

  static absl::StatusOr<std::unique_ptr<SecAggClient>> Create(SiteCredentials credentials,
                                                              uint64_t round,
                                                              const v1::SecAggConfig& config);
  ~SecAggClient();

  // Stage 0: two fresh X25519 key pairs, signed with the site's TLS key.
  absl::StatusOr<v1::KeyAdvertisement> AdvertiseKeys();
  // Stage 1: verifies every neighbour's advertisement (`now` for certificate validity), then
  // returns Shamir shares of the self-mask seed and masking key, encrypted per neighbour.
  absl::StatusOr<v1::ShareKeysResponse> ShareKeys(const v1::PeerKeys& peers, absl::Time now);
  // Stage 2: decrypts the neighbours' shares and returns input + self mask + pairwise masks.
  // `input` has config.vector_length words modulo 2^modulus_bits.
  absl::StatusOr<ModVector> MaskInput(const v1::ShareDelivery& delivery, ModVector input);
  // Stage 3: reveals one share per neighbour named in the request.
  absl::StatusOr<v1::UnmaskResponse> Unmask(const v1::UnmaskRequest& request);

  Stage stage() const { return stage_; }
  const std::string& site_id() const { return credentials_.site_id; }
  // The neighbours whose shares this site holds (after MaskInput).
  std::vector<std::string> share_holders_of() const;

 private:
  SecAggClient(SiteCredentials credentials, uint64_t round, v1::SecAggConfig config,
               QuantizationParams quantization);
  absl::Status Fail(absl::Status status);
  int IndexOf(const std::string& site) const;
  // Peer data learned in the ShareKeys stage.
  struct Peer {
    int index = 0;
    std::string encryption_public_key;
    std::string masking_public_key;
  };
  // The two shares a neighbour gave this site.
  struct HeldShares {
    SecretBytes self_mask_share;
    SecretBytes key_share;
  };
  absl::StatusOr<SecretBytes> ChannelKey(const Peer& peer) const;
  absl::StatusOr<SecretBytes> PairwiseMaskSeed(const std::string& peer_site, const Peer& peer) const;

  SiteCredentials credentials_;  // the private key PEM is wiped on destruction
  const v1::SecAggConfig config_;
  const QuantizationParams quantization_;
  const SessionScope scope_;
  int my_index_ = -1;
  std::vector<int> neighbours_;
  Stage stage_ = Stage::kAdvertise;

  std::optional<X25519KeyPair> encryption_keys_;
  std::optional<X25519KeyPair> masking_keys_;
  SecretBytes self_mask_seed_;
  std::map<std::string, Peer> peers_;        // neighbours that advertised keys
  std::map<std::string, HeldShares> held_;   // neighbours whose shares we decrypted
  HeldShares own_shares_;                    // this site's shares of its own secrets
};

}  // namespace cohort::secagg

#endif  // COHORT_COMMON_SECAGG_SECAGG_CLIENT_H_
