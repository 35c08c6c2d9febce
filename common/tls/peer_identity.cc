#include "common/tls/peer_identity.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

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

absl::StatusOr<std::string> SiteIdFromAuthContext(const grpc::AuthContext& auth,
                                                  const std::string& federation) {
  if (!auth.IsPeerAuthenticated()) {
    return absl::UnauthenticatedError("the connection carries no verified client certificate");
  }
  std::set<std::string> uris;
  for (const char* property : {"peer_spiffe_id", "peer_uri", "x509_subject_alternative_name"}) {
    for (const grpc::string_ref& value : auth.FindPropertyValues(property)) {
      uris.insert(std::string(value.data(), value.size()));
    }
  }
  std::string common_name;
  for (const grpc::string_ref& value : auth.FindPropertyValues("x509_common_name")) {
    common_name.assign(value.data(), value.size());
  }
  return ResolveSiteId(federation, std::vector<std::string>(uris.begin(), uris.end()),
                       common_name);
}

}  // namespace cohort::tls
