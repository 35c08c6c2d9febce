#ifndef COHORT_COMMON_CONFIG_CONFIG_COMMON_H_
#define COHORT_COMMON_CONFIG_CONFIG_COMMON_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/config/coordinator_config.h"
#include "common/config/yaml_reader.h"

namespace cohort::config {

// Reads a required id (site or federation name) and checks its form.
std::string ReadId(MapReader& reader, const std::string& key);
// Reads the `tls:` section (ca, cert, key; all must exist; and, if `allow_crl`, the optional
// crl). The key must not be accessible to group or others.
TlsFiles ReadTls(MapReader tls, bool allow_crl);
// Reads the optional `logging:` section.
LoggingConfig ReadLogging(MapReader logging);
// Reads the optional `http:` section (listen: host:port; absent: no HTTP port).
HttpConfig ReadHttp(MapReader http);
// Reads the optional `keepalive:` section (time at least 10 s, at most 2 h; timeout 1 s to
// 10 min).
KeepaliveConfig ReadKeepalive(MapReader keepalive);
// Checks "host:port" (port 0..65535; 0 means pick a free port, only useful for listening).
void CheckHostPort(MapReader& reader, const std::string& key, const std::string& value,
                   bool allow_port_zero);
// Where a `data:` section is read: a site's data (train and held-out split) or the
// coordinator's central test file (evaluation.server.data: the whole file is the test set;
// test_images, test_labels, test_fraction and split_seed are refused).
enum class DataRole { kSite, kServerEvaluation };
// Reads a `data:` section (format csv or idx).
DataConfig ReadData(MapReader data, DataRole role);
// Reads a file and returns its text plus the directory relative paths resolve against.
absl::StatusOr<std::string> ReadConfigFile(const std::string& path, std::string* base_dir);

}  // namespace cohort::config

#endif  // COHORT_COMMON_CONFIG_CONFIG_COMMON_H_
