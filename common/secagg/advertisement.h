#ifndef COHORT_COMMON_SECAGG_ADVERTISEMENT_H_
#define COHORT_COMMON_SECAGG_ADVERTISEMENT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cohort/v1/secagg.pb.h"
#include "common/crypto/pki.h"
#include "common/secagg/secret.h"

namespace cohort::secagg {

// HKDF purposes of the two keys a pair of sites agrees on.
inline constexpr char kShareEncryptionPurpose[] = "cohort/secagg/v1/share-encryption";
inline constexpr char kPairwiseMaskPurpose[] = "cohort/secagg/v1/pairwise-mask";

// The round a secure-aggregation message belongs to: every signature and every associated
// datum is bound to all three, so nothing carries over from another federation, round or
// session (a replayed message fails to verify or decrypt).
struct SessionScope {
  std::string federation;
  uint64_t round = 0;
  std::string session_id;
};

// Canonical bytes a site signs for its key advertisement: a domain-separation tag and
// every field, each length-prefixed (so no two field lists encode alike).
std::string AdvertisementSigningBytes(const SessionScope& scope, absl::string_view site_id,
                                      absl::string_view encryption_public_key,
                                      absl::string_view masking_public_key,
                                      absl::string_view self_mask_commitment);

// The commitment to a self-mask seed: SHA-256 of a domain tag and the seed (32 bytes). It
// reveals nothing about a uniformly random 256-bit seed.
std::string SelfMaskCommitment(const SecretBytes& seed);

// Associated data of the AES-GCM encrypted shares from `sender` to `receiver`.
std::string ShareAssociatedData(const SessionScope& scope, absl::string_view sender,
                                absl::string_view receiver);

// Checks a key advertisement as a peer (or the coordinator) must before using it:
// the certificate chains to the federation CA and is valid at `now`, it names
// `expected_site` (SPIFFE URI spiffe://<federation>/site/<id>, else CN when the certificate
// has no URI), both keys and the self-mask commitment are 32 bytes, and the signature over AdvertisementSigningBytes
// verifies with the certificate's key. Unauthenticated for a forged or swapped advertisement,
// InvalidArgument for a malformed one; the message says which check failed.
absl::Status VerifyAdvertisement(const v1::KeyAdvertisement& advertisement,
                                 const SessionScope& scope, absl::string_view expected_site,
                                 const std::string& ca_pem, absl::Time now);
// The same against a CA bundle parsed once (a round checks many advertisements).
absl::Status VerifyAdvertisement(const v1::KeyAdvertisement& advertisement,
                                 const SessionScope& scope, absl::string_view expected_site,
                                 const crypto::TrustStore& trust, absl::Time now);

}  // namespace cohort::secagg

#endif  // COHORT_COMMON_SECAGG_ADVERTISEMENT_H_
