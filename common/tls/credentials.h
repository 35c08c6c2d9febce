#ifndef COHORT_COMMON_TLS_CREDENTIALS_H_
#define COHORT_COMMON_TLS_CREDENTIALS_H_

#include <memory>
#include <string>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include "absl/status/statusor.h"
#include "common/config/coordinator_config.h"

namespace cohort::tls {

// Server side of mutual TLS: presents `files.cert` and requires a client certificate, which
// SiteVerifier checks against `files.ca` (another CA, an expired or not-yet-valid certificate,
// or one without clientAuth fail the handshake, and the coordinator logs why). With
// `files.crl`, a client whose certificate is on that CRL is refused too; the CRL is re-read as
// soon as the file changes (see RevocationList). Certificate and key are re-read every
// `files.reload_seconds` and the CA at every handshake, so rotations need no restart. Fails
// early with a clear error when a file is unreadable, the key does not belong to the
// certificate, or the CRL is not signed by the CA.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const config::TlsFiles& files);

// Client side of mutual TLS: presents the site's certificate and verifies the coordinator's
// certificate against `files.ca`, including serverAuth and its host name (DNS or IP SAN), with
// CoordinatorVerifier, which says why a certificate is refused. Certificate and key are
// re-read every `files.reload_seconds`, the CA at every handshake.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const config::TlsFiles& files);

// Why the coordinator would refuse this side's own certificate (`files.cert` checked against
// `files.ca`: expired, not yet valid, issued by another CA; or a key that does not match), as
// one sentence; empty if nothing is wrong that can be seen locally. Revocation cannot be seen
// here. Lets a site explain a handshake that the coordinator ended without a reason.
std::string OwnCertificateProblems(const config::TlsFiles& files);

// HTTP/2 flow-control window per stream, in both directions. Fixed (no bandwidth-delay
// probing) so that what a stream can buffer in the coordinator is bounded: 1 MiB per stream
// still carries 10 MB/s over a 100 ms round trip.
inline constexpr int kStreamWindowBytes = 1 << 20;

// Channel arguments for a cohort client: keepalives (`keepalive`: ping after `time` without
// incoming data, close the connection when no answer comes within `timeout`), and
// `server_name` as the TLS target name when it differs from the dialled host.
grpc::ChannelArguments MakeChannelArguments(const std::string& server_name,
                                            const config::KeepaliveConfig& keepalive = {});

}  // namespace cohort::tls

#endif  // COHORT_COMMON_TLS_CREDENTIALS_H_
