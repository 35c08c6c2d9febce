// Unit tests for common/tls/peer_identity: which site a verified client certificate
// speaks for.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "common/tls/peer_identity.h"

namespace cohort::tls {
namespace {

constexpr char kFederation[] = "demo";

void RequireUnauthenticated(const absl::StatusOr<std::string>& site,
                            const std::vector<std::string>& fragments = {}) {
  INFO("result: " << (site.ok() ? "OK site '" + *site + "'" : site.status().ToString()));
  REQUIRE_FALSE(site.ok());
  CHECK(site.status().code() == absl::StatusCode::kUnauthenticated);
  for (const std::string& fragment : fragments) {
    INFO("expected fragment: " << fragment);
    CHECK(absl::StrContains(site.status().message(), fragment));
  }
}

std::string ResolveOrDie(const std::vector<std::string>& uris, const std::string& cn) {
  absl::StatusOr<std::string> site = ResolveSiteId(kFederation, uris, cn);
  INFO(site.status().ToString());
  REQUIRE(site.ok());
  return *site;
}

TEST_CASE("ResolveSiteId prefers the federation's SPIFFE URI over the CN", "[tls]") {
  CHECK(ResolveOrDie({"spiffe://demo/site/hospital-a"}, "something-else") == "hospital-a");
  CHECK(ResolveOrDie({"spiffe://demo/site/hospital-a"}, "") == "hospital-a");
}

TEST_CASE("ResolveSiteId refuses a SPIFFE URI of another federation without using the CN",
          "[tls]") {
  absl::StatusOr<std::string> site =
      ResolveSiteId(kFederation, {"spiffe://other/site/hospital-a"}, "hospital-a");
  RequireUnauthenticated(site, {"spiffe://other/site/hospital-a", "demo"});
}

TEST_CASE("ResolveSiteId refuses a federation name that only shares a prefix", "[tls]") {
  RequireUnauthenticated(ResolveSiteId(kFederation, {"spiffe://demo2/site/a"}, "a"));
  RequireUnauthenticated(ResolveSiteId(kFederation, {"spiffe://dem/site/a"}, "a"));
}

TEST_CASE("ResolveSiteId refuses malformed SPIFFE URIs of the federation", "[tls]") {
  const std::string uri = GENERATE(as<std::string>{},
                                   "spiffe://demo/site/hospital-a/extra",  // extra segment
                                   "spiffe://demo/site/",                  // empty id
                                   "spiffe://demo/site",                   // no id at all
                                   "spiffe://demo/",                       // no path
                                   "spiffe://demo",                        // trust domain only
                                   "spiffe://demo/user/hospital-a",        // not a site
                                   "spiffe://demo/site/a/");               // trailing slash
  INFO("uri " << uri);
  RequireUnauthenticated(ResolveSiteId(kFederation, {uri}, "hospital-a"), {uri});
}

TEST_CASE("ResolveSiteId refuses a certificate naming two different sites", "[tls]") {
  RequireUnauthenticated(
      ResolveSiteId(kFederation, {"spiffe://demo/site/a", "spiffe://demo/site/b"}, "a"),
      {"more than one site"});
}

TEST_CASE("ResolveSiteId accepts the same site URI listed twice", "[tls]") {
  CHECK(ResolveOrDie({"spiffe://demo/site/a", "spiffe://demo/site/a"}, "x") == "a");
}

TEST_CASE("ResolveSiteId refuses a valid site URI next to a foreign SPIFFE URI", "[tls]") {
  // Order must not matter: a bad SPIFFE URI anywhere is refused.
  RequireUnauthenticated(
      ResolveSiteId(kFederation, {"spiffe://demo/site/a", "spiffe://other/site/a"}, "a"));
  RequireUnauthenticated(
      ResolveSiteId(kFederation, {"spiffe://other/site/a", "spiffe://demo/site/a"}, "a"));
}

TEST_CASE("ResolveSiteId falls back to the CN without a SPIFFE URI", "[tls]") {
  CHECK(ResolveOrDie({}, "hospital-b") == "hospital-b");
}

TEST_CASE("ResolveSiteId refuses a certificate with neither URI nor CN", "[tls]") {
  RequireUnauthenticated(ResolveSiteId(kFederation, {}, ""), {"neither"});
  // Non-SPIFFE URIs do not count as an identity either.
  RequireUnauthenticated(ResolveSiteId(kFederation, {"https://example.org/a"}, ""));
}

TEST_CASE("ResolveSiteId ignores non-SPIFFE URIs", "[tls]") {
  const std::vector<std::string> others = {"https://demo/site/evil", "urn:demo:site:evil",
                                           "http://spiffe://demo/site/evil",
                                           "mailto:a@example.org"};
  CHECK(ResolveOrDie(others, "hospital-c") == "hospital-c");
  std::vector<std::string> with_spiffe = others;
  with_spiffe.push_back("spiffe://demo/site/hospital-a");
  CHECK(ResolveOrDie(with_spiffe, "hospital-c") == "hospital-a");
}

}  // namespace
}  // namespace cohort::tls
