#ifndef COHORT_COMMON_UTIL_SITE_ID_H_
#define COHORT_COMMON_UTIL_SITE_ID_H_

#include "absl/strings/string_view.h"

namespace cohort {

// Site and federation ids: [a-z0-9][a-z0-9._-]{0,62}. They appear in certificate URIs, file
// names, metrics labels and comma-separated lists, so nothing else is allowed.
bool IsValidSiteId(absl::string_view id);

}  // namespace cohort

#endif  // COHORT_COMMON_UTIL_SITE_ID_H_
