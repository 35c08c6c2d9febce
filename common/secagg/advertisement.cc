#include "common/secagg/advertisement.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include <openssl/crypto.h>

#include "common/crypto/pki.h"
#include "common/crypto/sha256.h"
#include "common/secagg/key_agreement.h"
#include "common/secagg/signature.h"

namespace cohort::secagg {
namespace {

void AppendField(std::string* out, absl::string_view field) {
  const uint64_t size = field.size();
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((size >> (8 * i)) & 0xff));
  out->append(field.data(), field.size());
}

std::string ScopeBytes(absl::string_view tag, const SessionScope& scope) {
  std::string out;
  AppendField(&out, tag);
  AppendField(&out, scope.federation);
  AppendField(&out, absl::StrCat(scope.round));
  AppendField(&out, scope.session_id);
  return out;
}

}  // namespace

std::string AdvertisementSigningBytes(const SessionScope& scope, absl::string_view site_id,
                                      absl::string_view encryption_public_key,
                                      absl::string_view masking_public_key,
                                      absl::string_view self_mask_commitment) {
  std::string out = ScopeBytes("cohort/secagg/v1/advertise-keys", scope);
  AppendField(&out, site_id);
  AppendField(&out, encryption_public_key);
  AppendField(&out, masking_public_key);
  AppendField(&out, self_mask_commitment);
  return out;
}

std::string SelfMaskCommitment(const SecretBytes& seed) {
  std::string input;
  AppendField(&input, "cohort/secagg/v1/self-mask-commitment");
  AppendField(&input, seed.view());
  std::string digest = crypto::Sha256(input);
  OPENSSL_cleanse(input.data(), input.size());
  return digest;
}

std::string ShareAssociatedData(const SessionScope& scope, absl::string_view sender,
                                absl::string_view receiver) {
  std::string out = ScopeBytes("cohort/secagg/v1/encrypted-shares", scope);
  AppendField(&out, sender);
  AppendField(&out, receiver);
  return out;
}

absl::Status VerifyAdvertisement(const v1::KeyAdvertisement& ad, const SessionScope& scope,
                                 absl::string_view expected_site, const std::string& ca_pem,
                                 absl::Time now) {
  absl::StatusOr<std::shared_ptr<const crypto::TrustStore>> trust =
      crypto::TrustStore::Create(ca_pem);
  if (!trust.ok()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "key advertisement of site '", expected_site,
        "': certificate not issued by the federation CA: ", trust.status().message()));
  }
  return VerifyAdvertisement(ad, scope, expected_site, **trust, now);
}

absl::Status VerifyAdvertisement(const v1::KeyAdvertisement& ad, const SessionScope& scope,
                                 absl::string_view expected_site, const crypto::TrustStore& trust,
                                 absl::Time now) {
  const std::string who = absl::StrCat("key advertisement of site '", expected_site, "'");
  if (ad.site_id() != expected_site) {
    return absl::UnauthenticatedError(
        absl::StrCat(who, " is labelled as site '", ad.site_id(), "'"));
  }
  if (ad.encryption_public_key().size() != kX25519KeyBytes ||
      ad.masking_public_key().size() != kX25519KeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": public keys must be 32 bytes"));
  }
  if (ad.self_mask_commitment().size() != 32) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": self-mask commitment must be 32 bytes"));
  }
  if (ad.encryption_public_key() == ad.masking_public_key()) {
    return absl::InvalidArgumentError(absl::StrCat(who, ": its two public keys are equal"));
  }
  // One parse of the certificate for the chain check and its names.
  absl::StatusOr<crypto::CertificateInfo> info = trust.VerifyAndInspect(ad.certificate_pem(), now);
  if (!info.ok()) {
    return absl::UnauthenticatedError(absl::StrCat(
        who, ": certificate not issued by the federation CA: ", info.status().message()));
  }
  const std::string uri = crypto::SiteIdentityUri(scope.federation, expected_site);
  const bool names_site =
      info->uris.empty()
          ? info->common_name == expected_site
          : std::find(info->uris.begin(), info->uris.end(), uri) != info->uris.end();
  if (!names_site) {
    return absl::UnauthenticatedError(
        absl::StrCat(who, ": its certificate belongs to another identity (CN '",
                     info->common_name, "')"));
  }
  absl::Status signature = VerifyMessage(
      ad.certificate_pem(),
      AdvertisementSigningBytes(scope, expected_site, ad.encryption_public_key(),
                                ad.masking_public_key(), ad.self_mask_commitment()),
      ad.signature());
  if (!signature.ok()) {
    return absl::UnauthenticatedError(absl::StrCat(
        who, ": signature does not verify for this federation, round and session (forged, "
             "swapped or replayed keys): ",
        signature.message()));
  }
  return absl::OkStatus();
}

}  // namespace cohort::secagg
