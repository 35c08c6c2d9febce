#ifndef COHORT_COMMON_SECAGG_AES_CTR_STREAM_H_
#define COHORT_COMMON_SECAGG_AES_CTR_STREAM_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/secagg/secret.h"

namespace cohort::secagg {

// Internal to the secagg crypto library (the mask PRG and the quantizer's rounding source).
// The AES-256-CTR keystream under a 32-byte key with the all-zero initial counter block,
// read sequentially: consecutive Next() calls continue the same keystream. Owns one
// EVP_CIPHER_CTX, freed (and so wiped by OpenSSL) on destruction.
class AesCtrStream {
 public:
  // Keystream bytes produced per OpenSSL call, and the size callers should use for their
  // fold buffers: large enough to amortise the call, small enough to stay in L1/L2.
  static constexpr size_t kBlockBytes = 16 * 1024;

  // InvalidArgument unless `key` is 32 bytes; `what` names the key in errors ("mask seed").
  static absl::StatusOr<AesCtrStream> Create(const SecretBytes& key, absl::string_view what);

  // Writes the next `bytes` bytes of the keystream to `out` (any size).
  absl::Status Next(uint8_t* out, size_t bytes);

 private:
  struct CtxDeleter {
    void operator()(void* ctx) const;
  };
  explicit AesCtrStream(void* ctx) : ctx_(ctx) {}

  std::unique_ptr<void, CtxDeleter> ctx_;  // an EVP_CIPHER_CTX
};

}  // namespace cohort::secagg

#endif  // COHORT_COMMON_SECAGG_AES_CTR_STREAM_H_
