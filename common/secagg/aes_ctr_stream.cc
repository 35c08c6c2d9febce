#include "common/secagg/aes_ctr_stream.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cohort::secagg {
namespace {

// Encrypting zeros yields the raw keystream; the input block stays in L1 across calls.
alignas(64) const uint8_t kZeros[AesCtrStream::kBlockBytes] = {};

// Fetched once per process: an implicit fetch on every EVP_EncryptInit_ex would look the
// algorithm up in the provider store each time.
const EVP_CIPHER* Aes256Ctr() {
  static const EVP_CIPHER* const cipher = [] {
    EVP_CIPHER* fetched = EVP_CIPHER_fetch(nullptr, "AES-256-CTR", nullptr);
    return fetched != nullptr ? fetched : EVP_aes_256_ctr();
  }();
  return cipher;
}

}  // namespace

void AesCtrStream::CtxDeleter::operator()(void* ctx) const {
  EVP_CIPHER_CTX_free(static_cast<EVP_CIPHER_CTX*>(ctx));
}

absl::StatusOr<AesCtrStream> AesCtrStream::Create(const SecretBytes& key,
                                                  absl::string_view what) {
  if (key.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("AES-256-CTR ", what, " must be 32 bytes, got ", key.size()));
  }
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return absl::ResourceExhaustedError("cannot allocate an EVP_CIPHER_CTX");
  AesCtrStream stream(ctx);
  const unsigned char iv[16] = {0};  // the all-zero initial counter block (see prg.h)
  if (EVP_EncryptInit_ex(ctx, Aes256Ctr(), nullptr, key.data(), iv) != 1) {
    ERR_clear_error();
    return absl::InternalError(absl::StrCat("cannot initialise AES-256-CTR with the ", what));
  }
  return stream;
}

absl::Status AesCtrStream::Next(uint8_t* out, size_t bytes) {
  auto* ctx = static_cast<EVP_CIPHER_CTX*>(ctx_.get());
  while (bytes > 0) {
    const size_t chunk = std::min(bytes, kBlockBytes);
    int written = 0;
    if (EVP_EncryptUpdate(ctx, out, &written, kZeros, static_cast<int>(chunk)) != 1 ||
        written != static_cast<int>(chunk)) {
      ERR_clear_error();
      return absl::InternalError("AES-256-CTR keystream generation failed");
    }
    out += chunk;
    bytes -= chunk;
  }
  return absl::OkStatus();
}

}  // namespace cohort::secagg
