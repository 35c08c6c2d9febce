#ifndef COHORT_SERVER_STATUS_PAGE_H_
#define COHORT_SERVER_STATUS_PAGE_H_

#include <string>
#include <utility>
#include <vector>

#include "cohort/v1/admin.pb.h"
#include "common/state/state_store.h"

namespace cohort::server {

// The coordinator's status page (GET / on the HTTP port): the round and stage in progress,
// each site and its state, the last errors, and plots (inline SVG, no scripts, nothing
// fetched from elsewhere) of test accuracy, train/test loss and each site's epsilon by
// round, plus the recent round history. Refreshes itself every 5 seconds.
std::string RenderStatusPage(const cohort::v1::FederationStatus& status,
                             const std::vector<state::RoundRecord>& rounds, double delta);

// One line of a chart: (x, y) points in x order.
struct ChartSeries {
  std::string name;
  std::string color;  // CSS colour
  std::vector<std::pair<double, double>> points;
};

// A line chart as a standalone <svg> element: axes with about five ticks each, one polyline
// and point markers per series, a legend. An empty chart says "no data yet".
std::string SvgLineChart(const std::string& title, const std::string& y_label,
                         const std::vector<ChartSeries>& series, int width = 460,
                         int height = 260);

// `text` with &, <, >, " and ' escaped for HTML.
std::string HtmlEscape(const std::string& text);

}  // namespace cohort::server

#endif  // COHORT_SERVER_STATUS_PAGE_H_
