#include "common/data/split.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace cohort::data {
namespace {

// Cuts `rows` into consecutive pieces proportional to `weights` (largest remainder). Ties in
// the remainder go to the site holding the fewest rows so far, so that small classes do not
// always land on the same sites and leave others empty.
void Deal(const std::vector<int64_t>& rows, const std::vector<double>& weights,
          std::vector<std::vector<int64_t>>* out) {
  const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  std::vector<size_t> counts(weights.size());
  std::vector<size_t> order(weights.size());
  std::vector<double> remainder(weights.size());
  size_t assigned = 0;
  for (size_t s = 0; s < weights.size(); ++s) {
    double exact = rows.size() * weights[s] / total;
    counts[s] = static_cast<size_t>(std::floor(exact));
    assigned += counts[s];
    remainder[s] = exact - counts[s];
    order[s] = s;
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    constexpr double kTie = 1e-9;
    if (std::abs(remainder[a] - remainder[b]) > kTie) return remainder[a] > remainder[b];
    return (*out)[a].size() + counts[a] < (*out)[b].size() + counts[b];
  });
  for (size_t i = 0; assigned < rows.size(); ++i, ++assigned) counts[order[i]]++;
  size_t next = 0;
  for (size_t s = 0; s < weights.size(); ++s) {
    for (size_t k = 0; k < counts[s]; ++k) (*out)[s].push_back(rows[next++]);
  }
}

}  // namespace

absl::StatusOr<PartitionScheme> ParsePartitionScheme(const std::string& text) {
  PartitionScheme scheme;
  if (text == "iid") {
    scheme.kind = PartitionScheme::Kind::kIid;
  } else if (text == "label-skew") {
    scheme.kind = PartitionScheme::Kind::kLabelSkew;
  } else if (text == "quantity-skew") {
    scheme.kind = PartitionScheme::Kind::kQuantitySkew;
  } else if (absl::StartsWith(text, "dirichlet:")) {
    scheme.kind = PartitionScheme::Kind::kDirichlet;
    if (!absl::SimpleAtod(text.substr(10), &scheme.alpha) || !(scheme.alpha > 0) ||
        !std::isfinite(scheme.alpha)) {
      return absl::InvalidArgumentError(
          absl::StrCat("scheme '", text, "': ALPHA must be a positive number, e.g. dirichlet:0.5"));
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown scheme '", text, "' (expected iid, label-skew, dirichlet:ALPHA, quantity-skew)"));
  }
  return scheme;
}

Holdout StratifiedHoldout(const std::vector<int64_t>& labels, double fraction, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::map<int64_t, std::vector<int64_t>> by_label;
  for (size_t i = 0; i < labels.size(); ++i) by_label[labels[i]].push_back(i);
  Holdout out;
  for (auto& [label, rows] : by_label) {
    std::shuffle(rows.begin(), rows.end(), rng);
    size_t n = static_cast<size_t>(std::llround(fraction * rows.size()));
    if (rows.size() >= 2) n = std::clamp<size_t>(n, 1, rows.size() - 1);
    out.held_out.insert(out.held_out.end(), rows.begin(), rows.begin() + n);
    out.kept.insert(out.kept.end(), rows.begin() + n, rows.end());
  }
  std::sort(out.held_out.begin(), out.held_out.end());
  std::sort(out.kept.begin(), out.kept.end());
  return out;
}

absl::StatusOr<std::vector<std::vector<int64_t>>> PartitionRows(
    const std::vector<int64_t>& labels, int sites, const PartitionScheme& scheme,
    uint64_t seed) {
  if (sites < 1) return absl::InvalidArgumentError("need at least one site");
  if (labels.size() < static_cast<size_t>(sites)) {
    return absl::InvalidArgumentError(absl::StrCat("only ", labels.size(), " rows for ", sites,
                                                   " sites"));
  }
  std::mt19937_64 rng(seed);
  std::map<int64_t, std::vector<int64_t>> by_label;
  for (size_t i = 0; i < labels.size(); ++i) by_label[labels[i]].push_back(i);
  for (auto& [label, rows] : by_label) std::shuffle(rows.begin(), rows.end(), rng);

  std::vector<std::vector<int64_t>> out(sites);
  std::vector<double> size_weights(sites, 1.0);
  if (scheme.kind == PartitionScheme::Kind::kQuantitySkew) {
    std::uniform_real_distribution<double> uniform(0.2, 1.0);
    for (double& w : size_weights) w = uniform(rng);
  }
  int class_index = 0;
  for (auto& [label, rows] : by_label) {
    std::vector<double> weights(sites, 1.0);
    switch (scheme.kind) {
      case PartitionScheme::Kind::kIid:
        break;
      case PartitionScheme::Kind::kQuantitySkew:
        weights = size_weights;
        break;
      case PartitionScheme::Kind::kLabelSkew:
        for (int s = 0; s < sites; ++s) weights[s] = 1.0 + 2.0 * ((s + class_index) % sites);
        break;
      case PartitionScheme::Kind::kDirichlet: {
        std::gamma_distribution<double> gamma(scheme.alpha, 1.0);
        for (double& w : weights) w = gamma(rng) + 1e-12;
        break;
      }
    }
    Deal(rows, weights, &out);
    ++class_index;
  }
  for (int s = 0; s < sites; ++s) {
    if (out[s].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "site ", s, " received no rows; use fewer sites or a larger alpha"));
    }
    std::shuffle(out[s].begin(), out[s].end(), rng);
  }
  return out;
}

}  // namespace cohort::data
