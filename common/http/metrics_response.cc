#include "common/http/metrics_response.h"

#include <prometheus/collectable.h>
#include <prometheus/text_serializer.h>

#include <sstream>

namespace cohort::http {

HttpResponse MetricsResponse(prometheus::Collectable& collectable) {
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, collectable.Collect());
  return {200, "text/plain; version=0.0.4; charset=utf-8", text.str()};
}

}  // namespace cohort::http
