// bench_rdp_interpolation: how well polynomial interpolation of log(RDP) on a uniform grid
// reproduces the exact RDP, along one line of the (log q, log sigma) plane.
//
// A table-driven fast path for the accountant would store the exact RDP vector (151 orders)
// at grid nodes and interpolate log(RDP) between them. This tool measures what such a table
// would need: it evaluates the exact path (RdpCalculator::Default()) at the nodes of a line
// (constant sigma with log q on a grid over [log 0.001, 0], or constant q with log sigma over
// [log 0.5, log 4]), interpolates with a Lagrange polynomial of the given degree (centred
// stencil, shifted at the ends; the sigma line extends the grid past both ends) and prints the
// worst relative error over all orders at the cell midpoints, where interpolation error peaks.
//
// Example: bench_rdp_interpolation --along sigma --q 0.001 --spacing 0.001 --degree 11
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/dp/rdp.h"

namespace cohort::bench {
namespace {

// Lagrange weights at `x` (in node units) for nodes 0..degree.
std::vector<double> LagrangeWeights(int degree, double x) {
  std::vector<double> weights(degree + 1);
  for (int i = 0; i <= degree; ++i) {
    double w = 1;
    for (int j = 0; j <= degree; ++j) {
      if (j != i) w *= (x - j) / (i - j);
    }
    weights[i] = w;
  }
  return weights;
}

}  // namespace
}  // namespace cohort::bench

int main(int argc, char** argv) {
  using namespace cohort;  // NOLINT: a benchmark driver
  CLI::App app{"bench_rdp_interpolation: error of interpolating log(RDP) along a grid line"};
  std::string along = "q";
  double q = 0.001;
  double sigma = 1.0;
  double spacing = 0.01;
  int degree = 7;
  app.add_option("--along", along, "Grid direction: q (log q at fixed sigma) or sigma")
      ->check(CLI::IsMember({"q", "sigma"}));
  app.add_option("--q", q, "Sample rate of a sigma line")->check(CLI::Range(1e-6, 1.0));
  app.add_option("--sigma", sigma, "Noise multiplier of a q line")->check(CLI::Range(0.1, 100.0));
  app.add_option("--spacing", spacing, "Grid spacing in log q or log sigma")
      ->check(CLI::Range(1e-5, 1.0));
  app.add_option("--degree", degree, "Degree of the Lagrange polynomial")->check(CLI::Range(1, 15));
  CLI11_PARSE(app, argc, argv);

  const bool along_q = along == "q";
  const double lo = along_q ? std::log(0.001) : std::log(0.5);
  const double hi = along_q ? 0.0 : std::log(4.0);
  const int cells = static_cast<int>(std::ceil((hi - lo) / spacing));
  const double h = (hi - lo) / cells;
  // q cannot exceed 1, so a q line ends at q = 1; a sigma line has `degree` extra nodes on
  // each side so that every stencil is centred.
  const int extra_lo = degree;
  const int extra_hi = along_q ? 0 : degree;
  auto exact_log = [&](double coordinate) {
    const double x = std::exp(coordinate);
    std::vector<double> rdp = *dp::RdpCalculator::Default().Compute(along_q ? std::min(x, 1.0) : q,
                                                                   along_q ? sigma : x);
    for (double& r : rdp) r = std::log(r);
    return rdp;
  };
  std::vector<std::vector<double>> nodes;
  for (int j = -extra_lo; j <= cells + extra_hi; ++j) nodes.push_back(exact_log(lo + j * h));
  const int last = static_cast<int>(nodes.size()) - 1;

  double worst = 0;
  double worst_at = 0;
  double worst_order = 0;
  for (int j = 0; j < cells; ++j) {
    const double mid = lo + (j + 0.5) * h;
    const std::vector<double> exact = exact_log(mid);
    const int cell = j + extra_lo;  // nodes cell and cell + 1 bracket the midpoint
    const int start = std::clamp(cell - (degree - 1) / 2, 0, last - degree);
    const std::vector<double> w = bench::LagrangeWeights(degree, cell + 0.5 - start);
    for (size_t k = 0; k < exact.size(); ++k) {
      double log_rdp = 0;
      for (int i = 0; i <= degree; ++i) log_rdp += w[i] * nodes[start + i][k];
      const double error = std::fabs(std::expm1(log_rdp - exact[k]));
      if (error > worst) {
        worst = error;
        worst_at = std::exp(mid);
        worst_order = dp::DefaultOrders()[k];
      }
    }
  }
  std::printf("%s line (%s = %g), spacing %.5f, degree %d, %d nodes: worst relative error %.3g"
              " at %s = %.6g, order %g\n",
              along_q ? "log q" : "log sigma", along_q ? "sigma" : "q", along_q ? sigma : q, h,
              degree, last + 1, worst, along_q ? "q" : "sigma", worst_at, worst_order);
  return 0;
}
