#include "common/crypto/sha256.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <utility>

namespace cohort::crypto {
namespace {

// Reports a failed OpenSSL digest call and aborts. See the class comment in sha256.h for
// why this is fatal rather than a Status.
[[noreturn]] void DieOnDigestFailure(const char* what) {
  char detail[256] = "no OpenSSL error detail";
  if (unsigned long err = ERR_get_error(); err != 0) {
    ERR_error_string_n(err, detail, sizeof(detail));
  }
  std::fprintf(stderr, "cohort::crypto SHA-256: %s failed: %s\n", what, detail);
  std::abort();
}

}  // namespace

std::string Sha256(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1 ||
      length != kSha256DigestSize) {
    DieOnDigestFailure("EVP_Digest");
  }
  return std::string(reinterpret_cast<const char*>(digest), length);
}

std::string HexEncode(absl::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0x0f]);
  }
  return out;
}

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr) DieOnDigestFailure("EVP_MD_CTX_new");
  if (EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    DieOnDigestFailure("EVP_DigestInit_ex");
  }
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(ctx_); }

Sha256Hasher::Sha256Hasher(Sha256Hasher&& other) noexcept
    : ctx_(std::exchange(other.ctx_, nullptr)) {}

Sha256Hasher& Sha256Hasher::operator=(Sha256Hasher&& other) noexcept {
  if (this != &other) {
    EVP_MD_CTX_free(ctx_);
    ctx_ = std::exchange(other.ctx_, nullptr);
  }
  return *this;
}

void Sha256Hasher::Update(absl::string_view data) {
  if (EVP_DigestUpdate(ctx_, data.data(), data.size()) != 1) {
    DieOnDigestFailure("EVP_DigestUpdate");
  }
}

std::string Sha256Hasher::Finish() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_, digest, &length) != 1 || length != kSha256DigestSize) {
    DieOnDigestFailure("EVP_DigestFinal_ex");
  }
  // Re-initialize so the hasher starts a fresh message on the next Update().
  if (EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
    DieOnDigestFailure("EVP_DigestInit_ex");
  }
  return std::string(reinterpret_cast<const char*>(digest), length);
}

}  // namespace cohort::crypto
