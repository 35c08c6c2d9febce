#include "tests/support/http_get.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace cohort::testing {

HttpReply HttpRequest(int port, const std::string& path, const std::string& method) {
  HttpReply reply;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return {0, "", "socket() failed"};
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return {0, "", absl::StrCat("connect to 127.0.0.1:", port, " failed: ", strerror(errno))};
  }
  const std::string request =
      absl::StrCat(method, " ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return {0, "", "send failed"};
  }
  std::string raw;
  char buffer[8192];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) raw.append(buffer, n);
  close(fd);
  const size_t end_of_header = raw.find("\r\n\r\n");
  if (end_of_header == std::string::npos) return {0, "", absl::StrCat("no HTTP reply: ", raw)};
  std::vector<std::string> lines = absl::StrSplit(raw.substr(0, end_of_header), "\r\n");
  std::vector<std::string> status_line = absl::StrSplit(lines[0], ' ');
  if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &reply.status)) {
    return {0, "", absl::StrCat("bad status line: ", lines[0])};
  }
  for (const std::string& line : lines) {
    if (absl::StartsWithIgnoreCase(line, "content-type:")) {
      reply.content_type = std::string(absl::StripAsciiWhitespace(line.substr(13)));
    }
  }
  reply.body = raw.substr(end_of_header + 4);
  return reply;
}

}  // namespace cohort::testing
