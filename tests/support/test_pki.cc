#include "tests/support/test_pki.h"

#include <filesystem>

#include <catch2/catch.hpp>

namespace cohort::testing {

TestPki::TestPki(std::string dir, std::string federation)
    : dir_(std::move(dir)), federation_(std::move(federation)) {
  std::filesystem::create_directories(dir_);
  auto ca = crypto::CreateCertificateAuthority(federation_ + " CA", absl::Now() - absl::Hours(1),
                                               absl::Now() + absl::Hours(48));
  REQUIRE(ca.ok());
  ca_ = *ca;
  ca_path_ = dir_ + "/ca.pem";
  REQUIRE(crypto::WriteFileAtomically(ca_path_, ca_.cert_pem, 0644).ok());
  REQUIRE(crypto::WriteFileAtomically(dir_ + "/ca.key", ca_.key_pem, 0600).ok());
  crypto::CertificateSpec spec;
  spec.common_name = "coordinator";
  spec.dns_names = {"localhost"};
  spec.ip_addresses = {"127.0.0.1"};
  spec.not_before = absl::Now() - absl::Hours(1);
  spec.not_after = absl::Now() + absl::Hours(24);
  spec.server_auth = true;
  spec.client_auth = true;
  auto coordinator = crypto::IssueCertificate(ca_, spec);
  REQUIRE(coordinator.ok());
  Write("coordinator", *coordinator);
}

config::TlsFiles TestPki::Write(const std::string& stem, const crypto::PemIdentity& identity) {
  config::TlsFiles files;
  files.ca = ca_path_;
  files.cert = dir_ + "/" + stem + ".pem";
  files.key = dir_ + "/" + stem + ".key";
  REQUIRE(crypto::WriteFileAtomically(files.cert, identity.cert_pem, 0644).ok());
  REQUIRE(crypto::WriteFileAtomically(files.key, identity.key_pem, 0600).ok());
  return files;
}

config::TlsFiles TestPki::coordinator_files() const {
  return config::TlsFiles{ca_path_, dir_ + "/coordinator.pem", dir_ + "/coordinator.key"};
}

config::TlsFiles TestPki::IssueSite(const std::string& site_id, const std::string& file_stem,
                                    absl::Time not_before, absl::Time not_after) {
  crypto::CertificateSpec spec;
  spec.common_name = site_id;
  spec.uris = {crypto::SiteIdentityUri(federation_, site_id)};
  spec.not_before = not_before;
  spec.not_after = not_after;
  spec.client_auth = true;
  auto issued = crypto::IssueCertificate(ca_, spec);
  REQUIRE(issued.ok());
  return Write(file_stem.empty() ? site_id : file_stem, *issued);
}

config::TlsFiles TestPki::IssueCommonNameOnly(const std::string& common_name) {
  crypto::CertificateSpec spec;
  spec.common_name = common_name;
  spec.not_before = absl::Now() - absl::Hours(1);
  spec.not_after = absl::Now() + absl::Hours(24);
  spec.client_auth = true;
  auto issued = crypto::IssueCertificate(ca_, spec);
  REQUIRE(issued.ok());
  return Write(common_name + "-cn-only", *issued);
}

config::TlsFiles TestPki::IssueWithUri(const std::string& common_name, const std::string& uri) {
  crypto::CertificateSpec spec;
  spec.common_name = common_name;
  spec.uris = {uri};
  spec.not_before = absl::Now() - absl::Hours(1);
  spec.not_after = absl::Now() + absl::Hours(24);
  spec.client_auth = true;
  auto issued = crypto::IssueCertificate(ca_, spec);
  REQUIRE(issued.ok());
  return Write(common_name + "-uri", *issued);
}

}  // namespace cohort::testing
