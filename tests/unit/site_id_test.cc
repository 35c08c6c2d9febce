#include "common/util/site_id.h"

#include <string>

#include <catch2/catch.hpp>

namespace cohort {

TEST_CASE("IsValidSiteId accepts lower-case letters, digits and . _ - up to 63 characters only", "[util]") {
  CHECK(IsValidSiteId("hospital-a"));
  CHECK(IsValidSiteId("0"));
  CHECK(IsValidSiteId("site_1.eu-west"));
  CHECK(IsValidSiteId(std::string(63, 'a')));
  CHECK_FALSE(IsValidSiteId(""));
  CHECK_FALSE(IsValidSiteId(std::string(64, 'a')));
  CHECK_FALSE(IsValidSiteId("-site"));
  CHECK_FALSE(IsValidSiteId(".hidden"));
  CHECK_FALSE(IsValidSiteId("Hospital"));
  CHECK_FALSE(IsValidSiteId("hospital a"));
  CHECK_FALSE(IsValidSiteId("a/b"));
  CHECK_FALSE(IsValidSiteId("site,x"));
}

}  // namespace cohort
