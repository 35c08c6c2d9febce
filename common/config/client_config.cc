#include "common/config/client_config.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "common/config/config_common.h"
#include "common/config/yaml_reader.h"

namespace cohort::config {

absl::StatusOr<ClientConfig> ParseClientConfig(const std::string& yaml_text,
                                               const std::string& source_name,
                                               const std::string& base_dir) {
  YAML::Node root;
  if (absl::Status status = ParseYamlRoot(yaml_text, source_name, &root); !status.ok()) {
    return status;
  }
  ConfigErrors errors(source_name);
  MapReader top(root, "", &errors, base_dir);
  ClientConfig config;
  config.source_file = source_name;
  config.site = ReadId(top, "site");
  config.coordinator = top.String("coordinator");
  CheckHostPort(top, "coordinator", config.coordinator, /*allow_port_zero=*/false);
  config.server_name = top.String("server_name", "");
  config.tls = ReadTls(top.Map("tls"), /*allow_crl=*/false);

  if (!top.Has("data")) top.Fail("data", "required key is missing");
  config.data = ReadData(top.Map("data"), DataRole::kSite);

  if (top.Has("privacy")) {
    MapReader privacy = top.Map("privacy");
    config.privacy.enabled = true;
    config.privacy.max_epsilon =
        privacy.Double("max_epsilon", std::nullopt, 0.0, 1000.0, /*min_exclusive=*/true);
    config.privacy.delta = privacy.Double("delta", 1e-5, 0.0, 0.1, /*min_exclusive=*/true);
    config.privacy.min_noise_multiplier =
        privacy.Double("min_noise_multiplier", std::nullopt, 0.0, 1000.0, /*min_exclusive=*/true);
    config.privacy.max_grad_norm =
        privacy.Double("max_grad_norm", std::nullopt, 0.0, 1e6, /*min_exclusive=*/true);
    config.privacy.ledger = privacy.Path("ledger", /*required=*/true, /*must_exist=*/false);
    privacy.Finish();
  } else {
    top.Map("privacy");  // marks the key as known
  }

  MapReader reconnect = top.Map("reconnect");
  config.reconnect.initial_backoff =
      reconnect.Duration("initial_backoff", absl::Milliseconds(500));
  config.reconnect.max_backoff = reconnect.Duration("max_backoff", absl::Seconds(30));
  if (config.reconnect.max_backoff < config.reconnect.initial_backoff) {
    reconnect.Fail("max_backoff", "must not be shorter than initial_backoff");
  }
  reconnect.Finish();

  config.logging = ReadLogging(top.Map("logging"));
  config.http = ReadHttp(top.Map("http"));
  config.keepalive = ReadKeepalive(top.Map("keepalive"));
  config.threads = top.Int("threads", 1, 1, 256);
  // The site's own copy of a TorchScript model (federations with model: {torchscript: ...}).
  if (top.Has("model")) {
    MapReader model = top.Map("model");
    config.torchscript_model = model.Path("torchscript", /*required=*/true, /*must_exist=*/true);
    model.Finish();
  } else {
    top.Map("model");  // marks the key as known
  }
  config.mode = top.Enum("mode", "production", {"production", "simulation"});
  if (top.Has("seed")) {
    config.has_seed = true;
    config.seed = static_cast<uint64_t>(
        top.Int("seed", 0, 0, std::numeric_limits<int64_t>::max()));
    if (config.mode != "simulation") {
      top.Fail("seed", "is only allowed with mode: simulation (a known seed makes the DP noise "
                       "predictable; production noise is keyed from the OS)");
    }
  } else {
    top.Int("seed", 0, 0, 0);  // marks the key as known
  }
  config.exit_when_done = top.Bool("exit_when_done", true);
  top.Finish();
  if (!errors.ok()) return errors.ToStatus();
  return config;
}

absl::StatusOr<ClientConfig> LoadClientConfig(const std::string& path) {
  std::string base_dir;
  absl::StatusOr<std::string> text = ReadConfigFile(path, &base_dir);
  if (!text.ok()) return text.status();
  return ParseClientConfig(*text, path, base_dir);
}

}  // namespace cohort::config
