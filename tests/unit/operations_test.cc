// Unit tests for the coordinator's operational pieces: admin identities from certificates,
// the durable operator settings, the activity record behind the status, the status page's
// escaping and charts, and the round history's proto round trip.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "common/state/round_record_proto.h"
#include "common/state/state_store.h"
#include "common/tls/peer_identity.h"
#include "server/coordinator_metrics.h"
#include "server/federation_activity.h"
#include "server/status_page.h"
#include "tests/support/temp_dir.h"

namespace cohort {
namespace {

using tls::PeerIdentity;

}  // namespace

TEST_CASE("ResolvePeer gives the admin role only to the federation's admin URI", "[tls]") {
  absl::StatusOr<PeerIdentity> admin =
      tls::ResolvePeer("demo", {"spiffe://demo/admin/ops"}, "admin:ops");
  REQUIRE(admin.ok());
  CHECK(admin->role == PeerIdentity::Role::kAdmin);
  CHECK(admin->name == "ops");

  absl::StatusOr<PeerIdentity> site =
      tls::ResolvePeer("demo", {"spiffe://demo/site/hospital-a"}, "hospital-a");
  REQUIRE(site.ok());
  CHECK(site->role == PeerIdentity::Role::kSite);
  CHECK(site->name == "hospital-a");

  // Another federation's admin is not an admin here, nor a site.
  CHECK(tls::ResolvePeer("demo", {"spiffe://other/admin/ops"}, "admin:ops").status().code() ==
        absl::StatusCode::kUnauthenticated);
  // Admin and site in one certificate: refused rather than picking one.
  absl::Status both = tls::ResolvePeer(
      "demo", {"spiffe://demo/admin/ops", "spiffe://demo/site/hospital-a"}, "x").status();
  CHECK(both.code() == absl::StatusCode::kUnauthenticated);
  CHECK(absl::StrContains(both.message(), "admin together with another identity"));
  // A malformed admin name.
  CHECK(tls::ResolvePeer("demo", {"spiffe://demo/admin/Ops Team"}, "x").status().code() ==
        absl::StatusCode::kUnauthenticated);
  CHECK(tls::ResolvePeer("demo", {"spiffe://demo/admin/ops/extra"}, "x").status().code() ==
        absl::StatusCode::kUnauthenticated);
  // The site path refuses an admin certificate (it cannot join as a site).
  CHECK(tls::ResolveSiteId("demo", {"spiffe://demo/admin/ops"}, "admin:ops").status().code() ==
        absl::StatusCode::kUnauthenticated);
}

TEST_CASE("Operator settings are durable, replaceable and removable", "[state]") {
  testing::TempDir dir;
  const std::string path = dir.File("state.db");
  {
    auto store = state::StateStore::Open(path);
    REQUIRE(store.ok());
    CHECK_FALSE((*store)->GetSetting("paused")->has_value());
    REQUIRE((*store)->PutSetting("paused", "first").ok());
    REQUIRE((*store)->PutSetting("paused", "paused by admin 'ops'").ok());
  }
  {
    auto store = state::StateStore::Open(path);
    REQUIRE(store.ok());
    absl::StatusOr<std::optional<std::string>> paused = (*store)->GetSetting("paused");
    REQUIRE(paused.ok());
    REQUIRE(paused->has_value());
    CHECK(**paused == "paused by admin 'ops'");
    REQUIRE((*store)->DeleteSetting("paused").ok());
    CHECK_FALSE((*store)->GetSetting("paused")->has_value());
    REQUIRE((*store)->DeleteSetting("never-set").ok());
  }
}

TEST_CASE("The activity record keeps the last 20 errors and times each round stage",
          "[server]") {
  server::CoordinatorMetrics metrics;
  const absl::Time t0 = absl::FromUnixSeconds(1800000000);
  server::FederationActivity activity(&metrics, t0);
  CHECK(activity.Get().stage == "waiting");
  activity.Enter(1, "train", t0 + absl::Seconds(1));
  activity.Enter(1, "evaluate", t0 + absl::Seconds(4));
  activity.Enter(1, "commit", t0 + absl::Seconds(5));
  activity.Enter(0, server::FederationActivity::kWaiting, t0 + absl::Seconds(5.5));
  for (int i = 0; i < 25; ++i) {
    activity.RecordError(2, "", "error " + std::to_string(i), t0 + absl::Seconds(10 + i));
  }
  activity.RecordDrop(2, "hospital-b", "session lost", t0 + absl::Seconds(40));
  server::FederationActivity::Snapshot now = activity.Get();
  CHECK(now.round == 0);
  CHECK(now.stage == "waiting");
  REQUIRE(now.errors.size() == server::FederationActivity::kMaxErrors);
  CHECK(now.errors.front().message == "error 6");  // the oldest 6 fell off
  CHECK(now.errors.back().site == "hospital-b");
  CHECK(now.drop_reasons.at("hospital-b") == "session lost");

  // train took 3 s, evaluate 1 s, commit 0.5 s; waiting is not a round stage.
  std::map<std::string, std::pair<uint64_t, double>> observed;
  for (const prometheus::MetricFamily& family : metrics.registry().Collect()) {
    if (family.name != "cohort_coordinator_stage_duration_seconds") continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      observed[metric.label.at(0).value] = {metric.histogram.sample_count,
                                            metric.histogram.sample_sum};
    }
  }
  REQUIRE(observed.size() == 3);
  CHECK(observed["train"] == std::make_pair(uint64_t{1}, 3.0));
  CHECK(observed["evaluate"] == std::make_pair(uint64_t{1}, 1.0));
  CHECK(observed["commit"] == std::make_pair(uint64_t{1}, 0.5));
}

TEST_CASE("The status page escapes every name it shows", "[server]") {
  CHECK(server::HtmlEscape("<script>alert('x')</script> & \"q\"") ==
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
  cohort::v1::FederationStatus status;
  status.set_federation("demo<b>");
  status.set_stage("waiting");
  cohort::v1::SiteStatus* site = status.add_sites();
  site->set_site_id("hospital-a");
  site->set_state("offline");
  site->set_last_drop_reason("<img src=x onerror=alert(1)>");
  state::RoundRecord round;
  round.round = 1;
  round.status = "aborted";
  round.reason = "aborted by admin 'ops': <b>bold</b>";
  const std::string page = server::RenderStatusPage(status, {round}, 1e-5);
  CHECK_FALSE(absl::StrContains(page, "<img src=x"));
  CHECK_FALSE(absl::StrContains(page, "<b>bold</b>"));
  CHECK_FALSE(absl::StrContains(page, "demo<b>"));
  CHECK(absl::StrContains(page, "&lt;img src=x onerror=alert(1)&gt;"));
  CHECK_FALSE(absl::StrContains(page, "<script"));  // the page itself has no scripts
}

TEST_CASE("A line chart places its points inside the plot and says when it has none",
          "[server]") {
  CHECK(absl::StrContains(server::SvgLineChart("Accuracy", "accuracy", {}), "no data yet"));
  const std::string svg = server::SvgLineChart(
      "Accuracy", "accuracy", {{"test accuracy", "#2e7d32", {{1, 0.5}, {2, 0.75}, {3, 1.0}}}},
      460, 260);
  CHECK(absl::StrContains(svg, "data-series=\"test accuracy\""));
  // Plot area: x in [56, 448], y in [28, 220]; round 1 at the left edge, round 3 at the right.
  CHECK(absl::StrContains(svg, "points=\"56.0,"));
  CHECK(absl::StrContains(svg, " 448.0,"));
  CHECK(absl::StrContains(svg, ",28.0\"/>"));  // 1.0 is the top of the axis
}

TEST_CASE("A round record survives the Admin API's proto unchanged", "[state]") {
  state::RoundRecord record;
  record.round = 7;
  record.status = "committed";
  record.started_at = absl::FromUnixMillis(1800000000123);
  record.duration_s = 1.5;
  record.participants = {"a", "b"};
  record.dropped = {"c"};
  record.drop_reasons = {{"c", "session lost"}};
  record.site_epsilon = {{"a", state::SiteEpsilon{0.01, 1.1, 100, 0.5}}};
  record.examples = 42;
  record.train_loss = 0.25;
  record.test_accuracy = 0.9;
  record.test_examples = 10;
  record.checkpoint = "checkpoints/round-000007.pt";
  const state::RoundRecord back = state::FromProto(state::ToProto(record));
  CHECK(back.round == record.round);
  CHECK(back.status == record.status);
  CHECK(back.started_at == record.started_at);
  CHECK(back.participants == record.participants);
  CHECK(back.dropped == record.dropped);
  CHECK(back.drop_reasons == record.drop_reasons);
  REQUIRE(back.site_epsilon.count("a") == 1);
  CHECK(back.site_epsilon.at("a").steps == 100);
  CHECK(back.site_epsilon.at("a").epsilon == 0.5);
  CHECK(back.train_loss == record.train_loss);
  CHECK_FALSE(back.test_loss.has_value());  // unset stays unset
  CHECK(back.test_accuracy == record.test_accuracy);
  CHECK(back.checkpoint == record.checkpoint);
}

}  // namespace cohort
