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

}  // namespace cohort::tls

#endif  // COHORT_COMMON_TLS_PEER_IDENTITY_H_
