#ifndef COHORT_TESTS_SUPPORT_TEST_PKI_H_
#define COHORT_TESTS_SUPPORT_TEST_PKI_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/config/coordinator_config.h"
#include "common/crypto/pki.h"

namespace cohort::testing {

// A real federation PKI written to files for a test: a CA, a coordinator certificate for
// 127.0.0.1/localhost, and site certificates, all generated with OpenSSL at run time.
class TestPki {
 public:
  // Writes dir/ca.pem, dir/ca.key, dir/coordinator.{pem,key}.
  TestPki(std::string dir, std::string federation);

  // Issues dir/<file_stem>.{pem,key} for `site_id` (SPIFFE URI + CN) valid in
  // [not_before, not_after]; defaults to a certificate valid now.
  config::TlsFiles IssueSite(const std::string& site_id, const std::string& file_stem = "",
                             absl::Time not_before = absl::Now() - absl::Hours(1),
                             absl::Time not_after = absl::Now() + absl::Hours(24));
  // A certificate carrying only a CN (no SPIFFE URI).
  config::TlsFiles IssueCommonNameOnly(const std::string& common_name);
  // A certificate with an arbitrary URI SAN (e.g. another federation's SPIFFE id).
  config::TlsFiles IssueWithUri(const std::string& common_name, const std::string& uri);

  config::TlsFiles coordinator_files() const;
  const std::string& dir() const { return dir_; }
  const std::string& ca_path() const { return ca_path_; }
  const crypto::PemIdentity& ca() const { return ca_; }

 private:
  config::TlsFiles Write(const std::string& stem, const crypto::PemIdentity& identity);

  std::string dir_;
  std::string federation_;
  crypto::PemIdentity ca_;
  std::string ca_path_;
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_SUPPORT_TEST_PKI_H_
