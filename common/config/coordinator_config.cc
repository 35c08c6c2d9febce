#include "common/config/coordinator_config.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/config/config_common.h"
#include "common/config/yaml_reader.h"
#include "common/util/site_id.h"
#include "common/util/files.h"

namespace cohort::config {
namespace {

// Bounds of the built-in models.
constexpr int64_t kMaxWidth = 1 << 24;
constexpr int64_t kMaxClasses = 1 << 20;
constexpr int64_t kMaxImageSide = 1 << 16;
constexpr int64_t kMaxChannels = 1 << 16;
constexpr size_t kMaxConvBlocks = 8;
// ModelParameterCount's answer for anything beyond the limit.
constexpr int64_t kOver = kMaxModelParameters + 1;

}  // namespace

int64_t CnnFlatFeatures(const ModelSpec& spec) {
  if (spec.input_shape.size() != 3 || spec.channels.empty()) return 0;
  int64_t height = spec.input_shape[1];
  int64_t width = spec.input_shape[2];
  for (size_t i = 0; i < spec.channels.size() && height > 0 && width > 0; ++i) {
    height /= 2;  // 3x3 convolutions with padding 1 keep the size; 2x2 pooling floors
    width /= 2;
  }
  if (height <= 0 || width <= 0) return 0;
  return spec.channels.back() * height * width;
}

int64_t ModelParameterCount(const ModelSpec& spec) {
  // Every factor below is at most 2^24, so each product fits in int64 before the check.
  int64_t total = 0;
  auto add = [&total](int64_t weights, int64_t biases) {
    total = std::min(kOver, total + weights + biases);
  };
  int64_t in = spec.inputs;
  if (spec.arch == "cnn") {
    int64_t channels_in = spec.input_shape.empty() ? 0 : spec.input_shape[0];
    for (int64_t out : spec.channels) {
      add(std::min(kOver, out * channels_in) * 9, out);
      channels_in = out;
    }
    in = std::min(kOver, CnnFlatFeatures(spec));
  }
  for (int64_t width : spec.hidden) {
    add(std::min(kOver, in * width), width);
    in = width;
  }
  add(std::min(kOver, in * spec.classes), spec.classes);
  return total;
}

absl::Status CheckModelSpec(const ModelSpec& spec) {
  auto bad = [](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("model spec: ", why));
  };
  auto in_range = [](const std::vector<int64_t>& v, int64_t max) {
    return std::all_of(v.begin(), v.end(), [max](int64_t x) { return x >= 1 && x <= max; });
  };
  // A TorchScript module's shape is checked against its parameter layout instead (each site
  // runs its own copy of the file; the coordinator compares fingerprints at join time).
  if (spec.arch == "torchscript") return absl::OkStatus();
  if (spec.arch != "logreg" && spec.arch != "mlp" && spec.arch != "cnn") {
    return bad(absl::StrCat("unknown arch '", spec.arch, "'"));
  }
  if (spec.classes < 2 || spec.classes > kMaxClasses) {
    return bad(absl::StrCat("classes ", spec.classes, " is not in 2..", kMaxClasses));
  }
  if (!in_range(spec.hidden, kMaxWidth)) return bad("a hidden layer size is out of range");
  if (spec.arch == "logreg" && !spec.hidden.empty()) return bad("logreg has no hidden layers");
  if (spec.arch == "mlp" && spec.hidden.empty()) return bad("mlp needs a hidden layer");
  if (spec.arch == "cnn") {
    if (spec.input_shape.size() != 3 || !in_range(spec.input_shape, kMaxImageSide)) {
      return bad("cnn needs input_shape [channels, height, width] with sizes in range");
    }
    if (spec.channels.empty() || spec.channels.size() > kMaxConvBlocks ||
        !in_range(spec.channels, kMaxChannels)) {
      return bad(absl::StrCat("cnn needs 1 to ", kMaxConvBlocks, " channel counts in range"));
    }
    if (spec.inputs != spec.input_shape[0] * spec.input_shape[1] * spec.input_shape[2]) {
      return bad("cnn inputs must be the product of input_shape");
    }
    if (CnnFlatFeatures(spec) == 0) return bad("the images are too small for the cnn's blocks");
  } else if (!spec.input_shape.empty() || !spec.channels.empty()) {
    return bad("input_shape and channels are only for cnn");
  }
  if (spec.inputs < 1 || spec.inputs > kMaxWidth) {
    return bad(absl::StrCat("inputs ", spec.inputs, " is not in 1..", kMaxWidth));
  }
  if (ModelParameterCount(spec) > kMaxModelParameters) {
    return bad(absl::StrCat("more than ", kMaxModelParameters, " parameters"));
  }
  return absl::OkStatus();
}

std::string ReadId(MapReader& reader, const std::string& key) {
  std::string id = reader.String(key);
  if (!id.empty() && !IsValidSiteId(id)) {
    reader.Fail(key, "use lower-case letters, digits, '.', '_' or '-' (max 63)");
  }
  return id;
}

TlsFiles ReadTls(MapReader tls, bool allow_crl) {
  TlsFiles files;
  files.ca = tls.Path("ca", true, true);
  files.cert = tls.Path("cert", true, true);
  files.key = tls.Path("key", true, true);
  if (allow_crl) files.crl = tls.Path("crl", /*required=*/false, /*must_exist=*/true);
  // Refuse a private key that other local users could read. As in PostgreSQL, a key owned by
  // root may be readable by its group (Debian's ssl-cert group; Kubernetes Secrets mounted
  // with fsGroup are root-owned and group-readable); any other key must be 0600 or stricter.
  struct stat st = {};
  if (!files.key.empty() && stat(files.key.c_str(), &st) == 0) {
    const bool root_owned = st.st_uid == 0;
    const mode_t forbidden = root_owned ? 037 : 077;
    if ((st.st_mode & forbidden) != 0) {
      tls.Fail("key", absl::StrFormat("permissions %04o are too open; chmod 600 '%s'%s",
                                      st.st_mode & 07777, files.key,
                                      root_owned ? " (a root-owned key may also be 0640)" : ""));
    }
  }
  tls.Finish();
  return files;
}

LoggingConfig ReadLogging(MapReader logging) {
  LoggingConfig out;
  out.json = logging.Bool("json", false);
  out.level = logging.Enum("level", "info", {"trace", "debug", "info", "warn", "error"});
  logging.Finish();
  return out;
}

HttpConfig ReadHttp(MapReader http) {
  HttpConfig out;
  if (http.Has("listen")) {
    out.listen = http.String("listen");
    CheckHostPort(http, "listen", out.listen, /*allow_port_zero=*/true);
  } else {
    http.String("listen", "");  // marks the key as known
  }
  http.Finish();
  return out;
}

KeepaliveConfig ReadKeepalive(MapReader keepalive) {
  KeepaliveConfig out;
  out.time = keepalive.Duration("time", absl::Seconds(30));
  out.timeout = keepalive.Duration("timeout", absl::Seconds(20));
  // The coordinator answers pings more frequent than every 5 s with GOAWAY (too_many_pings);
  // 10 s leaves a margin.
  if (out.time < absl::Seconds(10) || out.time > absl::Hours(2)) {
    keepalive.Fail("time", "must be between 10s and 2h");
  }
  if (out.timeout < absl::Seconds(1) || out.timeout > absl::Minutes(10)) {
    keepalive.Fail("timeout", "must be between 1s and 10m");
  }
  keepalive.Finish();
  return out;
}

DataConfig ReadData(MapReader data, DataRole role) {
  DataConfig config;
  const bool site = role == DataRole::kSite;
  config.format = data.Enum("format", "csv", {"csv", "idx"});
  // Keys of the other format (or role) are refused by name rather than ignored.
  auto refuse = [&data](const std::string& key, const std::string& why) {
    if (data.Has(key)) data.Fail(key, why);
    data.Path(key, /*required=*/false, /*must_exist=*/false);  // marks the key as known
  };
  if (config.format == "idx") {
    for (const char* key : {"path", "label"}) {
      refuse(key, "only for format: csv (format: idx reads images and labels)");
    }
    config.images = data.Path("images", /*required=*/true, /*must_exist=*/true);
    config.labels = data.Path("labels", /*required=*/true, /*must_exist=*/true);
    if (site) {
      config.test_images = data.Path("test_images", /*required=*/false, /*must_exist=*/true);
      config.test_labels = data.Path("test_labels", /*required=*/false, /*must_exist=*/true);
      if (data.Has("test_images") != data.Has("test_labels")) {
        data.Fail(data.Has("test_images") ? "test_labels" : "test_images",
                  "test_images and test_labels go together (or leave both out and split by "
                  "test_fraction)");
      }
      if (data.Has("test_images") && data.Has("test_fraction")) {
        data.Fail("test_fraction", "not with test_images: the held-out set is those files");
      }
    } else {
      for (const char* key : {"test_images", "test_labels"}) {
        refuse(key, "not for server-side evaluation: images and labels are the test set");
      }
    }
    config.normalize = data.Bool("normalize", false);
  } else {
    config.path = data.Path("path", /*required=*/true, /*must_exist=*/true);
    config.label = data.String("label");
    for (const char* key : {"images", "labels", "test_images", "test_labels"}) {
      refuse(key, "only for format: idx (format: csv reads path and label)");
    }
    if (data.Has("normalize")) {
      data.Fail("normalize", "only for format: idx (a csv table is always standardized with "
                             "its own statistics)");
    }
    data.Bool("normalize", false);  // marks the key as known
  }
  if (site) {
    config.test_fraction = data.Double("test_fraction", 0.2, 0.0, 0.9, /*min_exclusive=*/true);
    config.split_seed = static_cast<uint64_t>(
        data.Int("split_seed", 1, 0, std::numeric_limits<int64_t>::max()));
  } else {
    const char* why = "not for server-side evaluation: the whole file is the test set";
    if (data.Has("test_fraction")) data.Fail("test_fraction", why);
    if (data.Has("split_seed")) data.Fail("split_seed", why);
    data.Double("test_fraction", 0.2, 0.0, 1.0);  // marks the keys as known
    data.Int("split_seed", 1, 0, std::numeric_limits<int64_t>::max());
  }
  data.Finish();
  return config;
}

void CheckHostPort(MapReader& reader, const std::string& key, const std::string& value,
                   bool allow_port_zero) {
  if (value.empty()) return;  // Missing value was reported already.
  size_t colon = value.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(value.substr(colon + 1), &port) || port > 65535 ||
      (port == 0 && !allow_port_zero)) {
    reader.Fail(key, absl::StrCat("expected host:port with a port from ",
                                  allow_port_zero ? 0 : 1, " to 65535 (got '", value, "')"));
  }
}

absl::StatusOr<std::string> ReadConfigFile(const std::string& path, std::string* base_dir) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) {
    return absl::Status(text.status().code(),
                        absl::StrCat("cannot read config: ", text.status().message()));
  }
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  *base_dir = parent.empty() ? "." : parent.string();
  return text;
}

namespace {

ModelSpec ReadModel(MapReader model) {
  ModelSpec spec;
  if (model.Has("torchscript")) {
    spec.arch = "torchscript";
    spec.torchscript = model.Path("torchscript", /*required=*/true, /*must_exist=*/true);
    bool other_keys = false;
    for (const char* key : {"arch", "inputs", "hidden", "classes", "input_shape", "channels"}) {
      if (!model.Has(key)) continue;
      other_keys = true;
      model.Fail(key, "not with torchscript: the module defines its own architecture");
    }
    if (!other_keys) model.Finish();
    return spec;
  }
  spec.arch = model.Enum("arch", std::nullopt, {"logreg", "mlp", "cnn"});
  if (spec.arch == "cnn") {
    if (model.Has("inputs")) {
      model.Fail("inputs", "cnn takes input_shape: [channels, height, width] instead");
    }
    model.Int("inputs", 0, 0, 0);  // marks the key as known
    spec.input_shape = model.IntList("input_shape", 1, kMaxImageSide);
    spec.channels = model.IntList("channels", 1, kMaxChannels);
    if (!model.Has("input_shape")) {
      model.Fail("input_shape", "required key is missing (cnn: [channels, height, width], "
                                "e.g. [1, 28, 28])");
    } else if (spec.input_shape.size() != 3) {
      model.Fail("input_shape", absl::StrCat("needs 3 entries [channels, height, width], got ",
                                             spec.input_shape.size()));
    }
    if (!model.Has("channels")) {
      model.Fail("channels", "required key is missing (cnn: output channels of each "
                             "convolution block, e.g. [16, 32])");
    } else if (spec.channels.empty() || spec.channels.size() > kMaxConvBlocks) {
      model.Fail("channels", absl::StrCat("list 1 to ", kMaxConvBlocks, " convolution blocks"));
    }
    if (spec.input_shape.size() == 3 && !spec.channels.empty() &&
        spec.channels.size() <= kMaxConvBlocks) {
      spec.inputs = spec.input_shape[0] * spec.input_shape[1] * spec.input_shape[2];
      if (spec.inputs > kMaxWidth) {
        model.Fail("input_shape", absl::StrCat("has ", spec.inputs, " values per example; at "
                                               "most ", kMaxWidth));
      } else if (CnnFlatFeatures(spec) == 0) {
        model.Fail("channels", absl::StrCat(
            spec.channels.size(), " blocks halve the image ", spec.channels.size(),
            " times: input_shape needs a height and width of at least ",
            int64_t{1} << spec.channels.size()));
      }
    }
  } else {
    spec.inputs = model.Int("inputs", std::nullopt, 1, kMaxWidth);
    for (const char* key : {"input_shape", "channels"}) {
      if (model.Has(key)) model.Fail(key, "only for arch: cnn");
      model.IntList(key, 0, 0);  // marks the key as known
    }
  }
  spec.hidden = model.IntList("hidden", 1, kMaxWidth);
  spec.classes = model.Int("classes", std::nullopt, 2, kMaxClasses);
  if (spec.arch == "logreg" && !spec.hidden.empty()) {
    model.Fail("hidden", "logreg has no hidden layers; remove 'hidden' or use arch: mlp");
  }
  if (spec.arch == "mlp" && spec.hidden.empty() && model.Has("arch")) {
    model.Fail("hidden", "mlp needs at least one hidden layer size, e.g. hidden: [32]");
  }
  if (spec.inputs > 0 && ModelParameterCount(spec) > kMaxModelParameters) {
    model.Fail("arch", absl::StrCat("the model has more than ", kMaxModelParameters,
                                    " parameters (1 GiB of float32); make it smaller"));
  }
  model.Finish();
  return spec;
}

// aggregation.strategy and the hyperparameters of the chosen strategy. A hyperparameter that
// the strategy does not use is refused rather than ignored: an operator who sets `beta1`
// under fedavg has misunderstood something, and silence would hide it.
void ReadStrategy(MapReader& aggregation, AggregationConfig* out) {
  out->strategy = aggregation.Enum(
      "strategy", "fedavg",
      {"fedavg", "fedavgm", "fedadagrad", "fedadam", "fedyogi", "coordinate_median",
       "trimmed_mean"});
  const std::string& strategy = out->strategy;
  const bool adaptive = IsAdaptiveStrategy(strategy);
  const double lr_default = adaptive ? 0.01 : 1.0;
  out->server_learning_rate = aggregation.Double("server_learning_rate", lr_default, 0.0, 1e6,
                                                 /*min_exclusive=*/true);
  // Each key with the strategies it applies to.
  struct Hyperparameter {
    const char* key;
    double* value;
    double fallback, min, max;
    bool min_exclusive, max_exclusive;
    bool applies;
    const char* used_by;
  };
  const Hyperparameter keys[] = {
      {"momentum", &out->momentum, 0.9, 0.0, 1.0, false, true, strategy == "fedavgm",
       "fedavgm"},
      {"beta1", &out->beta1, 0.9, 0.0, 1.0, false, true, adaptive,
       "fedadagrad, fedadam and fedyogi"},
      {"beta2", &out->beta2, 0.99, 0.0, 1.0, false, true,
       strategy == "fedadam" || strategy == "fedyogi", "fedadam and fedyogi"},
      {"tau", &out->tau, 1e-3, 0.0, 1e6, true, false, adaptive,
       "fedadagrad, fedadam and fedyogi"},
      {"trim_fraction", &out->trim_fraction, 0.1, 0.0, 0.5, false, true,
       strategy == "trimmed_mean", "trimmed_mean"},
  };
  for (const Hyperparameter& h : keys) {
    const bool given = aggregation.Has(h.key);
    *h.value = aggregation.Double(h.key, h.fallback, h.min, h.max, h.min_exclusive);
    if (!given) continue;
    if (!h.applies) {
      aggregation.Fail(h.key, absl::StrCat("applies only to ", h.used_by, ", not to strategy ",
                                           strategy, "; remove it"));
    } else if (h.max_exclusive && *h.value >= h.max) {
      aggregation.Fail(h.key, absl::StrCat("must be below ", h.max, " (got ", *h.value, ")"));
    }
  }
}

}  // namespace

bool IsAdaptiveStrategy(const std::string& strategy) {
  return strategy == "fedadagrad" || strategy == "fedadam" || strategy == "fedyogi";
}

bool IsRobustStrategy(const std::string& strategy) {
  return strategy == "coordinate_median" || strategy == "trimmed_mean";
}

absl::StatusOr<CoordinatorConfig> ParseCoordinatorConfig(const std::string& yaml_text,
                                                          const std::string& source_name,
                                                          const std::string& base_dir) {
  YAML::Node root;
  if (absl::Status status = ParseYamlRoot(yaml_text, source_name, &root); !status.ok()) {
    return status;
  }
  ConfigErrors errors(source_name);
  MapReader top(root, "", &errors, base_dir);
  CoordinatorConfig config;
  config.source_file = source_name;
  config.federation = ReadId(top, "federation");
  config.listen = top.String("listen");
  CheckHostPort(top, "listen", config.listen, /*allow_port_zero=*/true);
  config.tls = ReadTls(top.Map("tls"), /*allow_crl=*/true);
  config.sites = top.StringList("sites", /*required=*/true);
  std::set<std::string> seen;
  for (const std::string& site : config.sites) {
    if (!IsValidSiteId(site)) {
      top.Fail("sites", absl::StrCat("'", site, "' is not a valid site id (lower-case letters, "
                                                "digits, '.', '_', '-'; max 63)"));
    } else if (!seen.insert(site).second) {
      top.Fail("sites", absl::StrCat("site '", site, "' is listed twice"));
    }
  }
  if (top.Has("sites") && config.sites.empty()) top.Fail("sites", "list at least one site");
  config.state_dir = top.Path("state_dir", /*required=*/true, /*must_exist=*/false);
  config.model = ReadModel(top.Map("model"));
  if (!top.Has("model")) top.Fail("model", "required key is missing");

  MapReader rounds = top.Map("rounds");
  if (!top.Has("rounds")) top.Fail("rounds", "required key is missing");
  config.rounds.count = rounds.Int("count", std::nullopt, 1, 1000000);
  config.rounds.min_clients = rounds.Int("min_clients", 1, 1, 1000000);
  config.rounds.stage_timeout = rounds.Duration("stage_timeout", absl::Seconds(60));
  config.rounds.select_timeout = rounds.Duration("select_timeout", absl::Seconds(10));
  if (!config.sites.empty() &&
      config.rounds.min_clients > static_cast<int64_t>(config.sites.size())) {
    rounds.Fail("min_clients", absl::StrCat("is ", config.rounds.min_clients, " but only ",
                                            config.sites.size(), " sites are allowed"));
  }
  rounds.Finish();

  MapReader training = top.Map("training");
  config.training.epochs = training.Int("epochs", 1, 1, 10000);
  config.training.batch_size = training.Int("batch_size", 32, 1, 1 << 20);
  config.training.learning_rate = training.Double("lr", 0.1, 0.0, 100.0, /*min_exclusive=*/true);
  config.training.optimizer = training.Enum("optimizer", "sgd", {"sgd"});
  config.training.proximal_mu = training.Double("proximal_mu", 0.0, 0.0, 1e6);
  training.Finish();

  MapReader aggregation = top.Map("aggregation");
  ReadStrategy(aggregation, &config.aggregation);
  MapReader secure = aggregation.Map("secure");
  SecureAggregationConfig& sa = config.aggregation.secure;
  sa.enabled = secure.Bool("enabled", false);
  sa.dropout_tolerance = secure.Double("dropout_tolerance", 0.3, 0.0, 0.5);
  sa.bits = secure.Int("bits", 20, 1, 62);
  sa.clip_range = secure.Double("clip_range", 1.0, 0.0, 1e9, /*min_exclusive=*/true);
  sa.modulus_bits = secure.Int("modulus_bits", 32, 32, 64);
  sa.weight_cap = secure.Int("weight_cap", 0, 0, int64_t{1} << 31);
  sa.stage_timeout = secure.Duration("stage_timeout", absl::Seconds(30));
  if (sa.modulus_bits != 32 && sa.modulus_bits != 64) {
    secure.Fail("modulus_bits", "must be 32 or 64");
  }
  if (sa.dropout_tolerance >= 0.5) {
    secure.Fail("dropout_tolerance", "must be below 0.5: the Shamir threshold must exceed "
                                     "half of each neighbourhood");
  }
  if (sa.enabled) {
    if (config.rounds.min_clients < 2) {
      secure.Fail("enabled", absl::StrCat("needs rounds.min_clients >= 2 (is ",
                                          config.rounds.min_clients,
                                          "): a sum of one update is that update"));
    }
    if (config.sites.size() < 3) {
      secure.Fail("enabled", "needs at least 3 sites: with 2, each learns the other's update "
                             "from the sum");
    }
    const int64_t summands = static_cast<int64_t>(config.sites.size());
    // The largest sum of all sites' encodings, (2^bits - 1) x sites, must stay below the
    // modulus. log2 is exact enough here: equality at a power of two is checked exactly.
    if (sa.modulus_bits == 32 || sa.modulus_bits == 64) {
      const long double max_sum = (std::pow(2.0L, static_cast<long double>(sa.bits)) - 1) * summands;
      if (max_sum >= std::pow(2.0L, static_cast<long double>(sa.modulus_bits))) {
        secure.Fail("bits", absl::StrCat(sa.bits, "-bit values from ", summands,
                                         " sites can wrap modulo 2^", sa.modulus_bits,
                                         "; lower bits or set modulus_bits: 64"));
      }
    }
  }
  if (sa.enabled && IsRobustStrategy(config.aggregation.strategy)) {
    aggregation.Fail("strategy",
                     absl::StrCat(config.aggregation.strategy,
                                  " cannot run with secure.enabled: true: robust aggregation "
                                  "needs each site's update, which secure aggregation hides "
                                  "(the coordinator learns only their sum). Use fedavg or a "
                                  "server optimizer (fedavgm, fedadagrad, fedadam, fedyogi), "
                                  "or turn secure aggregation off"));
  }
  secure.Finish();
  aggregation.Finish();

  if (top.Has("privacy")) {
    MapReader privacy = top.Map("privacy");
    config.privacy.enabled = true;
    if (privacy.Has("target_epsilon") == privacy.Has("noise_multiplier")) {
      privacy.Fail("noise_multiplier",
                   "give either noise_multiplier or target_epsilon (the coordinator then plans "
                   "sigma), not both and not neither");
    }
    config.privacy.noise_multiplier =
        privacy.Double("noise_multiplier", 0.0, 0.0, 1000.0, /*min_exclusive=*/true);
    config.privacy.target_epsilon =
        privacy.Double("target_epsilon", 0.0, 0.0, 1000.0, /*min_exclusive=*/true);
    config.privacy.max_grad_norm =
        privacy.Double("max_grad_norm", std::nullopt, 0.0, 1e6, /*min_exclusive=*/true);
    config.privacy.delta = privacy.Double("delta", 1e-5, 0.0, 0.1, /*min_exclusive=*/true);
    privacy.Finish();
  } else {
    top.Map("privacy");  // marks the key as known
  }

  {
    MapReader evaluation = top.Map("evaluation");
    config.evaluation.every = evaluation.Int("every", 1, 1, 1000000);
    if (evaluation.Has("early_stopping")) {
      MapReader early = evaluation.Map("early_stopping");
      config.evaluation.early_stopping_metric =
          early.Enum("metric", "accuracy", {"accuracy", "loss", "auc"});
      config.evaluation.patience = early.Int("patience", 3, 1, 1000000);
      config.evaluation.min_delta = early.Double("min_delta", 0.0, 0.0, 1e6);
      early.Finish();
    } else {
      evaluation.Map("early_stopping");  // marks the key as known
    }
    if (evaluation.Has("server")) {
      MapReader server = evaluation.Map("server");
      ServerEvaluationConfig out;
      if (server.Has("data")) {
        out.data = ReadData(server.Map("data"), DataRole::kServerEvaluation);
      } else {
        server.Fail("data", "required key is missing (the central test file)");
      }
      out.evaluator = server.Path("evaluator", /*required=*/false, /*must_exist=*/true);
      out.timeout = server.Duration("timeout", absl::Minutes(10));
      if (out.timeout <= absl::ZeroDuration()) server.Fail("timeout", "must be positive");
      server.Finish();
      config.evaluation.server = std::move(out);
    } else {
      evaluation.Map("server");  // marks the key as known
    }
    evaluation.Finish();
  }

  MapReader limits = top.Map("limits");
  config.limits.max_concurrent_uploads = limits.Int("max_concurrent_uploads", 1, 1, 1024);
  config.limits.max_chunk_bytes = limits.Int("max_chunk_bytes", 4 << 20, 1024, 64 << 20);
  config.limits.max_sessions_per_minute = limits.Int("max_sessions_per_minute", 30, 1, 100000);
  limits.Finish();

  config.logging = ReadLogging(top.Map("logging"));
  config.http = ReadHttp(top.Map("http"));
  config.keepalive = ReadKeepalive(top.Map("keepalive"));
  {
    MapReader health = top.Map("health");
    if (health.Has("listen")) {
      config.health_listen = health.String("listen");
      CheckHostPort(health, "listen", config.health_listen, /*allow_port_zero=*/true);
    } else {
      health.String("listen", "");  // marks the key as known
    }
    health.Finish();
  }
  config.admins = top.StringList("admins", /*required=*/false);
  for (const std::string& admin : config.admins) {
    if (!IsValidSiteId(admin)) {
      top.Fail("admins", absl::StrCat("'", admin, "' is not a valid admin name (lower-case "
                                                 "letters, digits, '.', '_', '-'; max 63)"));
    }
  }
  // The three ports must differ (port 0 picks a distinct free port each time).
  const std::vector<std::pair<std::string, std::string>> ports = {
      {"listen", config.listen}, {"http.listen", config.http.listen},
      {"health.listen", config.health_listen}};
  for (size_t i = 0; i < ports.size(); ++i) {
    for (size_t j = i + 1; j < ports.size(); ++j) {
      if (!ports[i].second.empty() && ports[i].second == ports[j].second &&
          !absl::EndsWith(ports[i].second, ":0")) {
        top.Fail(ports[j].first == "http.listen" ? "http" : "health",
                 absl::StrCat(ports[j].first, " must differ from ", ports[i].first, " (",
                              ports[i].second, ")"));
      }
    }
  }
  if (top.Has("seed")) {
    config.has_seed = true;
    config.seed = static_cast<uint64_t>(
        top.Int("seed", 0, 0, std::numeric_limits<int64_t>::max()));
  } else {
    top.Int("seed", 0, 0, 0);  // Marks the key as known.
  }
  top.Finish();
  if (!errors.ok()) return errors.ToStatus();
  return config;
}

absl::StatusOr<CoordinatorConfig> LoadCoordinatorConfig(const std::string& path) {
  std::string base_dir;
  absl::StatusOr<std::string> text = ReadConfigFile(path, &base_dir);
  if (!text.ok()) return text.status();
  return ParseCoordinatorConfig(*text, path, base_dir);
}

}  // namespace cohort::config
