#ifndef COHORT_TESTS_SUPPORT_HTTP_GET_H_
#define COHORT_TESTS_SUPPORT_HTTP_GET_H_

#include <string>

namespace cohort::testing {

// An HTTP response as a test sees it; status 0 when the request failed (message in body).
struct HttpReply {
  int status = 0;
  std::string content_type;
  std::string body;
};

// Sends one HTTP/1.0 request (`method` `path`) to 127.0.0.1:`port` over a plain socket and
// reads the whole reply (5 s receive timeout).
HttpReply HttpRequest(int port, const std::string& path, const std::string& method = "GET");

}  // namespace cohort::testing

#endif  // COHORT_TESTS_SUPPORT_HTTP_GET_H_
