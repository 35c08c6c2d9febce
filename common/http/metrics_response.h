#ifndef COHORT_COMMON_HTTP_METRICS_RESPONSE_H_
#define COHORT_COMMON_HTTP_METRICS_RESPONSE_H_

#include "common/http/http_server.h"

namespace prometheus {
class Collectable;
}

namespace cohort::http {

// The Prometheus text exposition (format 0.0.4) of everything `collectable` holds, as an
// HTTP response for /metrics.
HttpResponse MetricsResponse(prometheus::Collectable& collectable);

}  // namespace cohort::http

#endif  // COHORT_COMMON_HTTP_METRICS_RESPONSE_H_
