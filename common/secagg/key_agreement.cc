#include "common/secagg/key_agreement.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cohort::secagg {
namespace {

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct KdfDeleter {
  void operator()(EVP_KDF* p) const { EVP_KDF_free(p); }
};
struct KdfCtxDeleter {
  void operator()(EVP_KDF_CTX* p) const { EVP_KDF_CTX_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

// OpenSSL 3.0's HKDF keeps `info` in a fixed 1024-byte buffer.
constexpr size_t kMaxInfoBytes = 1024;

// Leaves OpenSSL's thread-local error queue empty so a failure here is not reported again
// by unrelated code later, and returns `status`.
absl::Status Fail(absl::Status status) {
  ERR_clear_error();
  return status;
}

absl::Status CheckPrivateKey(const SecretBytes& private_key) {
  if (private_key.size() != kX25519KeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("X25519 private key must be ",
                                                   kX25519KeyBytes, " bytes, got ",
                                                   private_key.size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<Pkey> PrivateKey(const SecretBytes& private_key) {
  if (absl::Status s = CheckPrivateKey(private_key); !s.ok()) return s;
  Pkey key(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, private_key.data(),
                                        private_key.size()));
  if (key == nullptr) return Fail(absl::InternalError("OpenSSL refused an X25519 private key"));
  return key;
}

// Field encodings for the HKDF info string: every variable-length field carries a 4-byte
// big-endian length, so no two different contexts encode to the same bytes.
void AppendUint32(uint32_t value, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(value >> shift));
}
void AppendUint64(uint64_t value, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(value >> shift));
}
void AppendField(absl::string_view field, std::string* out) {
  AppendUint32(static_cast<uint32_t>(field.size()), out);
  out->append(field.data(), field.size());
}

}  // namespace

absl::StatusOr<X25519KeyPair> GenerateX25519KeyPair() {
  // Any 32 random bytes are a valid X25519 private key (the scalar is clamped when used).
  return X25519KeyPairFromPrivate(RandomSecret(kX25519KeyBytes));
}

absl::StatusOr<X25519KeyPair> X25519KeyPairFromPrivate(const SecretBytes& private_key) {
  absl::StatusOr<Pkey> key = PrivateKey(private_key);
  if (!key.ok()) return key.status();
  std::string public_key(kX25519KeyBytes, '\0');
  size_t length = public_key.size();
  if (EVP_PKEY_get_raw_public_key(key->get(), reinterpret_cast<unsigned char*>(&public_key[0]),
                                  &length) != 1 ||
      length != kX25519KeyBytes) {
    return Fail(absl::InternalError("cannot compute the X25519 public key"));
  }
  return X25519KeyPair{private_key.Copy(), std::move(public_key)};
}

absl::StatusOr<SecretBytes> X25519SharedSecret(const SecretBytes& private_key,
                                               absl::string_view peer_public_key) {
  if (peer_public_key.size() != kX25519KeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("X25519 public key must be ", kX25519KeyBytes,
                                                   " bytes, got ", peer_public_key.size()));
  }
  absl::StatusOr<Pkey> key = PrivateKey(private_key);
  if (!key.ok()) return key.status();
  Pkey peer(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_X25519, nullptr, reinterpret_cast<const unsigned char*>(peer_public_key.data()),
      peer_public_key.size()));
  if (peer == nullptr) {
    return Fail(absl::InvalidArgumentError("OpenSSL refused the X25519 peer public key"));
  }
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(EVP_PKEY_CTX_new(key->get(), nullptr));
  if (ctx == nullptr || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1) {
    return Fail(absl::InternalError("cannot set up X25519 key agreement"));
  }
  SecretBytes shared(kX25519KeyBytes);
  size_t length = shared.size();
  // OpenSSL fails the derivation when the result is all zeros, i.e. the peer key is a
  // low-order point that would force a known shared secret.
  if (EVP_PKEY_derive(ctx.get(), shared.data(), &length) != 1 || length != kX25519KeyBytes) {
    return Fail(absl::InvalidArgumentError(
        "X25519 key agreement failed: the peer public key is a low-order point (the shared "
        "secret would be all zeros)"));
  }
  // Belt and braces: never hand out an all-zero secret even if OpenSSL's check changes.
  unsigned char any = 0;
  for (size_t i = 0; i < length; ++i) any |= shared.data()[i];
  if (any == 0) {
    return absl::InvalidArgumentError(
        "X25519 key agreement gave an all-zero shared secret (low-order peer public key)");
  }
  return shared;
}

absl::StatusOr<SecretBytes> DeriveKey(const SecretBytes& shared_secret,
                                      const KeyContext& context) {
  if (shared_secret.size() != kX25519KeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("DeriveKey: shared secret must be ",
                                                   kX25519KeyBytes, " bytes, got ",
                                                   shared_secret.size()));
  }
  // The two site ids in lexicographic order, so both ends of the pair derive the same key.
  const bool ordered = context.site_a <= context.site_b;
  const std::string& first = ordered ? context.site_a : context.site_b;
  const std::string& second = ordered ? context.site_b : context.site_a;
  std::string info = "cohort-secagg-kdf-v1";
  AppendField(context.purpose, &info);
  AppendField(context.federation, &info);
  AppendUint64(context.round, &info);
  AppendField(context.session_id, &info);
  AppendField(first, &info);
  AppendField(second, &info);
  if (info.size() > kMaxInfoBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DeriveKey: the key context encodes to ", info.size(), " bytes, more than the ",
        kMaxInfoBytes, " HKDF allows (federation, session id, site ids or purpose too long)"));
  }

  std::unique_ptr<EVP_KDF, KdfDeleter> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr));
  if (kdf == nullptr) return Fail(absl::InternalError("OpenSSL has no HKDF implementation"));
  std::unique_ptr<EVP_KDF_CTX, KdfCtxDeleter> ctx(EVP_KDF_CTX_new(kdf.get()));
  if (ctx == nullptr) return Fail(absl::InternalError("cannot allocate an HKDF context"));
  char digest[] = "SHA256";
  // No salt parameter: HKDF then uses a zero-length salt (RFC 5869: HashLen zero bytes).
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                        const_cast<uint8_t*>(shared_secret.data()),
                                        shared_secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end(),
  };
  SecretBytes key(32);
  if (EVP_KDF_derive(ctx.get(), key.data(), key.size(), params) != 1) {
    return Fail(absl::InternalError("HKDF-SHA256 key derivation failed"));
  }
  return key;
}

}  // namespace cohort::secagg
