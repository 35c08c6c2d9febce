#ifndef COHORT_COMMON_HTTP_HTTP_SERVER_H_
#define COHORT_COMMON_HTTP_HTTP_SERVER_H_

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace cohort::http {

// What a route answers.
struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// A route's handler. Called on one of the server's worker threads, so it must be
// thread-safe; it gets the request's query string (without '?', possibly empty).
using HttpHandler = std::function<HttpResponse(const std::string& query)>;

// A small read-only HTTP/1.1 server for the daemons' operational endpoints: /metrics,
// /healthz, /readyz and the status page. GET and HEAD only (anything else: 405), exact
// paths only (anything else: 404), one request per connection (Connection: close). No TLS:
// bind it to loopback or a cluster-internal address; it serves nothing that changes state.
//
// Written on plain sockets rather than civetweb: civetweb creates its threads with a fixed
// small stack, which glibc refuses (EINVAL) in processes whose static TLS is large, such as
// the client with LibTorch loaded.
//
// Bounded: a request header may be at most 8 KiB and must arrive within 5 s; at most 64
// connections wait for the 4 worker threads, further ones are closed at once.
class HttpServer {
 public:
  // Starts serving `routes` (exact path -> handler) on `listen` ("host:port" with an IPv4
  // address, "localhost" or "[v6]"; port 0 picks a free port). InvalidArgument for a
  // malformed address, Unavailable if it cannot bind.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen, std::map<std::string, HttpHandler> routes);
  ~HttpServer();  // stops accepting, finishes the requests in progress, joins the threads
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port.
  int port() const { return port_; }

 private:
  HttpServer(std::map<std::string, HttpHandler> routes, int listen_fd, int port);
  void AcceptLoop();
  void WorkerLoop();
  void Serve(int fd) const;

  const std::map<std::string, HttpHandler> routes_;
  const int listen_fd_;
  const int port_;
  int wake_fds_[2] = {-1, -1};  // a pipe that wakes the accept loop at shutdown

  absl::Mutex mu_;
  std::deque<int> pending_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread acceptor_;
  std::vector<std::thread> workers_;
};

}  // namespace cohort::http

#endif  // COHORT_COMMON_HTTP_HTTP_SERVER_H_
