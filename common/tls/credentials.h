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

// Server side of mutual TLS: presents `files.cert`, requires a client certificate and
// verifies it against `files.ca` (no certificate, another CA, or an expired certificate fail
// the handshake). With `files.crl`, a client whose certificate is on that CRL is refused too;
// the CRL is re-read as soon as the file changes (see RevocationList). Certificate, key and
// CA are re-read every `files.reload_seconds`, so a rotated certificate or CA is picked up
// without a restart. Fails early with a clear error when a file is unreadable, the key does
// not belong to the certificate, or the CRL is not signed by the CA.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const config::TlsFiles& files);

// Client side of mutual TLS: presents the site's certificate and verifies the coordinator's
// certificate against `files.ca`, including its host name (DNS or IP SAN). Files are re-read
// every `files.reload_seconds`.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const config::TlsFiles& files);

// HTTP/2 flow-control window per stream, in both directions. Fixed (no bandwidth-delay
// probing) so that what a stream can buffer in the coordinator is bounded: 1 MiB per stream
// still carries 10 MB/s over a 100 ms round trip.
inline constexpr int kStreamWindowBytes = 1 << 20;

// Channel arguments for a cohort client: keepalives, and `server_name` as the TLS target name
// when it differs from the dialled host.
grpc::ChannelArguments MakeChannelArguments(const std::string& server_name);

}  // namespace cohort::tls

#endif  // COHORT_COMMON_TLS_CREDENTIALS_H_
