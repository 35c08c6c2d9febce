#include "common/secagg/local_round.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "common/secagg/secagg_server.h"

namespace cohort::secagg {

LocalRoundResult RunLocalRound(const v1::SecAggConfig& config, const std::string& federation,
                               uint64_t round, const std::string& ca_pem,
                               std::vector<LocalSite>& sites, absl::Time now) {
  LocalRoundResult result;
  absl::StatusOr<std::unique_ptr<SecAggServer>> created =
      SecAggServer::Create(config, federation, round, ca_pem);
  if (!created.ok()) {
    result.status = created.status();
    return result;
  }
  SecAggServer& server = **created;
  std::map<std::string, std::unique_ptr<SecAggClient>> clients;
  std::map<std::string, LocalSite*> by_id;
  for (LocalSite& site : sites) by_id[site.credentials.site_id] = &site;
  auto vanished = [&](const std::string& id, VanishStage stage) {
    return by_id.at(id)->vanish != VanishStage::kNever && by_id.at(id)->vanish <= stage;
  };
  auto finish = [&](absl::Status status) {
    result.status = status;
    result.drop_reasons = server.drop_reasons();
    return result;
  };

  for (LocalSite& site : sites) {
    if (vanished(site.credentials.site_id, VanishStage::kAdvertise)) continue;
    auto client = SecAggClient::Create(site.credentials, round, config);
    if (!client.ok()) {
      server.DropSite(site.credentials.site_id, std::string(client.status().message()));
      continue;
    }
    absl::StatusOr<v1::KeyAdvertisement> ad = (*client)->AdvertiseKeys();
    if (!ad.ok()) {
      server.DropSite(site.credentials.site_id, std::string(ad.status().message()));
      continue;
    }
    server.OnAdvertisement(site.credentials.site_id, *ad, now).IgnoreError();
    clients[site.credentials.site_id] = std::move(*client);
  }
  if (absl::Status s = server.CloseAdvertise(); !s.ok()) return finish(s);

  for (const std::string& id : server.Active()) {
    if (vanished(id, VanishStage::kShareKeys)) continue;
    absl::StatusOr<v1::PeerKeys> keys = server.PeerKeysFor(id);
    absl::StatusOr<v1::ShareKeysResponse> response =
        keys.ok() ? clients.at(id)->ShareKeys(*keys, now)
                  : absl::StatusOr<v1::ShareKeysResponse>(keys.status());
    if (!response.ok()) {
      server.DropSite(id, std::string(response.status().message()));
      continue;
    }
    server.OnShareKeys(id, *response).IgnoreError();
  }
  if (absl::Status s = server.CloseShareKeys(); !s.ok()) return finish(s);

  for (const std::string& id : server.Active()) {
    if (vanished(id, VanishStage::kMaskedInput)) continue;
    absl::StatusOr<v1::ShareDelivery> delivery = server.SharesFor(id);
    absl::StatusOr<ModVector> masked =
        delivery.ok() ? clients.at(id)->MaskInput(*delivery, by_id.at(id)->input)
                      : absl::StatusOr<ModVector>(delivery.status());
    if (!masked.ok()) {
      server.DropSite(id, std::string(masked.status().message()));
      continue;
    }
    server.OnMaskedInput(id, *masked).IgnoreError();
  }
  if (absl::Status s = server.CloseMaskedInput(); !s.ok()) return finish(s);

  for (const std::string& id : server.Active()) {
    if (vanished(id, VanishStage::kUnmask)) continue;
    absl::StatusOr<v1::UnmaskRequest> request = server.UnmaskRequestFor(id);
    absl::StatusOr<v1::UnmaskResponse> response =
        request.ok() ? clients.at(id)->Unmask(*request)
                     : absl::StatusOr<v1::UnmaskResponse>(request.status());
    if (!response.ok()) {
      server.DropSite(id, std::string(response.status().message()));
      continue;
    }
    server.OnUnmaskResponse(id, *response).IgnoreError();
  }
  const absl::Time unmask_start = absl::Now();
  absl::Status unmasked = server.CloseUnmask();
  result.unmask_time = absl::Now() - unmask_start;
  if (!unmasked.ok()) return finish(unmasked);
  result.survivors = server.survivors();
  result.regenerated_mask_words = server.regenerated_mask_words();
  result.sum = server.TakeSum();
  return finish(absl::OkStatus());
}

}  // namespace cohort::secagg
