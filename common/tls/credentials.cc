#include "common/tls/credentials.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/crypto/pki.h"
#include "common/tls/revocation.h"
#include "common/tls/server_verifier.h"
#include "common/util/files.h"

namespace cohort::tls {
namespace {

absl::Status CheckReadable(const config::TlsFiles& files) {
  std::string cert_pem;
  std::string key_pem;
  for (const std::string* path : {&files.ca, &files.cert, &files.key}) {
    absl::StatusOr<std::string> text = ReadFileToString(*path);
    if (!text.ok()) return text.status();
    if (text->find("-----BEGIN") == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(*path, " is not a PEM file"));
    }
    if (path == &files.cert) cert_pem = *std::move(text);
    if (path == &files.key) key_pem = *std::move(text);
  }
  // gRPC would only say "handshake failed" much later; name the mismatch now.
  if (absl::Status s = crypto::CheckKeyMatchesCertificate(cert_pem, key_pem); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("tls.key ", files.key, " does not match tls.cert ",
                                                   files.cert, ": ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const config::TlsFiles& files) {
  if (absl::Status s = CheckReadable(files); !s.ok()) return s;
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key, files.cert, files.ca, files.reload_seconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  // gRPC makes the client present a certificate and prove it holds the key; SiteVerifier
  // decides whether the certificate is acceptable and logs why when it is not.
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  std::shared_ptr<RevocationList> crl;
  if (!files.crl.empty()) {
    absl::StatusOr<std::shared_ptr<RevocationList>> opened =
        RevocationList::Open(files.crl, files.ca);
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          absl::StrCat("tls.crl: ", opened.status().message()));
    }
    crl = *std::move(opened);
  }
  options.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<SiteVerifier>(files.ca, crl));
  return grpc::experimental::TlsServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const config::TlsFiles& files) {
  if (absl::Status s = CheckReadable(files); !s.ok()) return s;
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key, files.cert, files.ca, files.reload_seconds);
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  // The chain, validity, serverAuth and host name are checked by CoordinatorVerifier, which
  // says why a certificate is refused; gRPC's own check would only say "verify failed".
  options.set_verify_server_certs(false);
  options.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<CoordinatorVerifier>(files.ca));
  return grpc::experimental::TlsCredentials(options);
}

std::string OwnCertificateProblems(const config::TlsFiles& files) {
  absl::StatusOr<std::string> cert = ReadFileToString(files.cert);
  absl::StatusOr<std::string> ca = ReadFileToString(files.ca);
  absl::StatusOr<std::string> key = ReadFileToString(files.key);
  if (!cert.ok() || !ca.ok() || !key.ok()) return "";
  std::vector<std::string> problems;
  crypto::AcceptanceCriteria criteria;
  criteria.ca_pem = *ca;
  absl::StatusOr<std::vector<std::string>> reasons = crypto::RefusalReasons(*cert, criteria);
  if (reasons.ok()) problems = *std::move(reasons);
  if (!crypto::CheckKeyMatchesCertificate(*cert, *key).ok()) {
    problems.push_back(absl::StrCat("tls.key ", files.key, " does not belong to it"));
  }
  if (problems.empty()) return "";
  return absl::StrCat("this site's certificate ", files.cert, ": ", absl::StrJoin(problems, "; "));
}

grpc::ChannelArguments MakeChannelArguments(const std::string& server_name,
                                            const config::KeepaliveConfig& keepalive) {
  grpc::ChannelArguments args;
  if (!server_name.empty()) args.SetSslTargetNameOverride(server_name);
  // Bounds what the coordinator queues for each download stream (see kStreamWindowBytes).
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kStreamWindowBytes);
  // Idle sessions stay up; a dead coordinator is noticed within time + timeout (default 50 s).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS,
              static_cast<int>(absl::ToInt64Milliseconds(keepalive.time)));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
              static_cast<int>(absl::ToInt64Milliseconds(keepalive.timeout)));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Reconnection is paced by the client's own backoff loop (exponential, with jitter); the
  // channel's own backoff must not add a second, longer one. gRPC also uses the minimum
  // reconnect backoff as the connect timeout: 5 s leaves room for a TLS handshake on a slow
  // link or a busy coordinator.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  return args;
}

}  // namespace cohort::tls
