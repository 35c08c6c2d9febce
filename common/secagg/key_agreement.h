#ifndef COHORT_COMMON_SECAGG_KEY_AGREEMENT_H_
#define COHORT_COMMON_SECAGG_KEY_AGREEMENT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/secagg/secret.h"

namespace cohort::secagg {

inline constexpr size_t kX25519KeyBytes = 32;

// An X25519 key pair: raw 32-byte private scalar (wiped on destruction) and public key.
struct X25519KeyPair {
  SecretBytes private_key;
  std::string public_key;
};

// A fresh key pair from the OS's entropy source.
absl::StatusOr<X25519KeyPair> GenerateX25519KeyPair();
// The key pair for a given raw private key (known-answer tests, and checking that a
// reconstructed private key matches the public key its owner advertised).
absl::StatusOr<X25519KeyPair> X25519KeyPairFromPrivate(const SecretBytes& private_key);
// The raw X25519 shared secret. InvalidArgument for a malformed public key; an error too
// for a low-order public key (all-zero shared secret), which OpenSSL refuses.
absl::StatusOr<SecretBytes> X25519SharedSecret(const SecretBytes& private_key,
                                               absl::string_view peer_public_key);

// What a derived key is bound to. Both ends of a pair derive the same key: the two site ids
// enter the derivation in lexicographic order.
struct KeyContext {
  std::string federation;
  uint64_t round = 0;
  std::string session_id;  // the coordinator's random id for this secure-aggregation session
  std::string site_a;
  std::string site_b;
  std::string purpose;  // e.g. "cohort/secagg/share-encryption", "cohort/secagg/pairwise-mask"
};

// HKDF-SHA256 (OpenSSL EVP_KDF "HKDF"), salt empty, info = an unambiguous length-prefixed
// encoding of every field of `context`; returns 32 bytes.
absl::StatusOr<SecretBytes> DeriveKey(const SecretBytes& shared_secret, const KeyContext& context);

}  // namespace cohort::secagg

#endif  // COHORT_COMMON_SECAGG_KEY_AGREEMENT_H_
