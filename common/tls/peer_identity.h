#ifndef COHORT_COMMON_TLS_PEER_IDENTITY_H_
#define COHORT_COMMON_TLS_PEER_IDENTITY_H_

#include <string>
#include <vector>

#include <grpcpp/security/auth_context.h>

#include "absl/status/statusor.h"

namespace cohort::tls {

// Decides which site a verified client certificate speaks for. A URI SAN of the form
// spiffe://<federation>/site/<id> wins; a SPIFFE URI for another federation or of another
// shape is refused (never silently replaced by the CN). Without any SPIFFE URI the common
// name is the site id. Returns Unauthenticated with the reason.
absl::StatusOr<std::string> ResolveSiteId(const std::string& federation,
                                          const std::vector<std::string>& uris,
                                          const std::string& common_name);

// Reads the peer's certificate identity from a call's AuthContext and applies ResolveSiteId.
absl::StatusOr<std::string> SiteIdFromAuthContext(const grpc::AuthContext& auth,
                                                  const std::string& federation);

// Who a verified client certificate speaks for: a site, or an operator of the federation.
struct PeerIdentity {
  enum class Role { kSite, kAdmin };
  Role role = Role::kSite;
  std::string name;  // the site id or the admin's name
};

// A certificate whose SPIFFE URIs are exactly spiffe://<federation>/admin/<name> (name as a
// site id: [a-z0-9][a-z0-9._-]{0,62}) is an admin; anything else is resolved as a site by
// ResolveSiteId. A certificate naming both an admin and a site is refused.
absl::StatusOr<PeerIdentity> ResolvePeer(const std::string& federation,
                                         const std::vector<std::string>& uris,
                                         const std::string& common_name);

// ResolvePeer on a call's AuthContext.
absl::StatusOr<PeerIdentity> PeerFromAuthContext(const grpc::AuthContext& auth,
                                                 const std::string& federation);

}  // namespace cohort::tls

#endif  // COHORT_COMMON_TLS_PEER_IDENTITY_H_
