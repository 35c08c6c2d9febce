#include "common/tls/peer_identity.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/util/site_id.h"

namespace cohort::tls {

absl::StatusOr<std::string> ResolveSiteId(const std::string& federation,
                                          const std::vector<std::string>& uris,
                                          const std::string& common_name) {
  const std::string prefix = absl::StrCat("spiffe://", federation, "/site/");
  std::set<std::string> ids;
  for (const std::string& uri : uris) {
    if (!absl::StartsWith(uri, "spiffe://")) continue;
    absl::string_view rest = uri;
    if (!absl::ConsumePrefix(&rest, prefix) || rest.empty() ||
        rest.find('/') != absl::string_view::npos) {
      return absl::UnauthenticatedError(absl::StrCat(
          "client certificate names '", uri, "', which is not a site of federation '",
          federation, "' (expected ", prefix, "<site-id>)"));
    }
    ids.insert(std::string(rest));
  }
  if (ids.size() > 1) {
    return absl::UnauthenticatedError("client certificate names more than one site");
  }
  if (ids.size() == 1) return *ids.begin();
  if (common_name.empty()) {
    return absl::UnauthenticatedError(
        "client certificate carries neither a SPIFFE site URI nor a common name");
  }
  return common_name;
}

namespace {

// The SAN URIs and the common name of the verified peer certificate.
absl::Status ReadPeerNames(const grpc::AuthContext& auth, std::vector<std::string>* uri_list,
                           std::string* common_name) {
  if (!auth.IsPeerAuthenticated()) {
    return absl::UnauthenticatedError("the connection carries no verified client certificate");
  }
  std::set<std::string> uris;
  for (const char* property : {"peer_spiffe_id", "peer_uri", "x509_subject_alternative_name"}) {
    for (const grpc::string_ref& value : auth.FindPropertyValues(property)) {
      uris.insert(std::string(value.data(), value.size()));
    }
  }
  for (const grpc::string_ref& value : auth.FindPropertyValues("x509_common_name")) {
    common_name->assign(value.data(), value.size());
  }
  uri_list->assign(uris.begin(), uris.end());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> SiteIdFromAuthContext(const grpc::AuthContext& auth,
                                                  const std::string& federation) {
  std::vector<std::string> uris;
  std::string common_name;
  if (absl::Status s = ReadPeerNames(auth, &uris, &common_name); !s.ok()) return s;
  return ResolveSiteId(federation, uris, common_name);
}

absl::StatusOr<PeerIdentity> ResolvePeer(const std::string& federation,
                                         const std::vector<std::string>& uris,
                                         const std::string& common_name) {
  const std::string admin_prefix = absl::StrCat("spiffe://", federation, "/admin/");
  std::set<std::string> admins;
  bool other_spiffe = false;
  for (const std::string& uri : uris) {
    absl::string_view rest = uri;
    if (absl::ConsumePrefix(&rest, admin_prefix)) {
      if (!IsValidSiteId(rest)) {
        return absl::UnauthenticatedError(
            absl::StrCat("client certificate names '", uri, "', which is not a valid admin name"));
      }
      admins.insert(std::string(rest));
    } else if (absl::StartsWith(uri, "spiffe://")) {
      other_spiffe = true;
    }
  }
  if (!admins.empty()) {
    if (admins.size() > 1 || other_spiffe) {
      return absl::UnauthenticatedError(
          "client certificate names an admin together with another identity");
    }
    return PeerIdentity{PeerIdentity::Role::kAdmin, *admins.begin()};
  }
  absl::StatusOr<std::string> site = ResolveSiteId(federation, uris, common_name);
  if (!site.ok()) return site.status();
  return PeerIdentity{PeerIdentity::Role::kSite, *std::move(site)};
}

absl::StatusOr<PeerIdentity> PeerFromAuthContext(const grpc::AuthContext& auth,
                                                 const std::string& federation) {
  std::vector<std::string> uris;
  std::string common_name;
  if (absl::Status s = ReadPeerNames(auth, &uris, &common_name); !s.ok()) return s;
  return ResolvePeer(federation, uris, common_name);
}

}  // namespace cohort::tls
