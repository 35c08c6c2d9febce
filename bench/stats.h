#ifndef COHORT_BENCH_STATS_H_
#define COHORT_BENCH_STATS_H_

#include <algorithm>
#include <vector>

namespace cohort::bench {

// The median of repeated measurements (robust to the odd slow run on a noisy machine).
inline double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  if (n == 0) return 0;
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

}  // namespace cohort::bench

#endif  // COHORT_BENCH_STATS_H_
