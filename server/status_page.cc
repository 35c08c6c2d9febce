#include "server/status_page.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace cohort::server {
namespace {

// A colour per site, stable across refreshes (by position in the sorted site list).
constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                                    "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"};

// "Nice" tick step for a range, about `count` ticks.
double TickStep(double span, int count) {
  if (span <= 0) return 1;
  const double raw = span / count;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (raw <= m * magnitude) return m * magnitude;
  }
  return 10 * magnitude;
}

std::string FormatTick(double v, double step) {
  if (step >= 1 && std::fabs(v - std::round(v)) < 1e-9) return absl::StrFormat("%.0f", v);
  const int digits = std::clamp(static_cast<int>(std::ceil(-std::log10(step))) + 1, 1, 6);
  return absl::StrFormat("%.*f", digits, v);
}

std::string Duration(absl::Duration d) {
  const int64_t s = absl::ToInt64Seconds(d);
  if (s < 60) return absl::StrCat(s, " s");
  if (s < 3600) return absl::StrFormat("%d min %d s", s / 60, s % 60);
  return absl::StrFormat("%d h %d min", s / 3600, (s % 3600) / 60);
}

std::string StateBadge(const std::string& state) {
  static const std::map<std::string, std::string> kColours = {
      {"offline", "#9e9e9e"},  {"idle", "#607d8b"},      {"training", "#1976d2"},
      {"uploading", "#0288d1"}, {"uploaded", "#2e7d32"}, {"evaluating", "#6a1b9a"},
      {"evaluated", "#2e7d32"}, {"dropped", "#c62828"}};
  auto it = kColours.find(state);
  return absl::StrCat("<span class=\"badge\" style=\"background:",
                      it == kColours.end() ? "#607d8b" : it->second, "\">", HtmlEscape(state),
                      "</span>");
}


}  // namespace

std::string HtmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string SvgLineChart(const std::string& title, const std::string& y_label,
                         const std::vector<ChartSeries>& series, int width, int height) {
  const double left = 56, right = 12, top = 28, bottom = 40;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  std::string svg = absl::StrFormat(
      "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"%s\">"
      "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>"
      "<text x=\"%d\" y=\"18\" class=\"title\" text-anchor=\"middle\">%s</text>",
      width, height, width, height, HtmlEscape(title), width, height, width / 2,
      HtmlEscape(title));
  double x_min = INFINITY, x_max = -INFINITY, y_min = INFINITY, y_max = -INFINITY;
  for (const ChartSeries& s : series) {
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x_min = std::min(x_min, x);
      x_max = std::max(x_max, x);
      y_min = std::min(y_min, y);
      y_max = std::max(y_max, y);
    }
  }
  if (!std::isfinite(x_min)) {
    absl::StrAppendFormat(&svg,
                          "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" class=\"empty\">"
                          "no data yet</text></svg>",
                          width / 2, height / 2);
    return svg;
  }
  if (x_max == x_min) {
    x_min -= 1;
    x_max += 1;
  }
  if (y_max == y_min) {
    const double pad = y_max == 0 ? 1 : std::fabs(y_max) * 0.1;
    y_min -= pad;
    y_max += pad;
  }
  const double y_step = TickStep(y_max - y_min, 5);
  y_min = std::floor(y_min / y_step) * y_step;
  y_max = std::ceil(y_max / y_step) * y_step;
  const double x_step = std::max(1.0, std::ceil(TickStep(x_max - x_min, 6)));
  auto px = [&](double x) { return left + (x - x_min) / (x_max - x_min) * plot_w; };
  auto py = [&](double y) { return top + (1 - (y - y_min) / (y_max - y_min)) * plot_h; };

  // Grid, ticks and axis labels.
  for (double y = y_min; y <= y_max + y_step / 2; y += y_step) {
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" class=\"tick\">%s</text>",
                          left, py(y), left + plot_w, py(y), left - 6, py(y) + 4,
                          FormatTick(y, y_step));
  }
  for (double x = std::ceil(x_min / x_step) * x_step; x <= x_max + 1e-9; x += x_step) {
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"axis\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"tick\">%s</text>",
                          px(x), top + plot_h, px(x), top + plot_h + 4, px(x), top + plot_h + 16,
                          FormatTick(x, x_step));
  }
  absl::StrAppendFormat(&svg,
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                        "class=\"frame\"/>"
                        "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"label\">round</text>"
                        "<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" class=\"label\" "
                        "transform=\"rotate(-90 14 %.1f)\">%s</text>",
                        left, top, plot_w, plot_h, left + plot_w / 2, height - 6,
                        top + plot_h / 2, top + plot_h / 2, HtmlEscape(y_label));

  // Series.
  double legend_x = left + 8;
  for (const ChartSeries& s : series) {
    std::vector<std::string> coords;
    std::string markers;
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      coords.push_back(absl::StrFormat("%.1f,%.1f", px(x), py(y)));
      absl::StrAppendFormat(&markers,
                            "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\">"
                            "<title>%s round %g: %g</title></circle>",
                            px(x), py(y), s.color, HtmlEscape(s.name), x, y);
    }
    if (coords.empty()) continue;
    absl::StrAppendFormat(&svg,
                          "<polyline class=\"series\" data-series=\"%s\" fill=\"none\" "
                          "stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>%s",
                          HtmlEscape(s.name), s.color, absl::StrJoin(coords, " "), markers);
    absl::StrAppendFormat(&svg,
                          "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"3\" fill=\"%s\"/>"
                          "<text x=\"%.1f\" y=\"%.1f\" class=\"legend\">%s</text>",
                          legend_x, top + 8, s.color, legend_x + 14, top + 12, HtmlEscape(s.name));
    legend_x += 24 + 6.5 * static_cast<double>(s.name.size());
  }
  svg += "</svg>";
  return svg;
}

std::string RenderStatusPage(const cohort::v1::FederationStatus& status,
                             const std::vector<state::RoundRecord>& rounds, double delta) {
  const absl::Time now = absl::Now();
  std::string html = absl::StrCat(
      "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta http-equiv=\"refresh\" content=\"5\">"
      "<title>cohort: ", HtmlEscape(status.federation()), "</title><style>"
      "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222;"
      "background:#f5f6f8}"
      "h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}"
      ".sub{color:#666;font-size:13px}"
      ".now{font-size:18px;margin:14px 0;padding:12px 16px;background:#fff;border-radius:6px;"
      "border-left:6px solid #1976d2}.now.paused{border-left-color:#f9a825}"
      ".now.done{border-left-color:#2e7d32}"
      "table{border-collapse:collapse;background:#fff;font-size:13px}"
      "th,td{padding:5px 10px;border-bottom:1px solid #e3e3e3;text-align:left}"
      "th{background:#eceff1}td.num{text-align:right;font-variant-numeric:tabular-nums}"
      ".badge{color:#fff;border-radius:10px;padding:1px 8px;font-size:12px}"
      ".charts{display:flex;flex-wrap:wrap;gap:12px}"
      ".chart{border-radius:6px;box-shadow:0 1px 2px rgba(0,0,0,.1)}"
      ".chart .title{font-size:13px;font-weight:600}.chart .tick{font-size:10px;fill:#555}"
      ".chart .label{font-size:11px;fill:#333}.chart .legend{font-size:11px}"
      ".chart .grid{stroke:#eee}.chart .axis{stroke:#999}"
      ".chart .frame{fill:none;stroke:#bbb}.chart .empty{fill:#999;font-size:13px}"
      ".bar{width:320px;height:10px;background:#ddd;border-radius:5px;display:inline-block;"
      "vertical-align:middle;margin-left:8px}.bar>div{height:10px;background:#2e7d32;"
      "border-radius:5px}"
      ".err{color:#b71c1c}"
      "</style></head><body>");
  absl::StrAppend(&html, "<h1>Federation ", HtmlEscape(status.federation()), "</h1>",
                  "<div class=\"sub\">cohort-coordinator ",
                  HtmlEscape(status.coordinator_version()), " &middot; up ",
                  Duration(now - absl::FromUnixMillis(status.started_unix_ms())),
                  " &middot; secure aggregation ",
                  status.secure_aggregation() ? "on" : "off", " &middot; updated ",
                  absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", now, absl::UTCTimeZone()),
                  "</div>");

  // What is happening now.
  const std::string stage = status.stage();
  const absl::Duration in_stage = now - absl::FromUnixMillis(status.stage_started_unix_ms());
  std::string now_text, now_class = "now";
  if (status.paused() && status.current_round() == 0) {
    now_text = absl::StrCat("<b>Paused</b> &middot; ", HtmlEscape(status.pause_reason()));
    now_class += " paused";
  } else if (status.current_round() != 0) {
    now_text = absl::StrCat("<b>Round <span id=\"current-round\">", status.current_round(),
                            "</span></b> &middot; stage <b id=\"stage\">", HtmlEscape(stage),
                            "</b> for ", Duration(in_stage));
    if (status.paused()) {
      absl::StrAppend(&now_text, " &middot; paused after this round: ",
                      HtmlEscape(status.pause_reason()));
    }
  } else if (stage == "done") {
    now_text = "<b>Done</b> &middot; every round is committed";
    now_class += " done";
  } else {
    now_text = absl::StrCat("<b>Waiting</b> for sites to start round ", status.last_round() + 1);
  }
  const double progress =
      status.rounds_target() == 0
          ? 0
          : std::min(1.0, static_cast<double>(status.rounds_committed()) /
                              static_cast<double>(status.rounds_target()));
  absl::StrAppendFormat(&html,
                        "<div class=\"%s\">%s<br><span class=\"sub\">%d of %d rounds committed"
                        "</span><span class=\"bar\"><div style=\"width:%.0f%%\"></div></span>"
                        "</div>",
                        now_class, now_text, status.rounds_committed(), status.rounds_target(),
                        100 * progress);

  // Sites.
  int connected = 0;
  for (const auto& site : status.sites()) connected += site.connected() ? 1 : 0;
  absl::StrAppend(&html, "<h2>Sites (", connected, " of ", status.sites_size(),
                  " connected)</h2><table id=\"sites\"><tr><th>site</th><th>state</th>"
                  "<th>address</th><th>train examples</th><th>test examples</th>"
                  "<th>epsilon (&delta; ", absl::StrFormat("%g", delta),
                  ")</th><th>last dropped because</th></tr>");
  for (const auto& site : status.sites()) {
    absl::StrAppend(
        &html, "<tr><td>", HtmlEscape(site.site_id()), "</td><td>", StateBadge(site.state()),
        "</td><td>", HtmlEscape(site.peer()), "</td><td class=\"num\">",
        site.connected() ? absl::StrCat(site.train_examples()) : "&ndash;",
        "</td><td class=\"num\">", site.connected() ? absl::StrCat(site.test_examples()) : "&ndash;",
        "</td><td class=\"num\">",
        site.has_epsilon() ? absl::StrFormat("%.3f", site.epsilon()) : "&ndash;", "</td><td>",
        HtmlEscape(site.last_drop_reason()), "</td></tr>");
  }
  html += "</table>";

  // Charts from the committed rounds.
  ChartSeries accuracy{"test accuracy", "#2e7d32", {}};
  ChartSeries train_loss{"train loss", "#1976d2", {}};
  ChartSeries test_loss{"test loss", "#d62728", {}};
  std::set<std::string> dp_sites;
  for (const state::RoundRecord& r : rounds) {
    if (r.status != "committed") continue;
    const double x = static_cast<double>(r.round);
    if (r.test_accuracy) accuracy.points.emplace_back(x, *r.test_accuracy);
    if (r.train_loss) train_loss.points.emplace_back(x, *r.train_loss);
    if (r.test_loss) test_loss.points.emplace_back(x, *r.test_loss);
    for (const auto& [site, e] : r.site_epsilon) dp_sites.insert(site);
  }
  std::vector<ChartSeries> epsilon;
  size_t colour = 0;
  for (const std::string& site : dp_sites) {
    ChartSeries s{site, kPalette[colour++ % (sizeof(kPalette) / sizeof(kPalette[0]))], {}};
    for (const state::RoundRecord& r : rounds) {
      if (r.status != "committed") continue;
      if (auto it = r.site_epsilon.find(site); it != r.site_epsilon.end()) {
        s.points.emplace_back(static_cast<double>(r.round), it->second.epsilon);
      }
    }
    epsilon.push_back(std::move(s));
  }
  absl::StrAppend(&html, "<h2>Learning and privacy by round</h2><div class=\"charts\">",
                  SvgLineChart("Test accuracy", "accuracy", {accuracy}),
                  SvgLineChart("Loss", "loss", {train_loss, test_loss}),
                  SvgLineChart(absl::StrFormat("Epsilon spent per site (delta %g)", delta),
                               "epsilon", epsilon),
                  "</div>");

  // Recent rounds.
  absl::StrAppend(&html,
                  "<h2>Recent rounds</h2><table id=\"rounds\"><tr><th>round</th><th>status</th>"
                  "<th>participants</th><th>dropped</th><th>examples</th><th>train loss</th>"
                  "<th>test accuracy</th><th>duration</th><th>note</th></tr>");
  const size_t first = rounds.size() > 15 ? rounds.size() - 15 : 0;
  for (size_t i = rounds.size(); i-- > first;) {
    const state::RoundRecord& r = rounds[i];
    absl::StrAppend(
        &html, "<tr><td class=\"num\">", r.round, "</td><td>", HtmlEscape(r.status),
        "</td><td>", HtmlEscape(absl::StrJoin(r.participants, ", ")), "</td><td>",
        HtmlEscape(absl::StrJoin(r.dropped, ", ")), "</td><td class=\"num\">", r.examples,
        "</td><td class=\"num\">",
        r.train_loss ? absl::StrFormat("%.4f", *r.train_loss) : "&ndash;",
        "</td><td class=\"num\">",
        r.test_accuracy ? absl::StrFormat("%.4f", *r.test_accuracy) : "&ndash;",
        "</td><td class=\"num\">", absl::StrFormat("%.1f s", r.duration_s), "</td><td>",
        HtmlEscape(r.reason), "</td></tr>");
  }
  html += "</table>";

  // Errors.
  html += "<h2>Last errors</h2>";
  if (status.last_errors().empty()) {
    html += "<p class=\"sub\">none</p>";
  } else {
    html += "<table id=\"errors\"><tr><th>time (UTC)</th><th>round</th><th>site</th>"
            "<th>message</th></tr>";
    for (int i = status.last_errors_size(); i-- > 0;) {
      const auto& e = status.last_errors(i);
      absl::StrAppend(&html, "<tr><td>",
                      absl::FormatTime("%H:%M:%S", absl::FromUnixMillis(e.unix_ms()),
                                       absl::UTCTimeZone()),
                      "</td><td class=\"num\">", e.round() == 0 ? "" : absl::StrCat(e.round()),
                      "</td><td>", HtmlEscape(e.site_id()), "</td><td class=\"err\">",
                      HtmlEscape(e.message()), "</td></tr>");
    }
    html += "</table>";
  }
  html += "<p class=\"sub\">JSON: <a href=\"/api/status\">/api/status</a> &middot; "
          "<a href=\"/api/rounds\">/api/rounds</a> &middot; <a href=\"/metrics\">/metrics</a>"
          "</p></body></html>\n";
  return html;
}

}  // namespace cohort::server
