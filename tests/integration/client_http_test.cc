// The site daemon's own HTTP port (http.listen): /metrics (rounds, refusals by reason,
// training time, epsilon), /healthz (the privacy ledger) and /readyz (the coordinator
// session), over real gRPC, mutual TLS and HTTP on 127.0.0.1.
#include <sqlite3.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/torch_trainer.h"
#include "common/data/csv.h"
#include "common/data/split.h"
#include "common/dp/accountant.h"
#include "common/dp/ledger.h"
#include "tests/integration/harness.h"
#include "tests/support/http_get.h"

namespace cohort::testing {
namespace {

std::unique_ptr<ScriptedTrainer> Scripted(float delta, uint64_t examples) {
  return std::make_unique<ScriptedTrainer>(delta, examples);
}

// hospital-a's third of the breast cancer data, trained with LibTorch (as in privacy_test.cc):
// real DP-SGD, so that the site records a round in its ledger.
std::unique_ptr<client::Trainer> WdbcTrainer() {
  auto all = data::LoadCsv(SourcePath("data/wdbc.csv"), "malignant");
  REQUIRE(all.ok());
  auto parts = data::PartitionRows(all->labels, 3, *data::ParsePartitionScheme("iid"), 1);
  REQUIRE(parts.ok());
  data::TrainTestSplit split = data::SplitTrainTest(all->Subset((*parts)[0]), 0.2, 1);
  data::Standardizer standardizer = data::Standardizer::Fit(split.train);
  standardizer.Apply(&split.train);
  standardizer.Apply(&split.test);
  return client::MakeTorchTrainerFromSplit(std::move(split), 1);
}

// The value of one sample (`name` or `name{labels}`, exactly as exposed) in a Prometheus
// text exposition; nullopt when the sample is absent.
std::optional<double> Sample(const std::string& exposition, const std::string& sample) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (!absl::ConsumePrefix(&line, sample) || !absl::ConsumePrefix(&line, " ")) continue;
    double value = 0;
    if (absl::SimpleAtod(line, &value)) return value;
  }
  return std::nullopt;
}

// Polls `url` on `port` until `done` holds for the reply (a watchdog of 60 s fails the test,
// it never passes it) and returns that reply.
HttpReply WaitForReply(int port, const std::string& path,
                       const std::function<bool(const HttpReply&)>& done) {
  const absl::Time watchdog = absl::Now() + absl::Seconds(60);
  HttpReply reply;
  while (absl::Now() < watchdog) {
    reply = HttpRequest(port, path);
    if (done(reply)) return reply;
    absl::SleepFor(absl::Milliseconds(50));
  }
  FAIL("GET " << path << " never reached the expected state; last: " << reply.status << " "
              << reply.body);
  return reply;
}

// /metrics once `sample` has reached at least `value`.
std::string WaitForSample(int port, const std::string& sample, double value) {
  return WaitForReply(port, "/metrics",
                      [&](const HttpReply& r) { return Sample(r.body, sample) >= value; })
      .body;
}

// The client's HTTP port, once Run() has opened it (watchdog 60 s).
int WaitForHttpPort(client::SiteClient& client) {
  const absl::Time watchdog = absl::Now() + absl::Seconds(60);
  while (client.http_port() == 0 && absl::Now() < watchdog) absl::SleepFor(absl::Milliseconds(10));
  REQUIRE(client.http_port() > 0);
  return client.http_port();
}

}  // namespace

TEST_CASE("A client with http.listen serves its rounds, training time and health on its own "
          "port, and closes it when it stops",
          "[client_http]") {
  Federation fed({"site-a", "site-b"});
  fed.config().rounds.count = 3;
  fed.Start();
  config::ClientConfig site = fed.ClientConfigFor("site-a");
  site.http.listen = "127.0.0.1:0";
  site.exit_when_done = false;  // keeps serving after the federation is done
  ClientRunner a(site, Scripted(1.0f, 10));
  ClientRunner b(fed.ClientConfigFor("site-b"), Scripted(2.0f, 30));
  const int port = WaitForHttpPort(a.client());
  CHECK(b.client().http_port() == 0);  // off by default
  REQUIRE(fed.coordinator().Wait().ok());

  // The third round's update is counted once its upload returns, which may be just after the
  // coordinator committed it.
  const std::string metrics =
      WaitForSample(port, "cohort_client_rounds_total{outcome=\"completed\"}", 3);
  CHECK(Sample(metrics, "cohort_client_rounds_total{outcome=\"completed\"}") == 3);
  CHECK(Sample(metrics, "cohort_client_rounds_total{outcome=\"failed\"}") == 0);
  CHECK(Sample(metrics, "cohort_client_rounds_total{outcome=\"aborted\"}") == 0);
  CHECK(Sample(metrics, "cohort_client_last_round") == 3);
  CHECK(Sample(metrics, "cohort_client_training_duration_seconds_count") == 3);
  CHECK(Sample(metrics, "cohort_client_training_duration_seconds_bucket{le=\"+Inf\"}") == 3);
  CHECK(Sample(metrics, "cohort_client_trained_examples_total") == 30);  // 3 x 10 examples
  for (const char* reason : {"not_dp", "noise", "clip", "budget", "ledger", "other"}) {
    INFO(reason);
    CHECK(Sample(metrics, absl::StrCat("cohort_client_refusals_total{reason=\"", reason,
                                       "\"}")) == 0);
  }
  CHECK(Sample(metrics, "cohort_client_sessions_total") >= 1);
  // No privacy policy at this site: no epsilon to report.
  CHECK(Sample(metrics, "cohort_client_epsilon_spent") == std::nullopt);
  CHECK(Sample(metrics, "cohort_client_epsilon_budget") == std::nullopt);
  // Every round is evaluated after its commit.
  WaitForSample(port, "cohort_client_evaluations_total{outcome=\"completed\"}", 3);

  HttpReply health = HttpRequest(port, "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == "ok\n");
  CHECK(HttpRequest(port, "/no-such-page").status == 404);
  CHECK(HttpRequest(port, "/metrics", "POST").status == 405);

  // Readiness follows the session: ready while connected, not once the coordinator is gone.
  WaitForReply(port, "/readyz", [](const HttpReply& r) { return r.status == 200; });
  CHECK(Sample(HttpRequest(port, "/metrics").body, "cohort_client_connected") == 1);
  fed.StopCoordinator();
  HttpReply unready =
      WaitForReply(port, "/readyz", [](const HttpReply& r) { return r.status == 503; });
  CHECK(unready.body == "not connected to the coordinator\n");
  CHECK(Sample(HttpRequest(port, "/metrics").body, "cohort_client_connected") == 0);
  CHECK(HttpRequest(port, "/healthz").status == 200);  // alive, just not connected

  a.client().Stop();
  CHECK(absl::IsCancelled(a.Join()));
  CHECK(a.client().http_port() == 0);
  CHECK(HttpRequest(port, "/healthz").status == 0);  // nothing listens there any more
}

TEST_CASE("A client counts a secure round as completed once it has sent its unmask shares",
          "[client_http][secagg_integration]") {
  Federation fed({"site-a", "site-b", "site-c"});
  auto& secure = fed.config().aggregation.secure;
  secure.enabled = true;
  secure.dropout_tolerance = 0.3;
  secure.bits = 20;
  secure.clip_range = 1.0;
  secure.modulus_bits = 32;
  secure.stage_timeout = absl::Seconds(20);
  fed.config().rounds.count = 2;
  fed.Start();
  config::ClientConfig site = fed.ClientConfigFor("site-a");
  site.http.listen = "127.0.0.1:0";
  site.exit_when_done = false;
  ClientRunner a(site, Scripted(0.5f, 10));
  ClientRunner b(fed.ClientConfigFor("site-b"), Scripted(0.25f, 20));
  ClientRunner c(fed.ClientConfigFor("site-c"), Scripted(0.125f, 30));
  const int port = WaitForHttpPort(a.client());
  REQUIRE(fed.coordinator().Wait().ok());
  REQUIRE(ReadRounds(fed.state_dir(), true).size() == 2);
  const std::string metrics =
      WaitForSample(port, "cohort_client_rounds_total{outcome=\"completed\"}", 2);
  CHECK(Sample(metrics, "cohort_client_rounds_total{outcome=\"completed\"}") == 2);
  CHECK(Sample(metrics, "cohort_client_rounds_total{outcome=\"failed\"}") == 0);
  CHECK(Sample(metrics, "cohort_client_rounds_total{outcome=\"aborted\"}") == 0);
  CHECK(Sample(metrics, "cohort_client_last_round") == 2);
  CHECK(Sample(metrics, "cohort_client_training_duration_seconds_count") == 2);
}

TEST_CASE("A client whose http.listen port is taken does not start, and says why",
          "[client_http]") {
  Federation fed({"site-a", "site-b"});
  fed.config().rounds.count = 1;
  fed.Start();
  config::ClientConfig first = fed.ClientConfigFor("site-a");
  first.http.listen = "127.0.0.1:0";
  ClientRunner a(first, Scripted(1.0f, 10));
  const int port = WaitForHttpPort(a.client());
  config::ClientConfig second = fed.ClientConfigFor("site-b");
  second.http.listen = absl::StrCat("127.0.0.1:", port);
  ClientRunner b(second, Scripted(1.0f, 10));
  absl::Status status = b.Join();
  CHECK_FALSE(status.ok());
  CHECK_THAT(std::string(status.message()), Catch::Contains(second.http.listen));
  CHECK(b.client().sessions_opened() == 0);  // it never dialled the coordinator
}

TEST_CASE("A client's metrics show its epsilon from the ledger and count budget refusals",
          "[client_http][privacy]") {
  Federation fed({"hospital-a", "hospital-b"});
  fed.config().model.arch = "logreg";
  fed.config().model.inputs = 30;
  fed.config().rounds.count = 3;
  fed.config().rounds.min_clients = 1;
  fed.config().training.batch_size = 32;
  fed.config().privacy.enabled = true;
  fed.config().privacy.noise_multiplier = 1.0;
  fed.config().privacy.max_grad_norm = 1.0;
  fed.Start();

  TempDir site_dir;
  config::ClientConfig site = fed.ClientConfigFor("hospital-a");
  site.http.listen = "127.0.0.1:0";
  site.exit_when_done = false;
  site.privacy = {true, 0, 1e-5, 0.5, 2.0, site_dir.File("ledger.db")};
  REQUIRE(dp::PrivacyLedger::Initialize(site.privacy.ledger, "hospital-a").ok());
  // A budget for exactly one round (between the epsilon of one round and of two).
  const dp::DpRoundPlan plan = dp::PlanDpRound(WdbcTrainer()->train_examples(), 32, 1);
  auto one_round = dp::ComputeEpsilon(plan.sample_rate, 1.0, plan.steps, 1e-5);
  auto two_rounds = dp::ComputeEpsilon(plan.sample_rate, 1.0, 2 * plan.steps, 1e-5);
  REQUIRE((one_round.ok() && two_rounds.ok()));
  site.privacy.max_epsilon = (one_round->epsilon + two_rounds->epsilon) / 2;

  ClientRunner a(site, WdbcTrainer());
  ClientRunner b(fed.ClientConfigFor("hospital-b"), Scripted(0.0f, 10));
  const int port = WaitForHttpPort(a.client());
  REQUIRE(fed.coordinator().Wait().ok());

  // Round 1 trained and recorded; rounds 2 and 3 refused by the budget (counted before the
  // site told the coordinator, so before Wait() returned).
  const std::string metrics =
      WaitForSample(port, "cohort_client_rounds_total{outcome=\"completed\"}", 1);
  CHECK(Sample(metrics, "cohort_client_rounds_total{outcome=\"completed\"}") == 1);
  CHECK(Sample(metrics, "cohort_client_refusals_total{reason=\"budget\"}") == 2);
  CHECK(Sample(metrics, "cohort_client_refusals_total{reason=\"noise\"}") == 0);
  CHECK(Sample(metrics, "cohort_client_rounds_total{outcome=\"failed\"}") == 0);
  CHECK(Sample(metrics, "cohort_client_last_round") == 1);
  CHECK(Sample(metrics, "cohort_client_training_duration_seconds_count") == 1);
  CHECK(Sample(metrics, "cohort_client_trained_examples_total") ==
        static_cast<double>(WdbcTrainer()->train_examples()));
  // The gauge holds the ledger's epsilon after round 1, and the budget.
  auto ledger = dp::PrivacyLedger::Open(site.privacy.ledger, "hospital-a");
  REQUIRE(ledger.ok());
  auto spent = (*ledger)->Epsilon(1e-5);
  REQUIRE(spent.ok());
  CHECK(*spent == Approx(one_round->epsilon).epsilon(1e-9));
  std::optional<double> gauge = Sample(metrics, "cohort_client_epsilon_spent");
  REQUIRE(gauge.has_value());
  CHECK(*gauge == Approx(*spent).epsilon(1e-9));
  std::optional<double> budget = Sample(metrics, "cohort_client_epsilon_budget");
  REQUIRE(budget.has_value());
  CHECK(*budget == Approx(site.privacy.max_epsilon).epsilon(1e-9));
  CHECK(HttpRequest(port, "/healthz").status == 200);  // refusing by policy is healthy
}

TEST_CASE("A client's epsilon gauge starts from the existing ledger", "[client_http][privacy]") {
  Federation fed({"hospital-a", "hospital-b"});
  fed.config().rounds.count = 1;
  fed.config().rounds.min_clients = 1;
  fed.config().privacy.enabled = true;
  fed.config().privacy.noise_multiplier = 1.0;
  fed.config().privacy.max_grad_norm = 1.0;
  fed.Start();
  TempDir site_dir;
  config::ClientConfig site = fed.ClientConfigFor("hospital-a");
  site.http.listen = "127.0.0.1:0";
  site.exit_when_done = false;
  site.privacy = {true, 0, 1e-5, 0.5, 2.0, site_dir.File("ledger.db")};
  REQUIRE(dp::PrivacyLedger::Initialize(site.privacy.ledger, "hospital-a").ok());
  double spent = 0;
  {
    // Earlier runs spent some of the budget: 500 steps at q = 0.05, sigma 1.0.
    auto ledger = dp::PrivacyLedger::Open(site.privacy.ledger, "hospital-a");
    REQUIRE(ledger.ok());
    dp::LedgerEntry entry;
    entry.round = 1;
    entry.sample_rate = 0.05;
    entry.noise_multiplier = 1.0;
    entry.steps = 500;
    entry.max_grad_norm = 1.0;
    entry.delta = 1e-5;
    entry.recorded_at = absl::Now();
    REQUIRE((*ledger)->Record(entry).ok());
    auto epsilon = (*ledger)->Epsilon(1e-5);
    REQUIRE(epsilon.ok());
    spent = *epsilon;
  }
  REQUIRE(spent > 0);
  // Barely more than spent: any further round is over the budget.
  site.privacy.max_epsilon = spent * 1.0001;

  ClientRunner a(site, Scripted(1.0f, 10));
  const int port = WaitForHttpPort(a.client());
  {
    std::optional<double> gauge = Sample(HttpRequest(port, "/metrics").body,
                                         "cohort_client_epsilon_spent");
    REQUIRE(gauge.has_value());
    CHECK(*gauge == Approx(spent).epsilon(1e-9));
  }
  // The one round: hospital-a refuses it, hospital-b (no privacy policy) trains.
  ClientRunner b(fed.ClientConfigFor("hospital-b"), Scripted(0.0f, 10));
  REQUIRE(fed.coordinator().Wait().ok());
  const std::string metrics =
      WaitForSample(port, "cohort_client_refusals_total{reason=\"budget\"}", 1);
  CHECK(Sample(metrics, "cohort_client_rounds_total{outcome=\"completed\"}") == 0);
  CHECK(Sample(metrics, "cohort_client_training_duration_seconds_count") == 0);
  CHECK(Sample(metrics, "cohort_client_epsilon_spent").value_or(-1) ==
        Approx(spent).epsilon(1e-9));
}

TEST_CASE("A client labels each privacy policy refusal with its rule", "[client_http][privacy]") {
  struct Ask {
    bool dp;
    double sigma;
    double clip;
    const char* reason;
  };
  const Ask ask = GENERATE(Ask{true, 0.3, 1.0, "noise"}, Ask{true, 1.0, 5.0, "clip"},
                           Ask{false, 0, 0, "not_dp"});
  INFO(ask.reason);
  Federation fed({"hospital-a", "hospital-b"});
  fed.config().rounds.count = 1;
  fed.config().rounds.min_clients = 1;
  fed.config().privacy.enabled = ask.dp;
  fed.config().privacy.noise_multiplier = ask.sigma;
  fed.config().privacy.max_grad_norm = ask.clip;
  fed.Start();
  TempDir site_dir;
  config::ClientConfig site = fed.ClientConfigFor("hospital-a");
  site.http.listen = "127.0.0.1:0";
  site.exit_when_done = false;
  site.privacy = {true, 10.0, 1e-5, 0.8, 2.0, site_dir.File("ledger.db")};
  REQUIRE(dp::PrivacyLedger::Initialize(site.privacy.ledger, "hospital-a").ok());
  ClientRunner a(site, Scripted(1.0f, 10));
  ClientRunner b(fed.ClientConfigFor("hospital-b"), Scripted(0.0f, 10));
  const int port = WaitForHttpPort(a.client());
  REQUIRE(fed.coordinator().Wait().ok());
  const std::string metrics = WaitForSample(
      port, absl::StrCat("cohort_client_refusals_total{reason=\"", ask.reason, "\"}"), 1);
  // Counted under its own reason only.
  for (const char* reason : {"not_dp", "noise", "clip", "budget", "ledger", "other"}) {
    if (std::string(reason) == ask.reason) continue;
    INFO(reason);
    CHECK(Sample(metrics, absl::StrCat("cohort_client_refusals_total{reason=\"", reason,
                                       "\"}")) == 0);
  }
  CHECK(Sample(metrics, "cohort_client_rounds_total{outcome=\"completed\"}") == 0);
  CHECK(Sample(metrics, "cohort_client_rounds_total{outcome=\"failed\"}") == 0);
  CHECK(Sample(metrics, "cohort_client_epsilon_spent") == 0);
  CHECK(HttpRequest(port, "/healthz").status == 200);
}

TEST_CASE("A client whose privacy ledger becomes unreadable reports unhealthy and refuses",
          "[client_http][privacy]") {
  Federation fed({"hospital-a", "hospital-b"});
  fed.config().rounds.count = 1;
  fed.config().rounds.min_clients = 2;  // round 1 waits for hospital-b
  fed.config().privacy.enabled = true;
  fed.config().privacy.noise_multiplier = 1.0;
  fed.config().privacy.max_grad_norm = 1.0;
  fed.Start();
  TempDir site_dir;
  config::ClientConfig site = fed.ClientConfigFor("hospital-a");
  site.http.listen = "127.0.0.1:0";
  site.exit_when_done = false;
  site.privacy = {true, 10.0, 1e-5, 0.5, 2.0, site_dir.File("ledger.db")};
  REQUIRE(dp::PrivacyLedger::Initialize(site.privacy.ledger, "hospital-a").ok());
  ClientRunner a(site, Scripted(1.0f, 10));
  // The port opens after the ledger was opened and checked.
  const int port = WaitForHttpPort(a.client());
  CHECK(HttpRequest(port, "/healthz").body == "ok\n");
  {
    // Damage the ledger under the running site: its rounds table disappears.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(site.privacy.ledger.c_str(), &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "DROP TABLE rounds", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  ClientRunner b(fed.ClientConfigFor("hospital-b"), Scripted(0.0f, 10));
  const std::string metrics =
      WaitForSample(port, "cohort_client_refusals_total{reason=\"ledger\"}", 1);
  CHECK(Sample(metrics, "cohort_client_rounds_total{outcome=\"completed\"}") == 0);
  CHECK(Sample(metrics, "cohort_client_training_duration_seconds_count") == 0);
  HttpReply health = HttpRequest(port, "/healthz");
  CHECK(health.status == 503);
  CHECK_THAT(health.body, Catch::StartsWith("privacy ledger unusable: "));
  CHECK_THAT(health.body, Catch::Contains(site.privacy.ledger));
}

}  // namespace cohort::testing
