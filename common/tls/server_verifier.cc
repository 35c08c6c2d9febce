#include "common/tls/server_verifier.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto/pki.h"
#include "common/tls/certificate_review.h"
#include "common/util/files.h"

namespace cohort::tls {
namespace {

// Parses IPv4/IPv6 text into bytes; empty if it is not an address.
std::string IpBytes(absl::string_view text) {
  const std::string s(text);
  unsigned char buffer[16];
  if (inet_pton(AF_INET, s.c_str(), buffer) == 1) return std::string(reinterpret_cast<char*>(buffer), 4);
  if (inet_pton(AF_INET6, s.c_str(), buffer) == 1) {
    return std::string(reinterpret_cast<char*>(buffer), 16);
  }
  return "";
}

// The host part of "host", "host:port", "[v6]" or "[v6]:port".
absl::string_view HostOf(absl::string_view target) {
  if (absl::StartsWith(target, "[")) {
    const size_t close = target.find(']');
    return close == absl::string_view::npos ? target : target.substr(1, close - 1);
  }
  const size_t colon = target.find(':');
  // More than one colon: a bare IPv6 address, no port.
  if (colon != absl::string_view::npos && target.find(':', colon + 1) == absl::string_view::npos) {
    return target.substr(0, colon);
  }
  return target;
}

bool DnsNameMatches(absl::string_view pattern, absl::string_view host) {
  if (absl::EqualsIgnoreCase(pattern, host)) return true;
  if (!absl::StartsWith(pattern, "*.")) return false;
  const size_t dot = host.find('.');
  if (dot == absl::string_view::npos || dot == 0) return false;
  return absl::EqualsIgnoreCase(pattern.substr(1), host.substr(dot));
}

}  // namespace

bool HostMatchesCertificate(absl::string_view target, const std::vector<std::string>& dns_names,
                            const std::vector<std::string>& ip_addresses) {
  const std::string ip = IpBytes(target);
  if (!ip.empty()) {
    for (const std::string& entry : ip_addresses) {
      if (IpBytes(entry) == ip) return true;
    }
    return false;
  }
  for (const std::string& pattern : dns_names) {
    if (DnsNameMatches(pattern, target)) return true;
  }
  return false;
}

absl::Status CheckCoordinatorCertificate(const std::string& cert_pem, const std::string& ca_pem,
                                         absl::string_view target_name) {
  absl::StatusOr<CertificateReview> review =
      ReviewCertificate(cert_pem, ca_pem, "coordinator's certificate");
  if (!review.ok()) return review.status();
  const crypto::CertificateInfo* info = &review->info;
  std::vector<std::string>* reasons = &review->reasons;
  if (!info->server_auth) {
    reasons->push_back("it is not a server certificate (no extendedKeyUsage serverAuth)");
  }
  const absl::string_view host = HostOf(target_name);
  if (!HostMatchesCertificate(host, info->dns_names, info->ip_addresses)) {
    std::vector<std::string> names;
    for (const std::string& dns : info->dns_names) names.push_back("DNS:" + dns);
    for (const std::string& ip : info->ip_addresses) names.push_back("IP:" + ip);
    reasons->push_back(absl::StrCat(
        "it is for ", names.empty() ? std::string("no host name") : absl::StrJoin(names, ", "),
        ", not for '", host,
        "' (the host dialled, or server_name in the site config; reissue the coordinator "
        "certificate with --name/--ip for it)"));
  }
  if (reasons->empty()) return absl::OkStatus();
  return absl::UnauthenticatedError(absl::StrCat("coordinator certificate CN=", info->common_name,
                                                 " refused: ", absl::StrJoin(*reasons, "; ")));
}

bool CoordinatorVerifier::Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
                                 std::function<void(grpc::Status)> /*callback*/,
                                 grpc::Status* sync_status) {
  const grpc::string_ref pem = request->peer_cert();
  const grpc::string_ref target = request->target_name();
  absl::Status checked;
  absl::StatusOr<std::string> ca_pem = ReadFileToString(ca_path_);
  if (!ca_pem.ok()) {
    checked = absl::UnauthenticatedError(
        absl::StrCat("cannot read tls.ca: ", ca_pem.status().message()));
  } else if (pem.empty()) {
    checked = absl::UnauthenticatedError("the coordinator presented no certificate");
  } else {
    checked = CheckCoordinatorCertificate(std::string(pem.data(), pem.size()), *ca_pem,
                                          absl::string_view(target.data(), target.size()));
    if (!checked.ok()) {
      checked = absl::UnauthenticatedError(
          absl::StrCat(checked.message(), " (trusted CA: tls.ca ", ca_path_, ")"));
    }
  }
  *sync_status = checked.ok() ? grpc::Status::OK
                              : grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                             std::string(checked.message()));
  return true;  // decided synchronously
}

}  // namespace cohort::tls
