// Unit tests for the cnn built-in model (config, spec checks, layout, initialisation,
// checkpoints) and the client's IDX data source (config and LoadSiteData); no LibTorch.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/config/client_config.h"
#include "common/config/coordinator_config.h"
#include "common/data/idx.h"
#include "common/data/site_data.h"
#include "common/model/checkpoint.h"
#include "common/model/models.h"
#include "tests/support/status_assertions.h"
#include "tests/support/temp_dir.h"

namespace cohort {
namespace {

using ::cohort::testing::RequireInvalid;
using ::cohort::testing::TempDir;
using ::cohort::testing::WriteTextFile;

config::ModelSpec FashionCnn() {
  config::ModelSpec spec;
  spec.arch = "cnn";
  spec.input_shape = {1, 28, 28};
  spec.inputs = 784;
  spec.channels = {16, 32};
  spec.hidden = {128};
  spec.classes = 10;
  return spec;
}

// The files a coordinator or client config below refers to.
class Files {
 public:
  Files() {
    for (const char* f : {"ca.pem", "c.pem", "c.key", "s.pem", "s.key"}) {
      WriteTextFile(dir_.File(f), "x\n");
    }
    REQUIRE(chmod(dir_.File("c.key").c_str(), 0600) == 0);
    REQUIRE(chmod(dir_.File("s.key").c_str(), 0600) == 0);
    data::IdxImages images;
    images.images.dims = {20, 4, 4};
    images.labels.dims = {20};
    for (int i = 0; i < 20; ++i) {
      for (int p = 0; p < 16; ++p) images.images.values.push_back(static_cast<char>(i * 10 + p));
      images.labels.values.push_back(static_cast<char>(i % 2));
    }
    REQUIRE(data::WriteIdxFile(dir_.File("img.gz"), images.images, true).ok());
    REQUIRE(data::WriteIdxFile(dir_.File("lab.gz"), images.labels, true).ok());
    REQUIRE(data::WriteIdxFile(dir_.File("test-img"), images.images.Take({0, 1, 2}), false).ok());
    REQUIRE(data::WriteIdxFile(dir_.File("test-lab"), images.labels.Take({0, 1, 2}), false).ok());
    data::IdxArray wide = images.images;
    wide.dims = {20, 2, 8};
    REQUIRE(data::WriteIdxFile(dir_.File("wide-img"), wide, false).ok());
    WriteTextFile(dir_.File("t.csv"), "x,y\n1,0\n2,1\n3,0\n4,1\n5,0\n");
  }
  const std::string& path() const { return dir_.path(); }
  std::string File(const std::string& name) const { return dir_.File(name); }

 private:
  TempDir dir_;
};

// Line 6 is `model:`, 7 its first key.
std::string Coordinator(const std::string& model) {
  return absl::StrCat(
      "federation: f\n"
      "listen: 127.0.0.1:0\n"
      "tls: {ca: ca.pem, cert: c.pem, key: c.key}\n"
      "sites: [a, b, c]\n"
      "state_dir: state\n"
      "model:\n",
      model, "rounds: {count: 1}\n");
}

// Line 5 is `data:`, 6 its first key.
std::string Client(const std::string& data) {
  return absl::StrCat(
      "site: a\n"
      "coordinator: localhost:7443\n"
      "tls: {ca: ca.pem, cert: s.pem, key: s.key}\n"
      "mode: simulation\n"
      "data:\n",
      data);
}

absl::StatusOr<config::CoordinatorConfig> ParseCoordinator(const Files& files,
                                                           const std::string& model) {
  return config::ParseCoordinatorConfig(Coordinator(model), "coord.yaml", files.path());
}

absl::StatusOr<config::ClientConfig> ParseClient(const Files& files, const std::string& data) {
  return config::ParseClientConfig(Client(data), "client.yaml", files.path());
}

}  // namespace

// --- cnn: config, spec, layout ---------------------------------------------------------

TEST_CASE("Coordinator config reads a cnn model with input_shape and channels", "[config]") {
  Files files;
  auto config = ParseCoordinator(files,
                                 "  arch: cnn\n  input_shape: [1, 28, 28]\n  channels: [16, 32]\n"
                                 "  hidden: [128]\n  classes: 10\n");
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  const config::ModelSpec& spec = config->model;
  CHECK(spec.arch == "cnn");
  CHECK(spec.input_shape == std::vector<int64_t>{1, 28, 28});
  CHECK(spec.channels == std::vector<int64_t>{16, 32});
  CHECK(spec.inputs == 784);
  CHECK(spec.hidden == std::vector<int64_t>{128});
  CHECK(config::CheckModelSpec(spec).ok());
  // A cnn without hidden layers is allowed: the convolutions feed the output layer.
  CHECK(ParseCoordinator(files, "  arch: cnn\n  input_shape: [3, 8, 8]\n  channels: [4]\n"
                                "  classes: 2\n")
            .ok());
}

TEST_CASE("Coordinator config refuses a cnn model that is incomplete or does not fit",
          "[config]") {
  Files files;
  RequireInvalid(ParseCoordinator(files, "  arch: cnn\n  channels: [4]\n  classes: 2\n").status(),
                 {"coord.yaml:", "model.input_shape", "required key is missing"});
  RequireInvalid(
      ParseCoordinator(files, "  arch: cnn\n  input_shape: [28, 28]\n  channels: [4]\n"
                              "  classes: 2\n").status(),
      {"coord.yaml:8:", "model.input_shape", "needs 3 entries"});
  RequireInvalid(
      ParseCoordinator(files, "  arch: cnn\n  input_shape: [1, 8, 8]\n  classes: 2\n").status(),
      {"model.channels", "required key is missing"});
  RequireInvalid(
      ParseCoordinator(files, "  arch: cnn\n  input_shape: [1, 8, 8]\n  inputs: 64\n"
                              "  channels: [4]\n  classes: 2\n").status(),
      {"coord.yaml:9:", "model.inputs", "cnn takes input_shape"});
  // Four halvings of 8 pixels leave nothing.
  RequireInvalid(
      ParseCoordinator(files, "  arch: cnn\n  input_shape: [1, 8, 8]\n  channels: [4, 4, 4, 4]\n"
                              "  classes: 2\n").status(),
      {"coord.yaml:9:", "model.channels", "at least 16"});
  RequireInvalid(
      ParseCoordinator(files, "  arch: cnn\n  input_shape: [1, 8, 8]\n  channels: [4, 0]\n"
                              "  classes: 2\n").status(),
      {"model.channels[1]", "got 0"});
  // input_shape and channels belong to cnn only.
  RequireInvalid(
      ParseCoordinator(files, "  arch: mlp\n  inputs: 4\n  hidden: [4]\n  channels: [4]\n"
                              "  classes: 2\n").status(),
      {"coord.yaml:10:", "model.channels", "only for arch: cnn"});
}

TEST_CASE("Coordinator config refuses a model beyond 2^28 parameters", "[config]") {
  Files files;
  RequireInvalid(ParseCoordinator(files, "  arch: mlp\n  inputs: 16777216\n  hidden: [64]\n"
                                         "  classes: 2\n").status(),
                 {"model.arch", "more than 268435456 parameters"});
}

TEST_CASE("CheckModelSpec refuses specs a coordinator could send that the config would not",
          "[config]") {
  config::ModelSpec spec = FashionCnn();
  CHECK(config::CheckModelSpec(spec).ok());
  auto refused = [](config::ModelSpec s, const std::string& fragment) {
    RequireInvalid(config::CheckModelSpec(s), {fragment});
  };
  config::ModelSpec s = spec;
  s.arch = "resnet";
  refused(s, "unknown arch");
  s = spec;
  s.inputs = 785;
  refused(s, "product of input_shape");
  s = spec;
  s.channels = {16, 32, 64, 128, 256};  // 28 halved 5 times is 0
  refused(s, "too small");
  s = spec;
  s.channels = {1 << 16, 1 << 16};
  refused(s, "parameters");
  s = spec;
  s.input_shape = {1, 28};
  refused(s, "input_shape");
  s = spec;
  s.arch = "mlp";
  refused(s, "only for cnn");
  s = spec;
  s.classes = 1;
  refused(s, "classes");
}

TEST_CASE("The cnn layout lists convolutions then Linear layers with the pooled sizes",
          "[config]") {
  const tensor::ParameterLayout layout = model::LayoutFor(FashionCnn());
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  for (const tensor::TensorSpec& t : layout.tensors()) {
    names.push_back(t.name);
    shapes.push_back(t.shape);
  }
  CHECK(names == std::vector<std::string>{"conv0.weight", "conv0.bias", "conv1.weight",
                                          "conv1.bias", "fc0.weight", "fc0.bias", "fc1.weight",
                                          "fc1.bias"});
  CHECK(shapes == std::vector<std::vector<int64_t>>{
                      {16, 1, 3, 3}, {16}, {32, 16, 3, 3}, {32}, {128, 32 * 7 * 7}, {128},
                      {10, 128}, {10}});
  CHECK(layout.TotalValues() == config::ModelParameterCount(FashionCnn()));
  CHECK(layout.TotalValues() == 160 + 4640 + 200832 + 1290);
  // Odd sizes are floored by each pooling: 9 -> 4 -> 2, 7 -> 3 -> 1.
  config::ModelSpec odd = FashionCnn();
  odd.input_shape = {3, 9, 7};
  odd.inputs = 3 * 9 * 7;
  CHECK(config::CnnFlatFeatures(odd) == 32 * 2 * 1);
  CHECK(model::LayoutFor(odd).tensors()[0].shape == std::vector<int64_t>{16, 3, 3, 3});
}

TEST_CASE("cnn initial parameters are uniform within 1 over the square root of fan_in",
          "[config]") {
  const config::ModelSpec spec = FashionCnn();
  const tensor::ParameterLayout layout = model::LayoutFor(spec);
  const std::vector<float> values = model::InitialParameters(spec, 5);
  REQUIRE(static_cast<int64_t>(values.size()) == layout.TotalValues());
  CHECK(values == model::InitialParameters(spec, 5));
  CHECK(values != model::InitialParameters(spec, 6));
  // fan_in per tensor: conv0 1*3*3, conv1 16*3*3, fc0 1568, fc1 128 (biases share it).
  const std::vector<double> fan_in = {9, 9, 144, 144, 1568, 1568, 128, 128};
  size_t offset = 0;
  for (size_t t = 0; t < layout.tensors().size(); ++t) {
    const double bound = 1.0 / std::sqrt(fan_in[t]);
    double largest = 0;
    for (int64_t i = 0; i < layout.tensors()[t].NumValues(); ++i) {
      largest = std::max(largest, std::abs(static_cast<double>(values[offset + i])));
    }
    INFO(layout.tensors()[t].name);
    CHECK(largest <= bound);
    if (layout.tensors()[t].NumValues() >= 100) CHECK(largest > 0.9 * bound);
    offset += layout.tensors()[t].NumValues();
  }
}

TEST_CASE("A cnn checkpoint survives a write to disk and a read back", "[config][checkpoint]") {
  TempDir dir;
  const config::ModelSpec spec = FashionCnn();
  const tensor::ParameterLayout layout = model::LayoutFor(spec);
  const std::vector<float> values = model::InitialParameters(spec, 9);
  REQUIRE(model::WriteCheckpoint(dir.File("cnn.pt"), layout, values).ok());
  auto read = model::ReadCheckpoint(dir.File("cnn.pt"), layout);
  REQUIRE(read.ok());
  CHECK(*read == values);
}

// --- The client's IDX data source ------------------------------------------------------

TEST_CASE("Client config reads an idx data source with a test_fraction", "[config][data]") {
  Files files;
  auto config = ParseClient(files, "  format: idx\n  images: img.gz\n  labels: lab.gz\n"
                                   "  test_fraction: 0.25\n  normalize: true\n");
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->data.format == "idx");
  CHECK(config->data.images == files.File("img.gz"));
  CHECK(config->data.labels == files.File("lab.gz"));
  CHECK_FALSE(config->data.has_test_files());
  CHECK(config->data.test_fraction == 0.25);
  CHECK(config->data.normalize);
  CHECK(config->data.path.empty());
}

TEST_CASE("Client config reads an idx data source with separate test files", "[config][data]") {
  Files files;
  auto config = ParseClient(files, "  format: idx\n  images: img.gz\n  labels: lab.gz\n"
                                   "  test_images: test-img\n  test_labels: test-lab\n");
  INFO(config.status().ToString());
  REQUIRE(config.ok());
  CHECK(config->data.has_test_files());
  CHECK(config->data.test_images == files.File("test-img"));
  CHECK(config->data.test_labels == files.File("test-lab"));
  CHECK_FALSE(config->data.normalize);
}

TEST_CASE("Client config refuses idx data sources that are incomplete or mixed with csv keys",
          "[config][data]") {
  Files files;
  RequireInvalid(ParseClient(files, "  format: idx\n  images: img.gz\n").status(),
                 {"client.yaml:", "data.labels", "required key is missing"});
  RequireInvalid(ParseClient(files, "  format: idx\n  images: nope.gz\n  labels: lab.gz\n")
                     .status(),
                 {"client.yaml:7:", "data.images", files.File("nope.gz"), "does not exist"});
  RequireInvalid(ParseClient(files, "  format: idx\n  images: img.gz\n  labels: lab.gz\n"
                                    "  test_images: test-img\n").status(),
                 {"data.test_labels", "go together"});
  RequireInvalid(ParseClient(files, "  format: idx\n  images: img.gz\n  labels: lab.gz\n"
                                    "  test_images: test-img\n  test_labels: test-lab\n"
                                    "  test_fraction: 0.2\n").status(),
                 {"client.yaml:11:", "data.test_fraction", "not with test_images"});
  RequireInvalid(ParseClient(files, "  format: idx\n  images: img.gz\n  labels: lab.gz\n"
                                    "  label: y\n").status(),
                 {"client.yaml:9:", "data.label", "only for format: csv"});
  RequireInvalid(ParseClient(files, "  path: t.csv\n  label: y\n  images: img.gz\n").status(),
                 {"client.yaml:8:", "data.images", "only for format: idx"});
  RequireInvalid(ParseClient(files, "  path: t.csv\n  label: y\n  normalize: true\n").status(),
                 {"data.normalize", "only for format: idx"});
  RequireInvalid(ParseClient(files, "  format: parquet\n  path: t.csv\n  label: y\n").status(),
                 {"client.yaml:6:", "data.format", "parquet"});
}

TEST_CASE("LoadSiteData splits idx images stratified and keeps pixels in 0 to 1", "[data]") {
  Files files;
  auto config = ParseClient(files, "  format: idx\n  images: img.gz\n  labels: lab.gz\n"
                                   "  test_fraction: 0.2\n");
  REQUIRE(config.ok());
  auto split = data::LoadSiteData(config->data);
  REQUIRE(split.ok());
  CHECK(split->train.rows() == 16);
  CHECK(split->test.rows() == 4);
  CHECK(split->train.shape == std::vector<int64_t>{1, 4, 4});
  CHECK(split->test.shape == std::vector<int64_t>{1, 4, 4});
  for (float v : split->train.features) CHECK((v >= 0.0f && v <= 1.0f));
  int test_ones = 0;
  for (int64_t y : split->test.labels) test_ones += static_cast<int>(y);
  CHECK(test_ones == 2);  // stratified: half of each class
}

TEST_CASE("LoadSiteData reads idx test files and normalizes with training statistics only",
          "[data]") {
  Files files;
  auto config = ParseClient(files, "  format: idx\n  images: img.gz\n  labels: lab.gz\n"
                                   "  test_images: test-img\n  test_labels: test-lab\n"
                                   "  normalize: true\n");
  REQUIRE(config.ok());
  auto split = data::LoadSiteData(config->data);
  REQUIRE(split.ok());
  CHECK(split->train.rows() == 20);
  CHECK(split->test.rows() == 3);
  double sum = 0;
  for (float v : split->train.features) sum += v;
  CHECK(sum / split->train.features.size() == Approx(0).margin(1e-5));
  // The test images are the first three training images, mapped the same way.
  for (int i = 0; i < 3 * 16; ++i) CHECK(split->test.features[i] == split->train.features[i]);
}

TEST_CASE("LoadSiteData refuses idx test images of another size naming both files", "[data]") {
  Files files;
  config::DataConfig data;
  data.format = "idx";
  data.images = files.File("img.gz");
  data.labels = files.File("lab.gz");
  data.test_images = files.File("wide-img");
  data.test_labels = files.File("lab.gz");
  RequireInvalid(data::LoadSiteData(data).status(),
                 {files.File("wide-img"), "1x2x8", files.File("img.gz"), "1x4x4"});
}

TEST_CASE("LoadSiteData standardizes a csv table with the site's training rows", "[data]") {
  Files files;
  auto config = ParseClient(files, "  path: t.csv\n  label: y\n  test_fraction: 0.4\n");
  REQUIRE(config.ok());
  auto split = data::LoadSiteData(config->data);
  REQUIRE(split.ok());
  CHECK(split->train.rows() + split->test.rows() == 5);
  CHECK(split->train.shape.empty());
  CHECK(split->train.cols() == 1);
}

}  // namespace cohort
