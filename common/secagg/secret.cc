#include "common/secagg/secret.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <utility>

#include "common/util/log.h"

namespace cohort::secagg {

SecretBytes::SecretBytes(SecretBytes&& other) noexcept : bytes_(std::move(other.bytes_)) {
  // A moved-from vector is valid but unspecified: make it empty so it holds no key bytes.
  other.bytes_.clear();
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Wipe();
    bytes_ = std::move(other.bytes_);
    other.bytes_.clear();
  }
  return *this;
}

void SecretBytes::Wipe() {
  if (!bytes_.empty()) OPENSSL_cleanse(bytes_.data(), bytes_.size());
  bytes_.clear();
}

SecretBytes RandomSecret(size_t size) {
  SecretBytes secret(size);
  if (size > 0 && RAND_priv_bytes(secret.data(), static_cast<int>(size)) != 1) {
    // There is no safe fallback for missing entropy: a predictable key would be worse than
    // stopping the process.
    spdlog::critical("RAND_priv_bytes failed to provide {} bytes of key material; aborting",
                     size);
    std::abort();
  }
  return secret;
}

}  // namespace cohort::secagg
