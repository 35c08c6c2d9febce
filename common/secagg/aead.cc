#include "common/secagg/aead.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cohort::secagg {
namespace {

constexpr size_t kKeyBytes = 32;
constexpr size_t kNonceBytes = 12;
constexpr size_t kTagBytes = 16;

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

absl::Status Fail(absl::Status status) {
  ERR_clear_error();
  return status;
}

absl::Status CheckKey(const SecretBytes& key, const char* where) {
  if (key.size() != kKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": AES-256-GCM key must be ", kKeyBytes, " bytes, got ", key.size()));
  }
  return absl::OkStatus();
}

// EVP lengths are ints.
absl::Status CheckLength(size_t length, const char* what, const char* where) {
  if (length > static_cast<size_t>(INT_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", what, " of ", length, " bytes is too long for AES-GCM"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> Seal(const SecretBytes& key, const SecretBytes& plaintext,
                                 absl::string_view associated_data) {
  if (absl::Status s = CheckKey(key, "Seal"); !s.ok()) return s;
  if (absl::Status s = CheckLength(plaintext.size(), "plaintext", "Seal"); !s.ok()) return s;
  if (absl::Status s = CheckLength(associated_data.size(), "associated data", "Seal"); !s.ok()) {
    return s;
  }
  std::string sealed(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  auto* nonce = reinterpret_cast<unsigned char*>(&sealed[0]);
  auto* ciphertext = nonce + kNonceBytes;
  // A random 96-bit nonce: each key seals few messages (one per peer and round), far below
  // the 2^32 messages per key NIST allows for random GCM nonces.
  if (RAND_bytes(nonce, kNonceBytes) != 1) {
    return Fail(absl::UnavailableError("Seal: the OS entropy source did not provide a nonce"));
  }
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int length = 0;
  if (ctx == nullptr ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce) != 1 ||
      (!associated_data.empty() &&
       EVP_EncryptUpdate(ctx.get(), nullptr, &length,
                         reinterpret_cast<const unsigned char*>(associated_data.data()),
                         static_cast<int>(associated_data.size())) != 1) ||
      (!plaintext.empty() &&
       EVP_EncryptUpdate(ctx.get(), ciphertext, &length, plaintext.data(),
                         static_cast<int>(plaintext.size())) != 1) ||
      EVP_EncryptFinal_ex(ctx.get(), ciphertext + plaintext.size(), &length) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes,
                          ciphertext + plaintext.size()) != 1) {
    return Fail(absl::InternalError("Seal: AES-256-GCM encryption failed"));
  }
  return sealed;
}

absl::StatusOr<SecretBytes> Open(const SecretBytes& key, absl::string_view sealed,
                                 absl::string_view associated_data) {
  if (absl::Status s = CheckKey(key, "Open"); !s.ok()) return s;
  if (sealed.size() < kNonceBytes + kTagBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Open: sealed message must be at least ", kNonceBytes + kTagBytes, " bytes (", kNonceBytes,
        "-byte nonce and ", kTagBytes, "-byte tag), got ", sealed.size()));
  }
  if (absl::Status s = CheckLength(sealed.size(), "sealed message", "Open"); !s.ok()) return s;
  if (absl::Status s = CheckLength(associated_data.size(), "associated data", "Open"); !s.ok()) {
    return s;
  }
  const auto* nonce = reinterpret_cast<const unsigned char*>(sealed.data());
  const auto* ciphertext = nonce + kNonceBytes;
  const size_t ciphertext_size = sealed.size() - kNonceBytes - kTagBytes;
  // EVP_CTRL_GCM_SET_TAG takes a non-const pointer; copy the tag rather than cast.
  unsigned char tag[kTagBytes];
  std::copy(ciphertext + ciphertext_size, ciphertext + ciphertext_size + kTagBytes, tag);

  SecretBytes plaintext(ciphertext_size);
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int length = 0;
  if (ctx == nullptr ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce) != 1 ||
      (!associated_data.empty() &&
       EVP_DecryptUpdate(ctx.get(), nullptr, &length,
                         reinterpret_cast<const unsigned char*>(associated_data.data()),
                         static_cast<int>(associated_data.size())) != 1) ||
      (ciphertext_size > 0 &&
       EVP_DecryptUpdate(ctx.get(), plaintext.data(), &length, ciphertext,
                         static_cast<int>(ciphertext_size)) != 1) ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag) != 1) {
    return Fail(absl::InternalError("Open: AES-256-GCM decryption failed"));
  }
  // Only the final call checks the tag; until it succeeds `plaintext` is unauthenticated and
  // is wiped (by SecretBytes) rather than returned.
  unsigned char unused[16];
  if (EVP_DecryptFinal_ex(ctx.get(), unused, &length) != 1) {
    return Fail(absl::UnauthenticatedError(
        "Open: AES-256-GCM tag does not verify (wrong key, tampered message or different "
        "associated data)"));
  }
  return plaintext;
}

}  // namespace cohort::secagg
