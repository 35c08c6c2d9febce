#ifndef COHORT_COMMON_SECAGG_NEIGHBORHOOD_H_
#define COHORT_COMMON_SECAGG_NEIGHBORHOOD_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cohort::secagg {

// Who shares secrets with whom, and how many shares reconstruct a secret.
//
// Small cohorts use the complete graph (every site masks with every other). Large cohorts
// use a random k-regular Harary graph (Bell et al., CCS 2020): the sites are placed on a
// ring in an order drawn from the round's graph seed, and each is joined to the k/2 nearest
// on either side. A site's secrets are shared among its k neighbours and itself (k + 1
// holders). The Shamir threshold t is always more than half the holders (2t > k + 1): a
// site reveals, for each peer, either its self-mask share or its masking-key share, never
// both, so a coordinator cannot collect t shares of both secrets of one site without the
// help of 2t - (k + 1) colluding holders.
struct GraphParameters {
  int cohort_size = 0;
  int degree = 0;      // k; cohort_size - 1 for the complete graph
  int threshold = 0;   // t
  // Holders of one site's secrets that may drop (at any stage) with the secrets still
  // recoverable: k - t for the complete graph's adversarial guarantee (a dropped site's
  // own share is lost with it).
  int tolerated_neighbour_dropouts = 0;
  bool complete = true;
};

// The smallest-degree graph that survives `dropout_tolerance` (a fraction of the cohort in
// [0, 0.5)), with the largest threshold that still does:
//  - complete graph: D = min(floor(tolerance * n), n - (floor(n / 2) + 1)) and t = n - D,
//    which survives D dropouts whatever sites drop;
//  - Harary graph, used when it needs fewer than n - 1 neighbours: the smallest even k with
//    t = k - d and 2t > k + 1, where d is the smallest number of dropped neighbours such
//    that, if each site drops independently with probability `dropout_tolerance`, the
//    chance that any of the n neighbourhoods loses more than d is below 2^-20.
// InvalidArgument for fewer than 3 sites (with 2, each learns the other's update from the
// sum) or a tolerance outside [0, 0.5).
absl::StatusOr<GraphParameters> ChooseGraphParameters(int cohort_size, double dropout_tolerance);

// Checks parameters received from a coordinator: 1 <= k <= n - 1, t <= k + 1, 2t > k + 1,
// and a Harary degree is even. A site refuses to take part otherwise.
absl::Status ValidateGraphParameters(int cohort_size, int degree, int threshold);

// The neighbours of cohort position `index`, ascending. Complete graph when
// degree == cohort_size - 1; otherwise the Harary graph over the permutation drawn from
// `graph_seed` (32 bytes, SHA-256 in counter mode). Every site computes the same graph.
std::vector<int> Neighbours(int cohort_size, int degree, const std::string& graph_seed,
                            int index);

}  // namespace cohort::secagg

#endif  // COHORT_COMMON_SECAGG_NEIGHBORHOOD_H_
