// SHA-256 digests and hex encoding on top of OpenSSL's EVP interface.
#ifndef COHORT_COMMON_CRYPTO_SHA256_H_
#define COHORT_COMMON_CRYPTO_SHA256_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

// Forward declaration so that this header does not pull in <openssl/evp.h>.
struct evp_md_ctx_st;

namespace cohort::crypto {

// Size of a SHA-256 digest in bytes.
inline constexpr size_t kSha256DigestSize = 32;

// Returns the SHA-256 digest of `data` as 32 raw bytes.
std::string Sha256(absl::string_view data);

// Returns `bytes` as lowercase hexadecimal, two characters per byte.
std::string HexEncode(absl::string_view bytes);

// Incremental SHA-256 for data that arrives in pieces (files, streamed chunks).
// Feeding the same bytes through any sequence of Update() calls yields the same
// digest as Sha256() over their concatenation. Not thread-safe; movable, not copyable.
//
// A failure inside OpenSSL's SHA-256 (which only happens if the library itself is
// broken or misconfigured) is treated as a fatal invariant violation: the process
// prints a message to stderr and aborts, because a silently wrong digest would be worse.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(Sha256Hasher&& other) noexcept;
  Sha256Hasher& operator=(Sha256Hasher&& other) noexcept;
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  // Appends `data` to the message being hashed.
  void Update(absl::string_view data);

  // Returns the 32-byte digest of everything passed to Update() since construction or
  // the previous Finish(), then resets the hasher so it can be reused for a new message.
  std::string Finish();

 private:
  // Owned; null only in a moved-from hasher (which must not be used except to be
  // assigned to or destroyed).
  evp_md_ctx_st* ctx_;
};

}  // namespace cohort::crypto

#endif  // COHORT_COMMON_CRYPTO_SHA256_H_
