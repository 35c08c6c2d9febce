// `cohortctl pki`: create the federation CA, request (at a site) and sign certificates,
// issue them in one step for development, revoke them, and inspect certificates.
//
// Layout of a PKI directory (DIR):
//   ca.pem, ca.key                   the federation CA (written by init-ca)
//   revoked.txt, crl.pem             the CA's revocation index and its signed CRL
//   coordinator.pem, coordinator.key the coordinator's server+client certificate
//   <site-id>.pem, <site-id>.key     one client certificate per site
//   <site-id>.csr                    a site's certificate request (written by csr)
// Keys are written 0600 and certificates 0644, each atomically.
#include <arpa/inet.h>

#include <algorithm>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/crypto/pki.h"
#include "common/util/site_id.h"
#include "tools/commands.h"

namespace cohort::tools {
namespace {

namespace fs = std::filesystem;
using ::cohort::crypto::CertificateInfo;
using ::cohort::crypto::CertificateSpec;
using ::cohort::crypto::PemIdentity;

// Exit codes, as documented in tools/commands.h.
constexpr int kOperationFailed = 1;
constexpr int kBadArguments = 2;

// Upper bound for --days: a hundred years is already far beyond any sensible lifetime.
constexpr int kMaxDays = 36500;
// Certificates start slightly in the past so that peers whose clocks run a little
// behind ours do not reject a certificate that was just issued.
constexpr absl::Duration kBackdate = absl::Minutes(5);

constexpr char kCaCertFile[] = "ca.pem";
constexpr char kCaKeyFile[] = "ca.key";
constexpr char kRevokedIndexFile[] = "revoked.txt";
constexpr char kCrlFile[] = "crl.pem";
constexpr char kCoordinatorName[] = "coordinator";
constexpr int kKeyMode = 0600;
constexpr int kCertMode = 0644;

// Prints "cohortctl pki <subcommand>: <message>" to stderr and ends the command with
// `exit_code` (main() turns CLI::RuntimeError into the process exit code).
[[noreturn]] void Fail(absl::string_view subcommand, int exit_code, absl::string_view message) {
  std::cerr << "cohortctl pki " << subcommand << ": " << message << std::endl;
  throw CLI::RuntimeError(exit_code);
}

void Warn(absl::string_view subcommand, absl::string_view message) {
  std::cerr << "cohortctl pki " << subcommand << ": warning: " << message << std::endl;
}

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// A rough, readable length of time: whole days from two days up, else minutes.
std::string HumanDuration(absl::Duration d) {
  if (d >= absl::Hours(48))
    return absl::StrCat(absl::IDivDuration(d, absl::Hours(24), &d), " days");
  if (d < absl::Minutes(1)) return "less than a minute";
  return absl::FormatDuration(absl::Trunc(d, absl::Minutes(1)));
}

// Reads a whole file. Errors name the file and the system's reason.
absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::unique_ptr<std::FILE, decltype(&std::fclose)> file(std::fopen(path.c_str(), "rb"),
                                                          &std::fclose);
  if (file == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot open ", path));
  }
  std::string contents;
  char buffer[8192];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file.get())) > 0) contents.append(buffer, n);
  if (std::ferror(file.get()))
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot read ", path));
  return contents;
}

// True if something (a file, directory or even a dangling symlink) exists at `path`.
bool PathExists(const fs::path& path) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(path, ec));
}

// Makes sure `dir` exists as a directory. A directory created here (but not its missing
// parents, which get the usual umask-based permissions) is made private: 0700.
absl::Status EnsurePrivateDirectory(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return absl::OkStatus();
  if (PathExists(dir)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir.string(), " exists but is not a directory"));
  }
  fs::create_directories(dir, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot set permissions on ", dir.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

// A federation name is a SPIFFE trust domain: lowercase letters, digits, '.', '_', '-'.
// It is capped at 60 characters so that the CA's common name "<federation> CA" stays
// within the 64-character X.509 limit.
bool IsValidFederationName(absl::string_view name) {
  return name.size() <= 60 && cohort::IsValidSiteId(name);
}

std::string CaCommonName(absl::string_view federation) { return absl::StrCat(federation, " CA"); }

// Loose DNS name check for --name: 1-253 characters of letters, digits, '-', '.', and
// '*' (for wildcards); labels are non-empty. Enough to catch typos such as a URL or an
// address with a port.
bool IsPlausibleDnsName(absl::string_view name) {
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.') return false;
  char previous = '\0';
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '*';
    if (!ok || (c == '.' && previous == '.')) return false;
    previous = c;
  }
  return true;
}

bool IsIpAddress(const std::string& text) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, text.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

// Writes a key (0600) and then its certificate (0644). The key goes first so that a
// certificate on disk always has its key next to it.
void WriteIdentity(absl::string_view subcommand, const PemIdentity& identity,
                   const fs::path& cert_path, const fs::path& key_path) {
  if (absl::Status s = crypto::WriteFileAtomically(key_path.string(), identity.key_pem, kKeyMode);
      !s.ok()) {
    Fail(subcommand, kOperationFailed, s.message());
  }
  if (absl::Status s =
          crypto::WriteFileAtomically(cert_path.string(), identity.cert_pem, kCertMode);
      !s.ok()) {
    Fail(subcommand, kOperationFailed, s.message());
  }
}

// Reads DIR/ca.pem and DIR/ca.key; exits with the reason if either is missing.
PemIdentity LoadCa(absl::string_view subcommand, const std::string& dir) {
  PemIdentity ca;
  for (const auto& [file, target] :
       {std::pair<const char*, std::string*>{kCaCertFile, &ca.cert_pem},
        {kCaKeyFile, &ca.key_pem}}) {
    absl::StatusOr<std::string> contents = ReadFile((fs::path(dir) / file).string());
    if (!contents.ok()) {
      Fail(subcommand, kOperationFailed,
           absl::StrCat(contents.status().message(), " (run `cohortctl pki init-ca --dir ", dir,
                        "` first?)"));
    }
    *target = *std::move(contents);
  }
  return ca;
}

// Summarizes the CA certificate and warns if it is not the CA of `federation`.
CertificateInfo CheckCaFederation(absl::string_view subcommand, const PemIdentity& ca,
                                  const std::string& dir, const std::string& federation) {
  absl::StatusOr<CertificateInfo> ca_info = crypto::InspectCertificate(ca.cert_pem);
  if (!ca_info.ok()) {
    Fail(subcommand, kOperationFailed,
         absl::StrCat((fs::path(dir) / kCaCertFile).string(), ": ", ca_info.status().message()));
  }
  if (!federation.empty() && ca_info->common_name != CaCommonName(federation)) {
    Warn(subcommand, absl::StrCat("the CA in ", dir, " is \"", ca_info->common_name, "\", not \"",
                                  CaCommonName(federation), "\"; is --federation right?"));
  }
  return *std::move(ca_info);
}

// ---- init-ca ---------------------------------------------------------------------------

struct InitCaOptions {
  std::string dir;
  std::string federation;
  int days = 3650;
};

void RunInitCa(const InitCaOptions& options) {
  constexpr absl::string_view kSub = "init-ca";
  if (!IsValidFederationName(options.federation)) {
    Fail(kSub, kBadArguments,
         absl::StrCat("invalid federation name '", options.federation,
                      "': use 1-60 characters of [a-z0-9._-], starting with a letter or digit"));
  }
  if (options.days < 1 || options.days > kMaxDays) {
    Fail(kSub, kBadArguments, absl::StrCat("--days must be between 1 and ", kMaxDays));
  }
  if (options.dir.empty()) Fail(kSub, kBadArguments, "--dir must not be empty");
  const fs::path dir(options.dir);
  const fs::path cert_path = dir / kCaCertFile;
  const fs::path key_path = dir / kCaKeyFile;
  // Never replace a CA key: every certificate issued under it would stop verifying.
  if (PathExists(key_path)) {
    Fail(kSub, kOperationFailed,
         absl::StrCat(key_path.string(),
                      " already exists; refusing to overwrite the federation CA key (move it "
                      "away first if you really want a new CA)"));
  }
  if (absl::Status s = EnsurePrivateDirectory(dir); !s.ok()) {
    Fail(kSub, kOperationFailed, s.message());
  }

  const absl::Time now = absl::Now();
  const absl::Time not_after = now + absl::Hours(24) * options.days;
  absl::StatusOr<PemIdentity> ca = crypto::CreateCertificateAuthority(
      CaCommonName(options.federation), now - kBackdate, not_after);
  if (!ca.ok()) {
    Fail(kSub, kOperationFailed, absl::StrCat("creating the CA failed: ", ca.status().message()));
  }
  WriteIdentity(kSub, *ca, cert_path, key_path);
  std::cout << "Created CA \"" << CaCommonName(options.federation) << "\" for federation "
            << options.federation << ", valid until " << FormatUtc(not_after) << "\n"
            << "  certificate: " << cert_path.string() << "\n"
            << "  private key: " << key_path.string() << " (keep it secret and offline)\n";
}

// ---- issue -----------------------------------------------------------------------------

struct IssueOptions {
  std::string dir;
  std::string federation;
  std::string site;
  bool site_given = false;  // --site appeared, possibly with an empty value
  bool coordinator = false;
  std::string admin;  // issue only: an operator's certificate for the Admin service
  std::vector<std::string> names;
  std::vector<std::string> ips;
  int days = 825;
  std::string out;
};

// Checks the arguments of `issue` and turns them into a certificate spec (without the
// validity window). Exits with kBadArguments on any problem.
CertificateSpec BuildIssueSpec(const IssueOptions& options, absl::string_view kSub) {
  if (!IsValidFederationName(options.federation)) {
    Fail(kSub, kBadArguments,
         absl::StrCat("invalid federation name '", options.federation,
                      "': use 1-60 characters of [a-z0-9._-], starting with a letter or digit"));
  }
  if (options.dir.empty()) Fail(kSub, kBadArguments, "--dir must not be empty");
  const bool is_site = options.site_given;
  const bool is_admin = !options.admin.empty();
  if (static_cast<int>(is_site) + static_cast<int>(options.coordinator) +
          static_cast<int>(is_admin) != 1) {
    Fail(kSub, kBadArguments,
         kSub == "issue" ? "give exactly one of --site ID, --coordinator or --admin NAME"
                         : "give exactly one of --site ID or --coordinator");
  }
  if (options.days < 1 || options.days > kMaxDays) {
    Fail(kSub, kBadArguments, absl::StrCat("--days must be between 1 and ", kMaxDays));
  }

  CertificateSpec spec;
  if (is_admin) {
    if (!cohort::IsValidSiteId(options.admin)) {
      Fail(kSub, kBadArguments,
           absl::StrCat("invalid admin name '", options.admin,
                        "': it must match [a-z0-9][a-z0-9._-]{0,62}"));
    }
    if (!options.names.empty() || !options.ips.empty()) {
      Fail(kSub, kBadArguments,
           "--name and --ip only apply to --coordinator; an admin is identified by its URI");
    }
    spec.common_name = absl::StrCat("admin:", options.admin);
    spec.uris = {crypto::AdminIdentityUri(options.federation, options.admin)};
    spec.client_auth = true;
    return spec;
  }
  if (is_site) {
    if (!cohort::IsValidSiteId(options.site)) {
      Fail(kSub, kBadArguments,
           absl::StrCat("invalid site id '", options.site,
                        "': it must match [a-z0-9][a-z0-9._-]{0,62}"));
    }
    // These ids would collide with the CA's or the coordinator's files and identity.
    if (options.site == "ca" || options.site == kCoordinatorName) {
      Fail(kSub, kBadArguments,
           absl::StrCat("invalid site id '", options.site, "': it is reserved"));
    }
    if (!options.names.empty() || !options.ips.empty()) {
      Fail(kSub, kBadArguments,
           "--name and --ip only apply to --coordinator; a site is identified by its URI");
    }
    spec.common_name = options.site;
    spec.uris = {crypto::SiteIdentityUri(options.federation, options.site)};
    spec.client_auth = true;
    return spec;
  }

  spec.common_name = kCoordinatorName;
  spec.dns_names = options.names.empty() ? std::vector<std::string>{"localhost"} : options.names;
  spec.ip_addresses = options.ips.empty() ? std::vector<std::string>{"127.0.0.1"} : options.ips;
  for (const std::string& name : spec.dns_names) {
    if (!IsPlausibleDnsName(name)) {
      Fail(kSub, kBadArguments, absl::StrCat("invalid DNS name '", name, "' for --name"));
    }
  }
  for (const std::string& ip : spec.ip_addresses) {
    if (!IsIpAddress(ip)) {
      Fail(kSub, kBadArguments, absl::StrCat("invalid IP address '", ip, "' for --ip"));
    }
  }
  spec.server_auth = true;
  spec.client_auth = true;
  return spec;
}

void RunIssue(const IssueOptions& options) {
  constexpr absl::string_view kSub = "issue";
  CertificateSpec spec = BuildIssueSpec(options, kSub);

  const fs::path dir(options.dir);
  const PemIdentity ca = LoadCa(kSub, options.dir);
  const CertificateInfo ca_info_value = CheckCaFederation(kSub, ca, options.dir, options.federation);
  const CertificateInfo* ca_info = &ca_info_value;

  const absl::Time now = absl::Now();
  spec.not_before = now - kBackdate;
  spec.not_after = now + absl::Hours(24) * options.days;
  if (spec.not_after > ca_info->not_after) {
    Warn(kSub, absl::StrCat("the certificate outlives its CA, which expires ",
                            FormatUtc(ca_info->not_after), "; it will stop verifying then"));
  }

  const fs::path out = options.out.empty() ? dir : fs::path(options.out);
  if (absl::Status s = EnsurePrivateDirectory(out); !s.ok()) {
    Fail(kSub, kOperationFailed, s.message());
  }
  const std::string base = options.coordinator       ? std::string(kCoordinatorName)
                           : !options.admin.empty() ? absl::StrCat("admin-", options.admin)
                                                    : options.site;
  const fs::path cert_path = out / (base + ".pem");
  const fs::path key_path = out / (base + ".key");
  const bool replacing = PathExists(cert_path) || PathExists(key_path);

  absl::StatusOr<PemIdentity> leaf = crypto::IssueCertificate(ca, spec);
  if (!leaf.ok()) {
    Fail(kSub, kOperationFailed,
         absl::StrCat("issuing the certificate failed: ", leaf.status().message()));
  }
  WriteIdentity(kSub, *leaf, cert_path, key_path);

  std::vector<std::string> sans;
  for (const auto& uri : spec.uris) sans.push_back("URI:" + uri);
  for (const auto& name : spec.dns_names) sans.push_back("DNS:" + name);
  for (const auto& ip : spec.ip_addresses) sans.push_back("IP:" + ip);
  std::cout << (replacing ? "Replaced" : "Issued") << " "
            << (options.coordinator ? "coordinator" : !options.admin.empty() ? "admin" : "site")
            << " certificate CN=" << spec.common_name << " [" << absl::StrJoin(sans, ", ")
            << "], valid until " << FormatUtc(spec.not_after) << "\n"
            << "  certificate: " << cert_path.string() << "\n"
            << "  private key: " << key_path.string() << "\n";
}

// ---- csr -------------------------------------------------------------------------------

struct CsrOptions {
  IssueOptions identity;   // --dir, --federation, --site/--coordinator, --name, --ip
  bool reuse_key = false;  // request a certificate for the existing DIR/ID.key
  bool rotate = false;     // new key in DIR/ID.next.key, leaving the key in use alone
};

void RunCsr(const CsrOptions& options) {
  constexpr absl::string_view kSub = "csr";
  // The same identity checks as `issue`; validity and key usage are left to the CA.
  const CertificateSpec subject = BuildIssueSpec(options.identity, kSub);
  if (options.reuse_key && options.rotate) {
    Fail(kSub, kBadArguments, "give at most one of --reuse-key and --rotate");
  }
  const std::string base =
      options.identity.coordinator ? std::string(kCoordinatorName) : options.identity.site;
  const fs::path dir(options.identity.dir);
  if (absl::Status s = EnsurePrivateDirectory(dir); !s.ok()) {
    Fail(kSub, kOperationFailed, s.message());
  }
  const fs::path key_path = dir / (base + (options.rotate ? ".next.key" : ".key"));
  const fs::path csr_path = dir / (base + ".csr");

  std::string key_pem;
  if (options.reuse_key) {
    absl::StatusOr<std::string> existing = ReadFile(key_path.string());
    if (!existing.ok()) Fail(kSub, kOperationFailed, existing.status().message());
    key_pem = *std::move(existing);
  } else {
    if (!options.rotate && PathExists(key_path)) {
      Fail(kSub, kOperationFailed,
           absl::StrCat(key_path.string(),
                        " already exists; pass --reuse-key to renew with the same key, or "
                        "--rotate to make a new key (written to ",
                        base, ".next.key) without touching the one in use"));
    }
    absl::StatusOr<std::string> fresh = crypto::GeneratePrivateKeyPem();
    if (!fresh.ok()) Fail(kSub, kOperationFailed, fresh.status().message());
    key_pem = *std::move(fresh);
  }
  absl::StatusOr<std::string> csr = crypto::CreateCertificateRequest(key_pem, subject);
  if (!csr.ok()) {
    Fail(kSub, kOperationFailed,
         absl::StrCat("creating the request failed: ", csr.status().message()));
  }
  if (!options.reuse_key) {
    if (absl::Status s = crypto::WriteFileAtomically(key_path.string(), key_pem, kKeyMode);
        !s.ok()) {
      Fail(kSub, kOperationFailed, s.message());
    }
  }
  if (absl::Status s = crypto::WriteFileAtomically(csr_path.string(), *csr, kCertMode); !s.ok()) {
    Fail(kSub, kOperationFailed, s.message());
  }
  std::vector<std::string> sans;
  for (const auto& uri : subject.uris) sans.push_back("URI:" + uri);
  for (const auto& name : subject.dns_names) sans.push_back("DNS:" + name);
  for (const auto& ip : subject.ip_addresses) sans.push_back("IP:" + ip);
  std::cout << "Wrote a certificate request for CN=" << subject.common_name << " ["
            << absl::StrJoin(sans, ", ") << "]\n"
            << "  request:     " << csr_path.string() << "  <- send this file to the CA\n"
            << "  private key: " << key_path.string()
            << (options.reuse_key ? " (existing)" : " (new, mode 0600)")
            << "  <- stays here, never send it\n";
}

// ---- sign ------------------------------------------------------------------------------

struct SignOptions {
  IssueOptions issue;  // --dir, --federation, --site/--coordinator, --name, --ip, --days, --out
  std::string csr;
};

// Exits unless the request asks for exactly the identity the CA is about to grant.
void CheckRequestedIdentity(const crypto::CertificateRequestInfo& request,
                            const CertificateSpec& spec, bool coordinator,
                            const std::string& csr_file) {
  constexpr absl::string_view kSub = "sign";
  std::vector<std::string> asked;
  if (!request.common_name.empty()) asked.push_back("CN=" + request.common_name);
  for (const auto& uri : request.uris) asked.push_back("URI:" + uri);
  for (const auto& name : request.dns_names) asked.push_back("DNS:" + name);
  for (const auto& ip : request.ip_addresses) asked.push_back("IP:" + ip);
  const std::string asked_text = asked.empty() ? "no identity" : absl::StrJoin(asked, ", ");
  if (coordinator) {
    if (!request.uris.empty()) {
      Fail(kSub, kOperationFailed,
           absl::StrCat(csr_file, " asks for ", asked_text,
                        ": a site identity cannot be signed as the coordinator"));
    }
    // The names come from --name/--ip; say so when they differ from the request's.
    std::vector<std::string> granted;
    for (const auto& name : spec.dns_names) granted.push_back("DNS:" + name);
    for (const auto& ip : spec.ip_addresses) granted.push_back("IP:" + ip);
    std::vector<std::string> requested(asked.begin() + (request.common_name.empty() ? 0 : 1),
                                       asked.end());
    std::sort(granted.begin(), granted.end());
    std::sort(requested.begin(), requested.end());
    if (!requested.empty() && requested != granted) {
      Warn(kSub, absl::StrCat(csr_file, " asks for ", absl::StrJoin(requested, ", "),
                              "; the certificate names ", absl::StrJoin(granted, ", "),
                              " (from --name/--ip)"));
    }
    return;
  }
  const bool cn_ok = request.common_name.empty() || request.common_name == spec.common_name;
  const bool uris_ok = request.uris.empty() || request.uris == spec.uris;
  const bool has_identity = !request.common_name.empty() || !request.uris.empty();
  if (!cn_ok || !uris_ok || !has_identity || !request.dns_names.empty() ||
      !request.ip_addresses.empty()) {
    Fail(kSub, kOperationFailed,
         absl::StrCat(csr_file, " asks for ", asked_text, ", but --site ", spec.common_name,
                      " grants CN=", spec.common_name, ", URI:", spec.uris[0],
                      "; refusing to sign a request for another identity"));
  }
}

void RunSign(const SignOptions& options) {
  constexpr absl::string_view kSub = "sign";
  CertificateSpec spec = BuildIssueSpec(options.issue, kSub);
  absl::StatusOr<std::string> csr_pem = ReadFile(options.csr);
  if (!csr_pem.ok()) Fail(kSub, kOperationFailed, csr_pem.status().message());
  absl::StatusOr<crypto::CertificateRequestInfo> request =
      crypto::InspectCertificateRequest(*csr_pem);
  if (!request.ok()) {
    Fail(kSub, kOperationFailed,
         absl::StrCat("refusing ", options.csr, ": ", request.status().message()));
  }
  CheckRequestedIdentity(*request, spec, options.issue.coordinator, options.csr);

  const PemIdentity ca = LoadCa(kSub, options.issue.dir);
  const CertificateInfo ca_info =
      CheckCaFederation(kSub, ca, options.issue.dir, options.issue.federation);
  const absl::Time now = absl::Now();
  spec.not_before = now - kBackdate;
  spec.not_after = now + absl::Hours(24) * options.issue.days;
  if (spec.not_after > ca_info.not_after) {
    Warn(kSub, absl::StrCat("the certificate outlives its CA, which expires ",
                            FormatUtc(ca_info.not_after), "; it will stop verifying then"));
  }
  absl::StatusOr<std::string> cert = crypto::SignCertificateRequest(ca, *csr_pem, spec);
  if (!cert.ok()) {
    Fail(kSub, kOperationFailed, absl::StrCat("signing failed: ", cert.status().message()));
  }
  const fs::path out = options.issue.out.empty() ? fs::path(options.issue.dir)
                                                 : fs::path(options.issue.out);
  if (absl::Status s = EnsurePrivateDirectory(out); !s.ok()) {
    Fail(kSub, kOperationFailed, s.message());
  }
  const std::string base =
      options.issue.coordinator ? std::string(kCoordinatorName) : options.issue.site;
  const fs::path cert_path = out / (base + ".pem");
  if (absl::Status s = crypto::WriteFileAtomically(cert_path.string(), *cert, kCertMode);
      !s.ok()) {
    Fail(kSub, kOperationFailed, s.message());
  }
  absl::StatusOr<CertificateInfo> info = crypto::InspectCertificate(*cert);
  std::vector<std::string> sans;
  for (const auto& uri : spec.uris) sans.push_back("URI:" + uri);
  for (const auto& name : spec.dns_names) sans.push_back("DNS:" + name);
  for (const auto& ip : spec.ip_addresses) sans.push_back("IP:" + ip);
  std::cout << "Signed " << (options.issue.coordinator ? "coordinator" : "site")
            << " certificate CN=" << spec.common_name << " [" << absl::StrJoin(sans, ", ")
            << "] for a " << request->key_type << " key, serial "
            << (info.ok() ? info->serial_hex : "?") << ", valid until "
            << FormatUtc(spec.not_after) << "\n"
            << "  certificate: " << cert_path.string()
            << "  <- send it back with " << kCaCertFile << "\n";
}

// ---- revoke and crl ----------------------------------------------------------------------

// The CA's revocation index, DIR/revoked.txt: one line per revoked certificate,
// "<serial hex>\t<revoked at, RFC 3339 UTC>\t<reason>\t<subject CN>"; '#' starts a comment.
// It is the source of truth; crl.pem is derived from it.
struct RevokedEntry {
  crypto::RevokedCertificate revoked;
  std::string subject;
};

std::vector<RevokedEntry> ReadRevokedIndex(absl::string_view subcommand, const fs::path& path) {
  std::vector<RevokedEntry> entries;
  if (!PathExists(path)) return entries;
  absl::StatusOr<std::string> text = ReadFile(path.string());
  if (!text.ok()) Fail(subcommand, kOperationFailed, text.status().message());
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields = absl::StrSplit(line, '\t');
    RevokedEntry entry;
    std::string error;
    if (fields.size() < 3 ||
        !absl::ParseTime(absl::RFC3339_full, fields[1], &entry.revoked.revoked_at, &error)) {
      Fail(subcommand, kOperationFailed,
           absl::StrCat(path.string(), ":", line_number,
                        ": expected serial<TAB>time<TAB>reason<TAB>subject"));
    }
    entry.revoked.serial_hex = crypto::CanonicalSerialHex(fields[0]);
    entry.revoked.reason = fields[2];
    if (fields.size() > 3) entry.subject = fields[3];
    entries.push_back(std::move(entry));
  }
  return entries;
}

std::string FormatRevokedIndex(const std::vector<RevokedEntry>& entries) {
  std::string text =
      "# Certificates revoked by this CA: serial, revoked at, reason, subject.\n"
      "# Edit only with `cohortctl pki revoke`; `cohortctl pki crl` re-signs crl.pem from it.\n";
  for (const RevokedEntry& e : entries) {
    absl::StrAppend(&text, e.revoked.serial_hex, "\t", FormatUtc(e.revoked.revoked_at), "\t",
                    e.revoked.reason, "\t", e.subject, "\n");
  }
  return text;
}

// Signs DIR/crl.pem from `entries`, valid for `days`, numbered one above the current CRL.
void WriteCrl(absl::string_view subcommand, const std::string& dir, const PemIdentity& ca,
              const std::vector<RevokedEntry>& entries, int days) {
  const fs::path crl_path = fs::path(dir) / kCrlFile;
  crypto::CrlInfo crl;
  crl.number = 1;
  if (PathExists(crl_path)) {
    absl::StatusOr<std::string> old_pem = ReadFile(crl_path.string());
    if (old_pem.ok()) {
      absl::StatusOr<crypto::CrlInfo> old = crypto::ParseCrl(*old_pem, ca.cert_pem);
      if (old.ok()) crl.number = old->number + 1;
    }
  }
  const absl::Time now = absl::Now();
  crl.this_update = now - kBackdate;
  crl.next_update = now + absl::Hours(24) * days;
  for (const RevokedEntry& e : entries) crl.revoked.push_back(e.revoked);
  absl::StatusOr<std::string> pem = crypto::CreateCrl(ca, crl);
  if (!pem.ok()) {
    Fail(subcommand, kOperationFailed, absl::StrCat("signing the CRL failed: ", pem.status().message()));
  }
  if (absl::Status s = crypto::WriteFileAtomically(crl_path.string(), *pem, kCertMode); !s.ok()) {
    Fail(subcommand, kOperationFailed, s.message());
  }
  std::cout << "Wrote CRL number " << crl.number << " with " << entries.size()
            << " revoked certificate(s), next update " << FormatUtc(crl.next_update) << "\n"
            << "  CRL: " << crl_path.string()
            << "  <- copy it to the coordinator's tls.crl; it is re-read on change\n";
}

struct RevokeOptions {
  std::string dir;
  std::string cert;
  std::string serial;
  std::string reason = "unspecified";
  int days = 30;
};

void RunRevoke(const RevokeOptions& options) {
  constexpr absl::string_view kSub = "revoke";
  if (options.cert.empty() == options.serial.empty()) {
    Fail(kSub, kBadArguments, "give exactly one of --cert FILE or --serial HEX");
  }
  const auto& reasons = crypto::CrlReasonNames();
  if (std::find(reasons.begin(), reasons.end(), options.reason) == reasons.end()) {
    Fail(kSub, kBadArguments, absl::StrCat("unknown --reason '", options.reason,
                                           "'; use one of: ", absl::StrJoin(reasons, ", ")));
  }
  if (options.days < 1 || options.days > kMaxDays) {
    Fail(kSub, kBadArguments, absl::StrCat("--days must be between 1 and ", kMaxDays));
  }
  const PemIdentity ca = LoadCa(kSub, options.dir);
  RevokedEntry entry;
  entry.revoked.reason = options.reason;
  entry.revoked.revoked_at = absl::Now();
  if (!options.cert.empty()) {
    absl::StatusOr<std::string> pem = ReadFile(options.cert);
    if (!pem.ok()) Fail(kSub, kOperationFailed, pem.status().message());
    absl::StatusOr<CertificateInfo> info = crypto::InspectCertificate(*pem);
    if (!info.ok()) {
      Fail(kSub, kOperationFailed, absl::StrCat(options.cert, ": ", info.status().message()));
    }
    // A certificate of another CA cannot be revoked by this one's CRL.
    crypto::AcceptanceCriteria criteria;
    criteria.ca_pem = ca.cert_pem;
    absl::StatusOr<std::vector<std::string>> refusals = crypto::RefusalReasons(*pem, criteria);
    if (refusals.ok()) {
      for (const std::string& why : *refusals) {
        if (absl::StartsWith(why, "issued by another CA") ||
            absl::StartsWith(why, "does not verify")) {
          Fail(kSub, kOperationFailed, absl::StrCat(options.cert, " was not issued by the CA in ",
                                                    options.dir, ": ", why));
        }
      }
    }
    entry.revoked.serial_hex = info->serial_hex;
    entry.subject = info->common_name;
  } else {
    const std::string serial = crypto::CanonicalSerialHex(options.serial);
    if (serial.empty() || serial.size() > 40 ||
        serial.find_first_not_of("0123456789ABCDEF") != std::string::npos) {
      Fail(kSub, kBadArguments,
           absl::StrCat("--serial '", options.serial, "' is not a hexadecimal serial number"));
    }
    entry.revoked.serial_hex = serial;
  }

  const fs::path index_path = fs::path(options.dir) / kRevokedIndexFile;
  std::vector<RevokedEntry> entries = ReadRevokedIndex(kSub, index_path);
  for (const RevokedEntry& e : entries) {
    if (e.revoked.serial_hex == entry.revoked.serial_hex) {
      std::cout << "Serial " << e.revoked.serial_hex << " was already revoked at "
                << FormatUtc(e.revoked.revoked_at) << " (" << e.revoked.reason
                << "); re-issuing the CRL\n";
      WriteCrl(kSub, options.dir, ca, entries, options.days);
      return;
    }
  }
  entries.push_back(entry);
  if (absl::Status s = crypto::WriteFileAtomically(index_path.string(), FormatRevokedIndex(entries),
                                                   kCertMode);
      !s.ok()) {
    Fail(kSub, kOperationFailed, s.message());
  }
  std::cout << "Revoked serial " << entry.revoked.serial_hex
            << (entry.subject.empty() ? "" : absl::StrCat(" (CN=", entry.subject, ")"))
            << ", reason " << entry.revoked.reason << "\n";
  WriteCrl(kSub, options.dir, ca, entries, options.days);
}

struct CrlOptions {
  std::string dir;
  int days = 30;
};

void RunCrl(const CrlOptions& options) {
  constexpr absl::string_view kSub = "crl";
  if (options.days < 1 || options.days > kMaxDays) {
    Fail(kSub, kBadArguments, absl::StrCat("--days must be between 1 and ", kMaxDays));
  }
  const PemIdentity ca = LoadCa(kSub, options.dir);
  WriteCrl(kSub, options.dir, ca,
           ReadRevokedIndex(kSub, fs::path(options.dir) / kRevokedIndexFile), options.days);
}

// ---- inspect ---------------------------------------------------------------------------

struct InspectOptions {
  std::string file;
  std::string ca;
  std::string crl;
  std::string federation;
};

// "a, b, c", or "-" for an empty list.
std::string ListOrDash(const std::vector<std::string>& v) {
  return v.empty() ? std::string("-") : absl::StrJoin(v, ", ");
}

void InspectRequest(const std::string& file, const std::string& pem) {
  absl::StatusOr<crypto::CertificateRequestInfo> info = crypto::InspectCertificateRequest(pem);
  if (!info.ok()) Fail("inspect", kOperationFailed, absl::StrCat(file, ": ", info.status().message()));
  std::cout << "file:          " << file << " (certificate request, signature valid)\n"
            << "subject:       CN=" << info->common_name << "\n"
            << "key:           " << info->key_type << "\n"
            << "DNS names:     " << ListOrDash(info->dns_names) << "\n"
            << "IP addresses:  " << ListOrDash(info->ip_addresses) << "\n"
            << "URIs:          " << ListOrDash(info->uris) << "\n";
}

void RunInspect(const InspectOptions& options) {
  constexpr absl::string_view kSub = "inspect";
  const std::string& file = options.file;
  absl::StatusOr<std::string> pem = ReadFile(file);
  if (!pem.ok()) Fail(kSub, kOperationFailed, pem.status().message());
  if (absl::StrContains(*pem, "-----BEGIN CERTIFICATE REQUEST-----")) {
    InspectRequest(file, *pem);
    return;
  }
  absl::StatusOr<CertificateInfo> info = crypto::InspectCertificate(*pem);
  if (!info.ok()) Fail(kSub, kOperationFailed, absl::StrCat(file, ": ", info.status().message()));
  if (!options.crl.empty() && options.ca.empty()) {
    Fail(kSub, kBadArguments, "--crl needs --ca (the CA that signed the CRL)");
  }

  std::vector<std::string> usages;
  if (info->server_auth) usages.push_back("serverAuth");
  if (info->client_auth) usages.push_back("clientAuth");

  const absl::Time now = absl::Now();
  std::string status = "valid";
  if (now < info->not_before) {
    status = absl::StrCat("NOT YET VALID (starts in ", HumanDuration(info->not_before - now), ")");
  } else if (now > info->not_after) {
    status = absl::StrCat("EXPIRED (", HumanDuration(now - info->not_after), " ago)");
  } else {
    status = absl::StrCat("valid (expires in ", HumanDuration(info->not_after - now), ")");
  }

  std::cout << "file:          " << file << "\n"
            << "subject:       CN=" << info->common_name << "\n"
            << "issuer:        CN=" << info->issuer_common_name << "\n"
            << "serial:        " << info->serial_hex << "\n"
            << "not before:    " << FormatUtc(info->not_before) << "\n"
            << "not after:     " << FormatUtc(info->not_after) << "\n"
            << "status:        " << status << "\n"
            << "CA:            " << (info->is_ca ? "yes" : "no") << "\n"
            << "ext key usage: " << ListOrDash(usages) << "\n"
            << "DNS names:     " << ListOrDash(info->dns_names) << "\n"
            << "IP addresses:  " << ListOrDash(info->ip_addresses) << "\n"
            << "URIs:          " << ListOrDash(info->uris) << "\n"
            << "SHA-256:       " << info->sha256_fingerprint_hex << "\n";

  if (options.ca.empty() && options.federation.empty()) return;
  crypto::AcceptanceCriteria criteria;
  criteria.federation = options.federation;
  for (const auto& [path, target] : {std::pair<const std::string*, std::string*>{
                                         &options.ca, &criteria.ca_pem},
                                     {&options.crl, &criteria.crl_pem}}) {
    if (path->empty()) continue;
    absl::StatusOr<std::string> text = ReadFile(*path);
    if (!text.ok()) Fail(kSub, kOperationFailed, text.status().message());
    *target = *std::move(text);
  }
  absl::StatusOr<std::vector<std::string>> reasons = crypto::RefusalReasons(*pem, criteria);
  if (!reasons.ok()) Fail(kSub, kOperationFailed, reasons.status().message());
  if (reasons->empty()) {
    std::cout << "verdict:       ACCEPTED by a peer trusting "
              << (options.ca.empty() ? "any CA" : options.ca)
              << (options.crl.empty() ? "" : " with CRL " + options.crl) << "\n";
    return;
  }
  std::cout << "verdict:       REFUSED\n";
  for (const std::string& why : *reasons) std::cout << "  - " << why << "\n";
  throw CLI::RuntimeError(kOperationFailed);
}

}  // namespace

void AddPkiCommands(CLI::App& app) {
  CLI::App* pki = app.add_subcommand("pki", "Manage the federation's X.509 certificates");
  pki->require_subcommand(1);

  // Options live in shared_ptrs because CLI11 binds to them by reference and the
  // callbacks run after this function returns.
  auto init = std::make_shared<InitCaOptions>();
  CLI::App* init_cmd =
      pki->add_subcommand("init-ca", "Create the federation CA (DIR/ca.pem, DIR/ca.key)");
  init_cmd->add_option("--dir", init->dir, "PKI directory (created with mode 0700 if missing)")
      ->required();
  init_cmd->add_option("--federation", init->federation, "Federation name, e.g. demo")->required();
  init_cmd->add_option("--days", init->days, "Validity in days")->capture_default_str();
  init_cmd->callback([init] { RunInitCa(*init); });

  auto issue = std::make_shared<IssueOptions>();
  CLI::App* issue_cmd =
      pki->add_subcommand("issue", "Issue a site or coordinator certificate signed by the CA");
  issue_cmd->add_option("--dir", issue->dir, "PKI directory holding ca.pem and ca.key")->required();
  issue_cmd->add_option("--federation", issue->federation, "Federation name, e.g. demo")
      ->required();
  CLI::Option* site_option =
      issue_cmd->add_option("--site", issue->site, "Site id: client certificate OUT/ID.pem");
  issue_cmd->add_flag("--coordinator", issue->coordinator,
                      "Coordinator server+client certificate OUT/coordinator.pem");
  issue_cmd->add_option("--admin", issue->admin,
                        "Operator certificate for the Admin API (cohortctl status, pause, ...): "
                        "OUT/admin-NAME.pem");
  issue_cmd->add_option("--name", issue->names,
                        "Coordinator DNS name (repeatable; default localhost)");
  issue_cmd->add_option("--ip", issue->ips,
                        "Coordinator IP address (repeatable; default 127.0.0.1)");
  issue_cmd->add_option("--days", issue->days, "Validity in days")->capture_default_str();
  issue_cmd->add_option("--out", issue->out, "Output directory (default: --dir)");
  issue_cmd->callback([issue, site_option] {
    issue->site_given = site_option->count() > 0;
    RunIssue(*issue);
  });

  auto csr = std::make_shared<CsrOptions>();
  CLI::App* csr_cmd = pki->add_subcommand(
      "csr", "At a site: make a private key (kept here) and a certificate request DIR/ID.csr");
  csr_cmd->add_option("--dir", csr->identity.dir, "Directory for the key and the request "
                                                  "(created with mode 0700)")
      ->required();
  csr_cmd->add_option("--federation", csr->identity.federation, "Federation name, e.g. demo")
      ->required();
  CLI::Option* csr_site = csr_cmd->add_option("--site", csr->identity.site, "This site's id");
  csr_cmd->add_flag("--coordinator", csr->identity.coordinator,
                    "Request the coordinator's certificate instead (DIR/coordinator.csr)");
  csr_cmd->add_option("--name", csr->identity.names,
                      "Coordinator DNS name (repeatable; default localhost)");
  csr_cmd->add_option("--ip", csr->identity.ips,
                      "Coordinator IP address (repeatable; default 127.0.0.1)");
  csr_cmd->add_flag("--reuse-key", csr->reuse_key, "Request a certificate for the existing DIR/ID.key");
  csr_cmd->add_flag("--rotate", csr->rotate,
                    "New key in DIR/ID.next.key; the key in use is left alone");
  csr_cmd->callback([csr, csr_site] {
    csr->identity.site_given = csr_site->count() > 0;
    RunCsr(*csr);
  });

  auto sign = std::make_shared<SignOptions>();
  CLI::App* sign_cmd =
      pki->add_subcommand("sign", "At the CA: sign a certificate request for a site or the coordinator");
  sign_cmd->add_option("--dir", sign->issue.dir, "CA directory holding ca.pem and ca.key")->required();
  sign_cmd->add_option("--csr", sign->csr, "Certificate request (PEM) to sign")->required();
  sign_cmd->add_option("--federation", sign->issue.federation, "Federation name, e.g. demo")
      ->required();
  CLI::Option* sign_site = sign_cmd->add_option(
      "--site", sign->issue.site, "Site id the request must be for: writes OUT/ID.pem");
  sign_cmd->add_flag("--coordinator", sign->issue.coordinator,
                     "Sign as the coordinator's server+client certificate OUT/coordinator.pem");
  sign_cmd->add_option("--name", sign->issue.names,
                       "Coordinator DNS name (repeatable; default localhost)");
  sign_cmd->add_option("--ip", sign->issue.ips,
                       "Coordinator IP address (repeatable; default 127.0.0.1)");
  sign_cmd->add_option("--days", sign->issue.days, "Validity in days")->capture_default_str();
  sign_cmd->add_option("--out", sign->issue.out, "Output directory (default: --dir)");
  sign_cmd->callback([sign, sign_site] {
    sign->issue.site_given = sign_site->count() > 0;
    RunSign(*sign);
  });

  auto revoke = std::make_shared<RevokeOptions>();
  CLI::App* revoke_cmd = pki->add_subcommand(
      "revoke", "Revoke a certificate: add it to DIR/revoked.txt and re-sign DIR/crl.pem");
  revoke_cmd->add_option("--dir", revoke->dir, "CA directory holding ca.pem and ca.key")->required();
  revoke_cmd->add_option("--cert", revoke->cert, "Certificate (PEM) to revoke");
  revoke_cmd->add_option("--serial", revoke->serial, "Serial number (hex) to revoke");
  revoke_cmd->add_option("--reason", revoke->reason,
                         "RFC 5280 reason: " + absl::StrJoin(crypto::CrlReasonNames(), ", "))
      ->capture_default_str();
  revoke_cmd->add_option("--days", revoke->days, "Days until the CRL's next update")
      ->capture_default_str();
  revoke_cmd->callback([revoke] { RunRevoke(*revoke); });

  auto crl = std::make_shared<CrlOptions>();
  CLI::App* crl_cmd = pki->add_subcommand(
      "crl", "Re-sign DIR/crl.pem from DIR/revoked.txt (before its next update passes)");
  crl_cmd->add_option("--dir", crl->dir, "CA directory holding ca.pem and ca.key")->required();
  crl_cmd->add_option("--days", crl->days, "Days until the CRL's next update")
      ->capture_default_str();
  crl_cmd->callback([crl] { RunCrl(*crl); });

  auto inspect = std::make_shared<InspectOptions>();
  CLI::App* inspect_cmd = pki->add_subcommand(
      "inspect",
      "Summarize a PEM certificate (or request); with --ca/--crl/--federation, say whether "
      "and why a peer would refuse it (exit 1 if it would)");
  inspect_cmd->add_option("file", inspect->file, "Certificate or request file (PEM)")->required();
  inspect_cmd->add_option("--ca", inspect->ca, "Federation CA certificate the peer trusts");
  inspect_cmd->add_option("--crl", inspect->crl, "The federation's CRL (needs --ca)");
  inspect_cmd->add_option("--federation", inspect->federation,
                          "Federation the certificate must belong to");
  inspect_cmd->callback([inspect] { RunInspect(*inspect); });
}

}  // namespace cohort::tools
