// `cohortctl pki`: create the federation CA, issue site and coordinator certificates,
// and inspect certificates.
//
// Layout of a PKI directory (DIR):
//   ca.pem, ca.key                   the federation CA (written by init-ca)
//   coordinator.pem, coordinator.key the coordinator's server+client certificate
//   <site-id>.pem, <site-id>.key     one client certificate per site
// Keys are written 0600 and certificates 0644, each atomically.
#include <arpa/inet.h>

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
#include "absl/strings/str_join.h"
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
  std::vector<std::string> names;
  std::vector<std::string> ips;
  int days = 825;
  std::string out;
};

// Checks the arguments of `issue` and turns them into a certificate spec (without the
// validity window). Exits with kBadArguments on any problem.
CertificateSpec BuildIssueSpec(const IssueOptions& options) {
  constexpr absl::string_view kSub = "issue";
  if (!IsValidFederationName(options.federation)) {
    Fail(kSub, kBadArguments,
         absl::StrCat("invalid federation name '", options.federation,
                      "': use 1-60 characters of [a-z0-9._-], starting with a letter or digit"));
  }
  if (options.dir.empty()) Fail(kSub, kBadArguments, "--dir must not be empty");
  const bool is_site = options.site_given;
  if (is_site == options.coordinator) {
    Fail(kSub, kBadArguments, "give exactly one of --site ID or --coordinator");
  }
  if (options.days < 1 || options.days > kMaxDays) {
    Fail(kSub, kBadArguments, absl::StrCat("--days must be between 1 and ", kMaxDays));
  }

  CertificateSpec spec;
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
  CertificateSpec spec = BuildIssueSpec(options);

  const fs::path dir(options.dir);
  PemIdentity ca;
  for (const auto& [file, target] :
       {std::pair<const char*, std::string*>{kCaCertFile, &ca.cert_pem},
        {kCaKeyFile, &ca.key_pem}}) {
    absl::StatusOr<std::string> contents = ReadFile((dir / file).string());
    if (!contents.ok()) {
      Fail(kSub, kOperationFailed,
           absl::StrCat(contents.status().message(), " (run `cohortctl pki init-ca --dir ",
                        options.dir, "` first?)"));
    }
    *target = *std::move(contents);
  }
  absl::StatusOr<CertificateInfo> ca_info = crypto::InspectCertificate(ca.cert_pem);
  if (!ca_info.ok()) {
    Fail(kSub, kOperationFailed,
         absl::StrCat((dir / kCaCertFile).string(), ": ", ca_info.status().message()));
  }
  if (ca_info->common_name != CaCommonName(options.federation)) {
    Warn(kSub, absl::StrCat("the CA in ", options.dir, " is \"", ca_info->common_name, "\", not \"",
                            CaCommonName(options.federation), "\"; is --federation right?"));
  }

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
  const std::string base = options.coordinator ? std::string(kCoordinatorName) : options.site;
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
            << (options.coordinator ? "coordinator" : "site")
            << " certificate CN=" << spec.common_name << " [" << absl::StrJoin(sans, ", ")
            << "], valid until " << FormatUtc(spec.not_after) << "\n"
            << "  certificate: " << cert_path.string() << "\n"
            << "  private key: " << key_path.string() << "\n";
}

// ---- inspect ---------------------------------------------------------------------------

void RunInspect(const std::string& file) {
  constexpr absl::string_view kSub = "inspect";
  absl::StatusOr<std::string> pem = ReadFile(file);
  if (!pem.ok()) Fail(kSub, kOperationFailed, pem.status().message());
  absl::StatusOr<CertificateInfo> info = crypto::InspectCertificate(*pem);
  if (!info.ok()) Fail(kSub, kOperationFailed, absl::StrCat(file, ": ", info.status().message()));

  std::vector<std::string> usages;
  if (info->server_auth) usages.push_back("serverAuth");
  if (info->client_auth) usages.push_back("clientAuth");
  const auto list = [](const std::vector<std::string>& v) {
    return v.empty() ? std::string("-") : absl::StrJoin(v, ", ");
  };

  const absl::Time now = absl::Now();
  std::string status = "valid";
  if (now < info->not_before) {
    status = absl::StrCat("NOT YET VALID (starts in ", HumanDuration(info->not_before - now), ")");
  } else if (now > info->not_after) {
    status = absl::StrCat("EXPIRED (", HumanDuration(now - info->not_after), " ago)");
  }

  std::cout << "file:          " << file << "\n"
            << "subject:       CN=" << info->common_name << "\n"
            << "issuer:        CN=" << info->issuer_common_name << "\n"
            << "serial:        " << info->serial_hex << "\n"
            << "not before:    " << FormatUtc(info->not_before) << "\n"
            << "not after:     " << FormatUtc(info->not_after) << "\n"
            << "status:        " << status << "\n"
            << "CA:            " << (info->is_ca ? "yes" : "no") << "\n"
            << "ext key usage: " << list(usages) << "\n"
            << "DNS names:     " << list(info->dns_names) << "\n"
            << "IP addresses:  " << list(info->ip_addresses) << "\n"
            << "URIs:          " << list(info->uris) << "\n"
            << "SHA-256:       " << info->sha256_fingerprint_hex << "\n";
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

  auto inspect_file = std::make_shared<std::string>();
  CLI::App* inspect_cmd = pki->add_subcommand("inspect", "Summarize a PEM certificate");
  inspect_cmd->add_option("file", *inspect_file, "Certificate file (PEM)")->required();
  inspect_cmd->callback([inspect_file] { RunInspect(*inspect_file); });
}

}  // namespace cohort::tools
