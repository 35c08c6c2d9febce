#include "common/dp/rdp.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

// How A_alpha is computed (0 < q < 1, finite sigma). With L = log((1 - q) / q) and
//   P(x) = (x^2 - x) / (2 sigma^2) - x L = ((x - z0)^2 - z0^2) / (2 sigma^2),
//   z0   = sigma^2 L + 1/2 (where q exp((2z - 1) / (2 sigma^2)) equals 1 - q),
// E[exp(k (2z - 1) / (2 sigma^2))] = exp((k^2 - k) / (2 sigma^2)) for z ~ N(0, sigma^2), and
// (1-q)^(alpha-k) q^k = (1-q)^alpha exp(-k L), so:
//
// Integer alpha, binomial expansion of the integrand:
//   A_alpha = (1-q)^alpha sum_{k=0..alpha} C(alpha, k) exp(P(k)).
//
// Fractional alpha (section 3.3 of the paper): split the integral at z0 and expand
// ((1 - q) + x)^alpha binomially in the smaller summand on each side:
//   A_alpha = sum_i C(alpha, i) (1-q)^(alpha-i) q^i e^((i^2-i) / (2 sigma^2)) Phi((z0-i) / sigma)
//           + sum_i C(alpha, i) (1-q)^i q^(alpha-i) e^((j^2-j) / (2 sigma^2)) Phi((j-z0) / sigma)
//           = (1-q)^alpha sum_i C(alpha, i) (exp(lower(i)) + exp(upper(alpha - i))),
//   lower(x) = P(x) + log Phi((z0 - x) / sigma),  upper(x) = P(x) + log Phi((x - z0) / sigma),
// j = alpha - i. lower(i) does not depend on alpha; upper(x) is shared by orders that differ
// by an integer. Phi is the standard normal CDF.
//
// Invariants the fractional code relies on:
// 1. lower(i) <= 0 for every i >= 0, and upper(alpha - i) <= 0 for every i > alpha + 1:
//    exp(P(x)) Phi(-t) = exp(-z0^2 / (2 sigma^2)) G(t) with G(t) = e^(t^2/2) Phi(-t), which
//    is <= 1/2 for t >= 0, while for t < 0 the exponent is at most P(x) < 0 (x lies between
//    0 and 2 z0 there). So the tail terms can be handled as plain doubles.
// 2. For i <= i0 = floor(alpha) + 1 every C(alpha, i) is positive (the head, summed in log
//    space). From i0 + 1 on the signs alternate and the rest of both series is
//    -sum_k (-1)^k a_k, a_k = |C(alpha, i)| (exp(lower(i)) + exp(upper(alpha - i))),
//    i = i0 + 1 + k, and a_k is a Hausdorff moment sequence (the integral of x^k over a
//    positive measure on [0, 1]): |C(alpha, i)| = B(i - alpha, alpha + 1) /
//    (|Gamma(-alpha)| Gamma(alpha + 1)) is a beta integral, G((i - c) / sigma) =
//    (2 pi)^(-1/2) integral_0^inf e^(-u^2/2 + c u / sigma) (e^(-u / sigma))^i du, and sums and
//    products of moment sequences are moment sequences. So the alternating-series
//    acceleration of SumAlternating applies with a rigorous error bound, and the tail costs
//    about 20 terms however slowly a_k decays (only like k^-(alpha + 2) for q near 1/2, where
//    plain summation to double precision needs up to millions of terms).

namespace cohort::dp {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kMaxOrder = 10000;

// The tail is summed to a relative error below e^-39 (about 1.2e-17) of the head, i.e. below
// double precision; SumAlternating with n terms errs by at most 2 a_0 / (3 + sqrt(8))^n.
constexpr double kLogTailTolerance = -39.0;
const double kLogCrvzRate = std::log(3 + std::sqrt(8.0));
// Enough for any a_0 <= the head: n <= ceil((log(2) + 39) / log(5.83)) = 23.
constexpr int kMaxTailTerms = 24;

// log(Phi(y)), accurate in both tails: log1p of the upper tail for y > 0, log(erfc) while
// erfc is a normal double, the asymptotic series
// Phi(y) = phi(y) / |y| (1 - 1/y^2 + 3/y^4 - 15/y^6 + ...) below that (at y <= -37 the first
// omitted term is below 1e-20).
double LogNormalCdf(double y) {
  if (y > 0) return std::log1p(-0.5 * std::erfc(y * M_SQRT1_2));
  if (y > -37) return std::log(0.5 * std::erfc(-y * M_SQRT1_2));
  const double inv_y2 = 1.0 / (y * y);
  double series = 1.0;
  double term = 1.0;
  for (int n = 1; n <= 8; ++n) {
    term *= -(2 * n - 1) * inv_y2;
    series += term;
  }
  return -0.5 * y * y - std::log(-y) - 0.5 * std::log(2 * M_PI) + std::log(series);
}

// log(sum_k exp(log_terms[k])), written as max + log1p(rest) so that a sum close to
// exp(max) keeps its small excess. Terms below e^-45 times the largest are skipped: with at
// most a few hundred terms they change the sum by less than 1e-17 relative.
double LogSumExp(const std::vector<double>& log_terms) {
  const size_t arg_max = std::max_element(log_terms.begin(), log_terms.end()) - log_terms.begin();
  const double max = log_terms[arg_max];
  if (!std::isfinite(max)) return max;
  double rest = 0;
  for (size_t k = 0; k < log_terms.size(); ++k) {
    const double d = log_terms[k] - max;
    if (k != arg_max && d > -45) rest += std::exp(d);
  }
  return max + std::log1p(rest);
}

// sum_{k >= 0} (-1)^k a_k from a_0 .. a_{n-1}, by Algorithm 1 of Cohen, Rodriguez Villegas
// and Zagier, "Convergence acceleration of alternating series" (Experiment. Math. 9, 2000).
// For a Hausdorff moment sequence a_k the error is at most 2 S / (3 + sqrt(8))^n, S being
// the sum (<= a_0); the weights satisfy |c| / d <= 1, so the evaluation is stable.
double SumAlternating(const double* a, int n) {
  double d = std::pow(3 + std::sqrt(8.0), n);
  d = (d + 1 / d) / 2;
  double b = -1;
  double c = -d;
  double sum = 0;
  for (int k = 0; k < n; ++k) {
    c = b - c;
    sum += c * a[k];
    b = (k + n) * static_cast<double>(k - n) * b / ((k + 0.5) * (k + 1));
  }
  return sum / d;
}

// Rounds x to a multiple of 2^-48 (for |x| < 32; larger values already are multiples of
// 2^-47). Orders that differ by an integer, like 1.3 and 2.3, give points alpha - i that
// differ by an ulp or two; rounding lets them share one evaluation of upper(x). The shift,
// at most 2^-49 (1.8e-15), is of the order of the rounding in alpha - i itself.
double CanonicalPoint(double x) { return std::ldexp(std::nearbyint(std::ldexp(x, 48)), -48); }

bool IsInteger(double alpha) { return alpha == std::floor(alpha); }

}  // namespace

// Everything about the orders that does not depend on (q, sigma).
struct RdpCalculator::Tables {
  struct Order {
    double alpha = 0;
    bool integer = false;  // summed by the binomial expansion
    int64_t i0 = 0;        // fractional: the last head index, floor(alpha) + 1
    // Integer: log C(alpha, k) for k = 0..alpha. Fractional: log |C(alpha, i)| for
    // i = 0..i0 + 1 (-inf once the coefficients vanish, for an integer alpha).
    std::vector<double> log_coef;
    // Fractional: |C(alpha, i0 + 1 + k)| / |C(alpha, i0 + 1)| for k < kMaxTailTerms; empty
    // when the series are finite.
    std::vector<double> tail_ratio;
    // Fractional: index in upper_points of alpha - i, for i = 0..i0 + kMaxTailTerms.
    std::vector<int32_t> upper_slot;
  };
  std::vector<Order> orders;
  std::vector<double> upper_points;  // distinct canonical points of the upper series
  int64_t lower_size = 0;            // lower(i) is needed for i < lower_size
};

namespace {

using Tables = RdpCalculator::Tables;

// `fractional_only` routes integer orders through the fractional series too (for tests).
std::shared_ptr<const Tables> BuildTables(absl::Span<const double> orders, bool fractional_only) {
  auto tables = std::make_shared<Tables>();
  std::map<double, int32_t> slots;  // canonical point -> index in upper_points
  for (double alpha : orders) {
    Tables::Order order;
    order.alpha = alpha;
    order.integer = IsInteger(alpha) && !fractional_only;
    if (order.integer) {
      const int64_t n = static_cast<int64_t>(alpha);
      long double log_c = 0;  // long double: the recurrence runs over up to 10^4 steps
      for (int64_t k = 0; k <= n; ++k) {
        order.log_coef.push_back(static_cast<double>(log_c));
        log_c += std::log(static_cast<long double>(n - k) / (k + 1));
      }
    } else {
      order.i0 = static_cast<int64_t>(std::floor(alpha)) + 1;
      long double log_c = 0;
      bool vanished = false;
      for (int64_t i = 0; i <= order.i0 + 1; ++i) {
        order.log_coef.push_back(vanished ? -std::numeric_limits<double>::infinity()
                                          : static_cast<double>(log_c));
        // C(alpha, i + 1) = C(alpha, i) (alpha - i) / (i + 1).
        const long double factor = static_cast<long double>(alpha) - i;
        if (factor == 0) vanished = true;
        if (!vanished) log_c += std::log(std::fabs(factor) / (i + 1));
      }
      if (!vanished) {
        long double ratio = 1;
        for (int64_t k = 0; k < kMaxTailTerms; ++k) {
          order.tail_ratio.push_back(static_cast<double>(ratio));
          const int64_t i = order.i0 + 1 + k;
          ratio *= std::fabs(static_cast<long double>(alpha) - i) / (i + 1);
        }
      }
      for (int64_t i = 0; i <= order.i0 + kMaxTailTerms; ++i) {
        const double x = CanonicalPoint(alpha - static_cast<double>(i));
        auto [it, inserted] = slots.emplace(x, static_cast<int32_t>(tables->upper_points.size()));
        if (inserted) tables->upper_points.push_back(x);
        order.upper_slot.push_back(it->second);
      }
      tables->lower_size = std::max(tables->lower_size, order.i0 + kMaxTailTerms + 1);
    }
    tables->orders.push_back(std::move(order));
  }
  return tables;
}

// The terms of one (q, sigma) pair, 0 < q < 1 and finite sigma, evaluated on demand and
// shared by all orders of one Compute. NaN marks a value not computed yet.
class PairTerms {
 public:
  PairTerms(double q, double sigma, const Tables& tables)
      : tables_(tables),
        sigma_(sigma),
        inv_two_sigma2_(0.5 / (sigma * sigma)),
        log_1mq_(std::log1p(-q)),
        log_ratio_(std::log1p(-q) - std::log(q)),
        z0_(sigma * sigma * log_ratio_ + 0.5),
        lower_log_(tables.lower_size, kNaN),
        lower_exp_(tables.lower_size, kNaN),
        upper_log_(tables.upper_points.size(), kNaN),
        upper_exp_(tables.upper_points.size(), kNaN) {}

  // log(1 - q): log(A_alpha) is alpha log(1 - q) plus the log of the sums.
  double log_1mq() const { return log_1mq_; }

  double Poly(double x) const { return (x * x - x) * inv_two_sigma2_ - x * log_ratio_; }

  double LowerLog(int64_t i) {
    double& v = lower_log_[i];
    if (std::isnan(v)) {
      const double x = static_cast<double>(i);
      v = Poly(x) + LogNormalCdf((z0_ - x) / sigma_);
    }
    return v;
  }
  double LowerExp(int64_t i) {
    double& v = lower_exp_[i];
    if (std::isnan(v)) v = std::exp(LowerLog(i));
    return v;
  }
  double UpperLog(int32_t slot) {
    double& v = upper_log_[slot];
    if (std::isnan(v)) {
      const double x = tables_.upper_points[slot];
      v = Poly(x) + LogNormalCdf((x - z0_) / sigma_);
    }
    return v;
  }
  double UpperExp(int32_t slot) {
    double& v = upper_exp_[slot];
    if (std::isnan(v)) v = std::exp(UpperLog(slot));
    return v;
  }

 private:
  const Tables& tables_;
  const double sigma_;
  const double inv_two_sigma2_;
  const double log_1mq_;    // log(1 - q)
  const double log_ratio_;  // L = log((1 - q) / q)
  const double z0_;
  std::vector<double> lower_log_;  // lower(i)
  std::vector<double> lower_exp_;  // exp(lower(i)), <= 1 by invariant 1
  std::vector<double> upper_log_;  // upper(x) at upper_points
  std::vector<double> upper_exp_;  // exp(upper(x)), used only in the tail where it is <= 1
};

// log(A_alpha) of an integer order.
double IntegerLogA(const Tables::Order& order, PairTerms& terms, std::vector<double>& scratch) {
  scratch.clear();
  for (size_t k = 0; k < order.log_coef.size(); ++k) {
    scratch.push_back(order.log_coef[k] + terms.Poly(static_cast<double>(k)));
  }
  return order.alpha * terms.log_1mq() + LogSumExp(scratch);
}

// log(A_alpha) of a fractional order (see the comment at the top).
double FractionalLogA(const Tables::Order& order, PairTerms& terms, std::vector<double>& scratch) {
  scratch.clear();
  for (int64_t i = 0; i <= order.i0; ++i) {
    scratch.push_back(order.log_coef[i] + terms.LowerLog(i));
    scratch.push_back(order.log_coef[i] + terms.UpperLog(order.upper_slot[i]));
  }
  const double log_head = LogSumExp(scratch);
  const double log_a = order.alpha * terms.log_1mq() + log_head;
  if (order.tail_ratio.empty()) return log_a;  // integer alpha: the series are finite

  // a_k relative to the head: scale * tail_ratio[k] * (exp(lower) + exp(upper)). The tail
  // sum is below a_0 and the acceleration error below 2 a_0 / 5.83^n: pick the n that
  // brings it under the tolerance.
  const double scale = std::exp(order.log_coef[order.i0 + 1] - log_head);
  auto a = [&](int64_t k) {
    const int64_t i = order.i0 + 1 + k;
    return scale * order.tail_ratio[k] * (terms.LowerExp(i) + terms.UpperExp(order.upper_slot[i]));
  };
  const double a0 = a(0);
  const double log_error = std::log(2 * a0) - kLogTailTolerance;
  if (!(log_error > 0)) return log_a;  // the whole tail is below the tolerance
  const int n = std::min(kMaxTailTerms, static_cast<int>(std::ceil(log_error / kLogCrvzRate)));
  double tail[kMaxTailTerms];
  tail[0] = a0;
  for (int k = 1; k < n; ++k) tail[k] = a(k);
  return log_a + std::log1p(-SumAlternating(tail, n));
}

std::vector<double> ComputeRdp(const Tables& tables, double q, double sigma) {
  std::vector<double> rdp(tables.orders.size(), 0.0);
  if (q == 0 || std::isinf(sigma)) return rdp;
  if (q == 1) {
    for (size_t k = 0; k < rdp.size(); ++k) rdp[k] = tables.orders[k].alpha / (2 * sigma * sigma);
    return rdp;
  }
  PairTerms terms(q, sigma, tables);
  std::vector<double> scratch;
  for (size_t k = 0; k < rdp.size(); ++k) {
    const Tables::Order& order = tables.orders[k];
    const double log_a =
        order.integer ? IntegerLogA(order, terms, scratch) : FractionalLogA(order, terms, scratch);
    rdp[k] = log_a / (order.alpha - 1);
  }
  return rdp;
}

}  // namespace

const std::vector<double>& DefaultOrders() {
  static const std::vector<double>* const kOrders = [] {
    auto* orders = new std::vector<double>;
    for (int x = 1; x <= 99; ++x) orders->push_back(1.0 + x / 10.0);
    for (int a = 12; a <= 63; ++a) orders->push_back(a);
    return orders;
  }();
  return *kOrders;
}

absl::StatusOr<RdpCalculator> RdpCalculator::Create(absl::Span<const double> orders) {
  for (double alpha : orders) {
    if (!(alpha > 1 && alpha <= kMaxOrder)) {
      return absl::InvalidArgumentError(
          absl::StrCat("RDP order alpha must be in (1, ", kMaxOrder, "]; got ", alpha));
    }
  }
  return RdpCalculator(std::vector<double>(orders.begin(), orders.end()),
                       BuildTables(orders, /*fractional_only=*/false));
}

const RdpCalculator& RdpCalculator::Default() {
  static const RdpCalculator* const kDefault = new RdpCalculator(*Create(DefaultOrders()));
  return *kDefault;
}

absl::StatusOr<std::vector<double>> RdpCalculator::Compute(double q, double sigma) const {
  if (!(q >= 0 && q <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("sample rate q must be in [0, 1]; got ", q));
  }
  if (!(sigma > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("noise multiplier sigma must be positive; got ", sigma));
  }
  return ComputeRdp(*tables_, q, sigma);
}

absl::StatusOr<std::vector<double>> SampledGaussianRdp(double q, double sigma,
                                                       absl::Span<const double> orders) {
  absl::StatusOr<RdpCalculator> calculator = RdpCalculator::Create(orders);
  if (!calculator.ok()) return calculator.status();
  return calculator->Compute(q, sigma);
}

absl::StatusOr<double> SampledGaussianRdp(double q, double sigma, double alpha) {
  absl::StatusOr<std::vector<double>> rdp =
      SampledGaussianRdp(q, sigma, absl::MakeConstSpan(&alpha, 1));
  if (!rdp.ok()) return rdp.status();
  return rdp->front();
}

namespace internal {

double IntegerOrderRdp(double q, double sigma, int64_t alpha) {
  const double a = static_cast<double>(alpha);
  return ComputeRdp(*BuildTables(absl::MakeConstSpan(&a, 1), false), q, sigma).front();
}

double FractionalOrderRdp(double q, double sigma, double alpha) {
  return ComputeRdp(*BuildTables(absl::MakeConstSpan(&alpha, 1), true), q, sigma).front();
}

}  // namespace internal

}  // namespace cohort::dp
