#include "common/secagg/signature.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <climits>
#include <memory>

#include "absl/strings/str_cat.h"

namespace cohort::secagg {
namespace {

struct BioDeleter {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Deleter {
  void operator()(X509* p) const { X509_free(p); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};

absl::Status Fail(absl::Status status) {
  ERR_clear_error();
  return status;
}

std::unique_ptr<BIO, BioDeleter> ReadOnlyBio(const std::string& pem) {
  if (pem.size() > static_cast<size_t>(INT_MAX)) return nullptr;
  return std::unique_ptr<BIO, BioDeleter>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// SHA-256 for ECDSA and RSA; Ed25519/Ed448 hash internally and take no digest.
const EVP_MD* DigestFor(const EVP_PKEY* key) {
  const int id = EVP_PKEY_get_base_id(key);
  return id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448 ? nullptr : EVP_sha256();
}

const char* TypeName(const EVP_PKEY* key) {
  const char* name = EVP_PKEY_get0_type_name(key);
  return name != nullptr ? name : "unknown";
}

}  // namespace

absl::StatusOr<std::string> SignMessage(const std::string& private_key_pem,
                                        absl::string_view message) {
  auto bio = ReadOnlyBio(private_key_pem);
  std::unique_ptr<EVP_PKEY, PkeyDeleter> key(
      bio == nullptr ? nullptr : PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    return Fail(absl::InvalidArgumentError(
        "SignMessage: the private key is not a PEM private key OpenSSL can read"));
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  size_t length = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(message.data());
  if (ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, DigestFor(key.get()), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length, data, message.size()) != 1) {
    return Fail(absl::InternalError(absl::StrCat(
        "SignMessage: cannot sign with a ", TypeName(key.get()), " key")));
  }
  std::string signature(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(&signature[0]), &length, data,
                     message.size()) != 1) {
    return Fail(absl::InternalError("SignMessage: signing failed"));
  }
  signature.resize(length);  // ECDSA signatures are DER and can be shorter than the bound
  return signature;
}

absl::Status VerifyMessage(const std::string& cert_pem, absl::string_view message,
                           absl::string_view signature) {
  auto bio = ReadOnlyBio(cert_pem);
  std::unique_ptr<X509, X509Deleter> cert(
      bio == nullptr ? nullptr : PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (cert == nullptr) {
    return Fail(absl::InvalidArgumentError(
        "VerifyMessage: the certificate is not a PEM X.509 certificate OpenSSL can read"));
  }
  EVP_PKEY* key = X509_get0_pubkey(cert.get());  // owned by the certificate
  if (key == nullptr) {
    return Fail(absl::InvalidArgumentError(
        "VerifyMessage: the certificate's public key cannot be decoded"));
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, DigestFor(key), nullptr, key) != 1) {
    return Fail(absl::InternalError(absl::StrCat(
        "VerifyMessage: cannot verify with a ", TypeName(key), " key")));
  }
  // 1 is a valid signature; 0 a wrong one; < 0 a malformed one (e.g. bad DER): all but 1
  // mean the message is not authenticated.
  if (EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) != 1) {
    return Fail(absl::UnauthenticatedError(
        "VerifyMessage: the signature does not verify under the certificate's public key"));
  }
  return absl::OkStatus();
}

}  // namespace cohort::secagg
