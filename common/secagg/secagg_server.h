#ifndef COHORT_COMMON_SECAGG_SECAGG_SERVER_H_
#define COHORT_COMMON_SECAGG_SECAGG_SERVER_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cohort/v1/secagg.pb.h"
#include "common/secagg/advertisement.h"
#include "common/secagg/mod_vector.h"
#include "common/secagg/quantizer.h"
#include "common/secagg/shamir.h"

namespace cohort::secagg {

// The coordinator's side of one round of secure aggregation (SecAgg+), with no transport,
// clock or threads (the caller serialises calls). Per stage: collect the sites' messages
// (On...), then Close... when every live site answered or the stage's deadline passed, then
// send each remaining site its ...For(site) message.
//
// Invariants:
//  - An invalid message from a site drops that site (the call returns why), never the round;
//    the round aborts only when too few sites remain to finish it securely.
//  - Masked inputs are added to one running sum as they arrive; the caller stages each
//    upload until it is complete, so a partial upload never touches the sum.
//  - Before reconstructing any secret, CloseUnmask checks that every needed secret has t
//    shares; otherwise the round aborts with nothing unmasked. For each site it asks only
//    for self-mask shares (site in the sum) or only for masking-key shares (site dropped).
class SecAggServer {
 public:
  enum class Stage { kAdvertise, kShareKeys, kMaskedInput, kUnmask, kDone, kAborted };

  // `config` as sent to the sites; `ca_pem` is the federation CA (advertisements are
  // checked here too, so a bad one drops its sender rather than aborting its neighbours).
  static absl::StatusOr<std::unique_ptr<SecAggServer>> Create(const v1::SecAggConfig& config,
                                                              std::string federation,
                                                              uint64_t round, std::string ca_pem);

  Stage stage() const { return stage_; }
  const v1::SecAggConfig& config() const { return config_; }

  // Stage 0.
  absl::Status OnAdvertisement(const std::string& site, const v1::KeyAdvertisement& ad,
                               absl::Time now);
  absl::Status CloseAdvertise();
  absl::StatusOr<v1::PeerKeys> PeerKeysFor(const std::string& site) const;
  // Stage 1.
  absl::Status OnShareKeys(const std::string& site, const v1::ShareKeysResponse& response);
  absl::Status CloseShareKeys();
  absl::StatusOr<v1::ShareDelivery> SharesFor(const std::string& site) const;
  // Stage 2: whether `site` may upload a masked input now (checked before staging it).
  absl::Status CheckMaskedInput(const std::string& site) const;
  absl::Status OnMaskedInput(const std::string& site, const ModVector& masked);
  absl::Status CloseMaskedInput();
  absl::StatusOr<v1::UnmaskRequest> UnmaskRequestFor(const std::string& site) const;
  // Stage 3.
  absl::Status OnUnmaskResponse(const std::string& site, const v1::UnmaskResponse& response);
  // Reconstructs and removes the masks: afterwards sum() is the exact sum mod 2^bits of the
  // survivors' inputs.
  absl::Status CloseUnmask();

  // A site is gone (session lost, task failure, its own abort) from whatever stage it is in.
  void DropSite(const std::string& site, const std::string& reason);
  // Ends the round's secure aggregation; nothing will be unmasked.
  void Abort(const std::string& reason);

  // Sites expected to answer the current stage (not yet answered, not dropped).
  std::vector<std::string> Pending() const;
  // Sites taking part in the current stage (answered or still expected).
  std::vector<std::string> Active() const;
  bool StageComplete() const { return Pending().empty(); }
  // After CloseUnmask: the sum of the survivors' inputs and who they are.
  const ModVector& sum() const { return *sum_; }
  ModVector TakeSum() { return std::move(*sum_); }
  const std::vector<std::string>& survivors() const { return survivors_; }
  const std::map<std::string, std::string>& drop_reasons() const { return drop_reasons_; }
  const std::string& abort_reason() const { return abort_reason_; }
  // Words of keystream the unmasking regenerated (for benchmarks).
  uint64_t regenerated_mask_words() const { return regenerated_words_; }

 private:
  SecAggServer(v1::SecAggConfig config, QuantizationParams quantization, std::string federation,
               uint64_t round, std::string ca_pem);
  int IndexOf(const std::string& site) const;
  bool IsLive(int index) const { return dropped_.count(index) == 0; }
  absl::Status Reject(int index, absl::Status why);
  absl::Status ExpectStage(Stage stage, const std::string& site, int* index) const;
  // Drops, until none is left, live sites with fewer than t live neighbours in `members`.
  void DropUnderconnected(std::set<int>* members, const std::string& reason);
  absl::Status AbortWith(const std::string& reason);
  // Whether unmasking needs a secret of site w: its self-mask seed if its input is in the
  // sum, its masking key if it dropped after sharing and a neighbour's input is in the sum.
  bool NeedsSecret(int w) const;

  const v1::SecAggConfig config_;
  const QuantizationParams quantization_;
  const SessionScope scope_;
  const std::string ca_pem_;
  std::shared_ptr<const crypto::TrustStore> trust_;  // ca_pem_ parsed, at the first advertisement
  const int threshold_;
  std::vector<std::vector<int>> neighbours_;
  Stage stage_ = Stage::kAdvertise;

  std::map<int, std::string> dropped_;                   // index -> reason
  std::map<std::string, std::string> drop_reasons_;      // by site id
  std::map<int, v1::KeyAdvertisement> advertisements_;   // U1 (after CloseAdvertise)
  std::set<int> shared_;                                 // U2
  // ciphertexts_[receiver][sender]
  std::map<int, std::map<int, std::string>> ciphertexts_;
  std::set<int> masked_;                                 // U3
  std::set<int> responded_;                              // answered the unmask request
  std::map<int, std::vector<ShamirShare>> self_mask_shares_;  // by owner
  std::map<int, std::vector<ShamirShare>> key_shares_;        // by owner
  std::optional<ModVector> sum_;
  std::vector<std::string> survivors_;
  std::string abort_reason_;
  uint64_t regenerated_words_ = 0;
};

}  // namespace cohort::secagg

#endif  // COHORT_COMMON_SECAGG_SECAGG_SERVER_H_
