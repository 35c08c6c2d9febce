// The SecAgg+ state machines (common/secagg), all parties in one process: exact sums under
// every tolerated dropout pattern, aborts beyond tolerance, and the sites' defences against
// a malicious coordinator.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <random>
#include <set>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/pki.h"
#include "common/secagg/local_round.h"
#include "common/secagg/neighborhood.h"
#include "common/secagg/secagg_client.h"
#include "common/secagg/secagg_server.h"
#include "common/secagg/secret.h"

namespace cohort::secagg {
namespace {

constexpr char kFederation[] = "secagg-test";
constexpr size_t kVectorLength = 13;

// A federation CA and site identities, generated once per test binary.
class Identities {
 public:
  static Identities& Get() {
    static Identities* identities = new Identities();
    return *identities;
  }
  const crypto::PemIdentity& ca() const { return ca_; }
  SiteCredentials Site(int i) {
    const std::string id = absl::StrCat("site-", i);
    auto it = sites_.find(id);
    if (it == sites_.end()) it = sites_.emplace(id, Issue(ca_, id)).first;
    return SiteCredentials{kFederation, id, it->second.cert_pem, it->second.key_pem, ca_.cert_pem};
  }
  // An identity from a different CA (not the federation's).
  SiteCredentials Foreign(int i) {
    static crypto::PemIdentity* other = new crypto::PemIdentity(
        *crypto::CreateCertificateAuthority("other-ca", absl::Now() - absl::Hours(1),
                                            absl::Now() + absl::Hours(48)));
    const std::string id = absl::StrCat("site-", i);
    crypto::PemIdentity identity = Issue(*other, id);
    return SiteCredentials{kFederation, id, identity.cert_pem, identity.key_pem, ca_.cert_pem};
  }

 private:
  Identities()
      : ca_(*crypto::CreateCertificateAuthority("secagg-test-ca", absl::Now() - absl::Hours(1),
                                                absl::Now() + absl::Hours(48))) {}
  static crypto::PemIdentity Issue(const crypto::PemIdentity& ca, const std::string& id) {
    crypto::CertificateSpec spec;
    spec.common_name = id;
    spec.uris = {crypto::SiteIdentityUri(kFederation, id)};
    spec.not_before = absl::Now() - absl::Hours(1);
    spec.not_after = absl::Now() + absl::Hours(24);
    spec.client_auth = true;
    return *crypto::IssueCertificate(ca, spec);
  }
  crypto::PemIdentity ca_;
  std::map<std::string, crypto::PemIdentity> sites_;
};

v1::SecAggConfig MakeConfig(int n, double tolerance, int modulus_bits = 32) {
  GraphParameters graph = *ChooseGraphParameters(n, tolerance);
  v1::SecAggConfig config;
  config.set_session_id(std::string(RandomSecret(32).view()));
  config.set_graph_seed(std::string(RandomSecret(32).view()));
  for (int i = 0; i < n; ++i) config.add_cohort(absl::StrCat("site-", i));
  config.set_degree(static_cast<uint32_t>(graph.degree));
  config.set_threshold(static_cast<uint32_t>(graph.threshold));
  config.set_bits(16);
  config.set_clip_range(1.0);
  config.set_modulus_bits(static_cast<uint32_t>(modulus_bits));
  config.set_weight_cap(1000);
  config.set_vector_length(kVectorLength);
  return config;
}

std::vector<LocalSite> MakeSites(int n, std::mt19937_64& rng, int modulus_bits = 32) {
  std::vector<LocalSite> sites;
  for (int i = 0; i < n; ++i) {
    LocalSite site;
    site.credentials = Identities::Get().Site(i);
    site.input = ModVector(modulus_bits, kVectorLength);
    for (size_t j = 0; j < kVectorLength; ++j) site.input.Set(j, rng());
    sites.push_back(std::move(site));
  }
  return sites;
}

// The exact modular sum of the inputs of `survivors`.
ModVector ExpectedSum(const std::vector<LocalSite>& sites,
                      const std::vector<std::string>& survivors, int modulus_bits) {
  ModVector sum(modulus_bits, kVectorLength);
  for (const LocalSite& site : sites) {
    if (std::count(survivors.begin(), survivors.end(), site.credentials.site_id) > 0) {
      REQUIRE(sum.AddAssign(site.input).ok());
    }
  }
  return sum;
}

// Every assignment of a vanish stage to at most `max_dropouts` of n sites.
void ForEachDropoutPattern(int n, int exact_dropouts,
                           const std::function<void(const std::vector<VanishStage>&)>& visit) {
  std::vector<int> chosen;
  std::function<void(int)> choose = [&](int start) {
    if (static_cast<int>(chosen.size()) == exact_dropouts) {
      const int patterns = 1 << (2 * exact_dropouts);
      for (int code = 0; code < patterns; ++code) {
        std::vector<VanishStage> vanish(n, VanishStage::kNever);
        for (int d = 0; d < exact_dropouts; ++d) {
          vanish[chosen[d]] = static_cast<VanishStage>((code >> (2 * d)) & 3);
        }
        visit(vanish);
      }
      return;
    }
    for (int i = start; i < n; ++i) {
      chosen.push_back(i);
      choose(i + 1);
      chosen.pop_back();
    }
  };
  choose(0);
}

std::vector<std::string> ExpectedSurvivors(const std::vector<LocalSite>& sites) {
  std::vector<std::string> ids;
  for (const LocalSite& site : sites) {
    if (site.vanish == VanishStage::kNever || site.vanish == VanishStage::kUnmask) {
      ids.push_back(site.credentials.site_id);
    }
  }
  return ids;
}

}  // namespace

TEST_CASE("Graph parameters keep the threshold above half the neighbourhood", "[secagg]") {
  for (int n = 3; n <= 400; n += (n < 20 ? 1 : 37)) {
    for (double tolerance : {0.0, 0.1, 0.2, 0.3, 0.45}) {
      absl::StatusOr<GraphParameters> graph = ChooseGraphParameters(n, tolerance);
      REQUIRE(graph.ok());
      INFO("n=" << n << " tolerance=" << tolerance << " k=" << graph->degree
                << " t=" << graph->threshold);
      // More than half of the k + 1 holders (the site and its neighbours).
      CHECK(2 * graph->threshold > graph->degree + 1);
      CHECK(graph->degree <= n - 1);
      CHECK(graph->tolerated_neighbour_dropouts ==
            (graph->complete ? n - graph->threshold : graph->degree - graph->threshold));
      if (graph->complete) {
        CHECK(graph->tolerated_neighbour_dropouts <=
              static_cast<int>(std::floor(tolerance * n + 1e-9)));
      }
      CHECK(ValidateGraphParameters(n, graph->degree, graph->threshold).ok());
      if (graph->complete) {
        CHECK(graph->degree == n - 1);
      } else {
        CHECK(graph->degree % 2 == 0);
      }
    }
  }
  // Large cohorts with little dropout get a sparse graph.
  absl::StatusOr<GraphParameters> sparse = ChooseGraphParameters(1000, 0.1);
  REQUIRE(sparse.ok());
  CHECK_FALSE(sparse->complete);
  CHECK(sparse->degree < 200);
  CHECK_FALSE(ChooseGraphParameters(2, 0.1).ok());
  CHECK_FALSE(ChooseGraphParameters(10, 0.5).ok());
  CHECK_FALSE(ValidateGraphParameters(7, 6, 3).ok());  // 2t <= k + 1
  CHECK(ValidateGraphParameters(3, 2, 2).ok());        // 3 sites, one may drop
  CHECK_FALSE(ValidateGraphParameters(20, 5, 4).ok());  // odd sparse degree
}

TEST_CASE("Harary neighbourhoods are symmetric and k-regular", "[secagg]") {
  const std::string seed(32, '\x07');
  for (int n : {10, 31, 64}) {
    for (int k : {4, 6, 8}) {
      std::vector<std::set<int>> adjacency(n);
      for (int i = 0; i < n; ++i) {
        std::vector<int> neighbours = Neighbours(n, k, seed, i);
        CHECK(static_cast<int>(neighbours.size()) == k);
        for (int j : neighbours) {
          CHECK(j != i);
          adjacency[i].insert(j);
        }
      }
      for (int i = 0; i < n; ++i) {
        for (int j : adjacency[i]) CHECK(adjacency[j].count(i) == 1);
      }
    }
  }
  // Another seed, another graph; the same seed, the same graph.
  CHECK(Neighbours(64, 6, seed, 0) == Neighbours(64, 6, seed, 0));
  CHECK(Neighbours(64, 6, seed, 0) != Neighbours(64, 6, std::string(32, '\x08'), 0));
}

// Number of ways to pick `dropouts` of n sites and a vanish stage (of 4) for each.
int PatternCount(int n, int dropouts) {
  double count = std::pow(4.0, dropouts);
  for (int j = 0; j < dropouts; ++j) count = count * (n - j) / (j + 1);
  return static_cast<int>(std::lround(count));
}

TEST_CASE("Every tolerated dropout pattern unmasks the exact sum of the survivors", "[secagg]") {
  std::mt19937_64 rng(20261123);
  // n = 3..7 at tolerance 0.34 (one of three may drop ... two of seven), and the smaller
  // cohorts again at 0.45 (two of five).
  for (auto [n, tolerance] : std::vector<std::pair<int, double>>{
           {3, 0.34}, {4, 0.34}, {5, 0.34}, {6, 0.34}, {7, 0.34}, {5, 0.45}}) {
    const v1::SecAggConfig base = MakeConfig(n, tolerance);
    const int tolerated = n - static_cast<int>(base.threshold());
    REQUIRE(tolerated == std::min(static_cast<int>(std::floor(tolerance * n + 1e-9)), n - (n / 2 + 1)));
    int rounds = 0, expected_rounds = 0;
    for (int dropouts = 0; dropouts <= tolerated; ++dropouts) {
      expected_rounds += PatternCount(n, dropouts);
      ForEachDropoutPattern(n, dropouts, [&](const std::vector<VanishStage>& vanish) {
        v1::SecAggConfig config = MakeConfig(n, tolerance);  // fresh session and keys per round
        std::vector<LocalSite> sites = MakeSites(n, rng);
        for (int i = 0; i < n; ++i) sites[i].vanish = vanish[i];
        LocalRoundResult result = RunLocalRound(config, kFederation, 1, Identities::Get().ca().cert_pem,
                                                sites, absl::Now());
        INFO("n=" << n << " t=" << config.threshold() << " status=" << result.status.ToString());
        REQUIRE(result.status.ok());
        std::vector<std::string> expected = ExpectedSurvivors(sites);
        std::vector<std::string> survivors = result.survivors;
        std::sort(survivors.begin(), survivors.end());
        std::sort(expected.begin(), expected.end());
        CHECK(survivors == expected);
        REQUIRE(result.sum.has_value());
        CHECK(*result.sum == ExpectedSum(sites, expected, 32));
        ++rounds;
      });
    }
    CHECK(rounds == expected_rounds);
    CHECK(tolerated >= 1);
  }
}

TEST_CASE("Dropouts beyond tolerance abort the round with nothing unmasked", "[secagg]") {
  std::mt19937_64 rng(7);
  int aborted = 0;
  for (int n = 3; n <= 7; ++n) {
    const v1::SecAggConfig base = MakeConfig(n, 0.45);
    const int beyond = n - static_cast<int>(base.threshold()) + 1;
    std::vector<std::vector<VanishStage>> patterns;
    ForEachDropoutPattern(n, beyond, [&](const std::vector<VanishStage>& vanish) {
      patterns.push_back(vanish);
    });
    // All patterns for small cohorts, a random sample of 150 for larger ones.
    std::shuffle(patterns.begin(), patterns.end(), rng);
    if (patterns.size() > 150) patterns.resize(150);
    for (const auto& vanish : patterns) {
      std::vector<LocalSite> sites = MakeSites(n, rng);
      for (int i = 0; i < n; ++i) sites[i].vanish = vanish[i];
      LocalRoundResult result = RunLocalRound(MakeConfig(n, 0.45), kFederation, 1,
                                              Identities::Get().ca().cert_pem, sites, absl::Now());
      INFO("n=" << n);
      CHECK(result.status.code() == absl::StatusCode::kFailedPrecondition);
      CHECK_FALSE(result.sum.has_value());
      ++aborted;
    }
  }
  CHECK(aborted > 150);
}

TEST_CASE("A large cohort on a sparse graph unmasks the exact sum with 2^64 words", "[secagg]") {
  std::mt19937_64 rng(99);
  const int n = 60;
  v1::SecAggConfig config = MakeConfig(n, 0.05, 64);
  REQUIRE(config.degree() < static_cast<uint32_t>(n - 1));
  std::vector<LocalSite> sites = MakeSites(n, rng, 64);
  for (int i : {3, 17, 41}) sites[i].vanish = static_cast<VanishStage>(i % 4);
  LocalRoundResult result =
      RunLocalRound(config, kFederation, 9, Identities::Get().ca().cert_pem, sites, absl::Now());
  REQUIRE(result.status.ok());
  CHECK(result.survivors.size() == static_cast<size_t>(n - 2));
  CHECK(*result.sum == ExpectedSum(sites, ExpectedSurvivors(sites), 64));
}

// --- A malicious coordinator, played by the test against real site state machines. ---

namespace {

// Three sites that advertised keys for round `round`; the test then relays what it likes.
struct ThreeSites {
  explicit ThreeSites(uint64_t round = 5, v1::SecAggConfig cfg = MakeConfig(4, 0.3))
      : config(std::move(cfg)) {
    for (int i = 0; i < config.cohort_size(); ++i) {
      auto client = SecAggClient::Create(Identities::Get().Site(i), round, config);
      REQUIRE(client.ok());
      auto ad = (*client)->AdvertiseKeys();
      REQUIRE(ad.ok());
      ads.push_back(*ad);
      clients.push_back(std::move(*client));
    }
  }
  v1::PeerKeys KeysFor(int i) const {
    v1::PeerKeys keys;
    for (int j = 0; j < static_cast<int>(ads.size()); ++j) {
      if (j != i) *keys.add_advertisements() = ads[j];
    }
    return keys;
  }
  v1::SecAggConfig config;
  std::vector<std::unique_ptr<SecAggClient>> clients;
  std::vector<v1::KeyAdvertisement> ads;
};

}  // namespace

TEST_CASE("Sites refuse a key swapped in by the coordinator", "[secagg][malicious]") {
  ThreeSites sites;
  v1::PeerKeys keys = sites.KeysFor(0);
  // The coordinator substitutes its own masking key for site-1's.
  keys.mutable_advertisements(0)->set_masking_public_key(std::string(32, '\x42'));
  auto response = sites.clients[0]->ShareKeys(keys, absl::Now());
  CHECK(response.status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(sites.clients[0]->stage() == SecAggClient::Stage::kAborted);
}

TEST_CASE("Sites refuse an advertisement relabelled as another site", "[secagg][malicious]") {
  ThreeSites sites;
  v1::PeerKeys keys = sites.KeysFor(0);
  // site-2's genuine, signed advertisement presented as site-1's.
  v1::KeyAdvertisement relabelled = keys.advertisements(1);
  relabelled.set_site_id("site-1");
  *keys.mutable_advertisements(0) = relabelled;
  CHECK(sites.clients[0]->ShareKeys(keys, absl::Now()).status().code() ==
        absl::StatusCode::kUnauthenticated);
}

TEST_CASE("Sites refuse a forged advertisement signed outside the federation", "[secagg][malicious]") {
  ThreeSites sites;
  // The coordinator makes up site-1 with a key pair and certificate from its own CA.
  v1::SecAggConfig config = sites.config;
  auto forger = SecAggClient::Create(Identities::Get().Foreign(1), 5, config);
  REQUIRE(forger.ok());
  auto forged = (*forger)->AdvertiseKeys();
  REQUIRE(forged.ok());
  v1::PeerKeys keys = sites.KeysFor(0);
  *keys.mutable_advertisements(0) = *forged;
  auto response = sites.clients[0]->ShareKeys(keys, absl::Now());
  CHECK(response.status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(absl::StrContains(response.status().message(), "federation CA"));
}

TEST_CASE("Sites refuse a key advertisement replayed from another round", "[secagg][malicious]") {
  v1::SecAggConfig config = MakeConfig(4, 0.3);
  ThreeSites old_round(4, config);
  ThreeSites this_round(5, config);  // same session id even: the round number differs
  v1::PeerKeys keys = this_round.KeysFor(0);
  *keys.mutable_advertisements(0) = old_round.ads[1];
  CHECK(this_round.clients[0]->ShareKeys(keys, absl::Now()).status().code() ==
        absl::StatusCode::kUnauthenticated);
}

TEST_CASE("Sites refuse shares replayed from another round", "[secagg][malicious]") {
  // Round 4 and round 5 between the same sites; the coordinator replays round 4's share
  // from site-1 to site-0 in round 5.
  v1::SecAggConfig config = MakeConfig(4, 0.3);
  ThreeSites old_round(4, config);
  ThreeSites this_round(5, MakeConfig(4, 0.3));
  std::vector<v1::ShareKeysResponse> old_shares, new_shares;
  for (int i = 0; i < 4; ++i) {
    old_shares.push_back(*old_round.clients[i]->ShareKeys(old_round.KeysFor(i), absl::Now()));
    new_shares.push_back(*this_round.clients[i]->ShareKeys(this_round.KeysFor(i), absl::Now()));
  }
  auto share_to = [](const v1::ShareKeysResponse& response, const std::string& receiver) {
    for (const auto& s : response.shares()) {
      if (s.receiver() == receiver) return s;
    }
    FAIL("no share for " << receiver);
    return v1::EncryptedShare();
  };
  v1::ShareDelivery delivery;
  *delivery.add_shares() = share_to(old_shares[1], "site-0");  // replayed
  *delivery.add_shares() = share_to(new_shares[2], "site-0");
  *delivery.add_shares() = share_to(new_shares[3], "site-0");
  auto masked = this_round.clients[0]->MaskInput(delivery, ModVector(32, kVectorLength));
  CHECK(masked.status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(this_round.clients[0]->stage() == SecAggClient::Stage::kAborted);
}

TEST_CASE("Sites never reveal both shares of one peer", "[secagg][malicious]") {
  ThreeSites sites;
  std::vector<v1::ShareKeysResponse> shares;
  for (int i = 0; i < 4; ++i) {
    shares.push_back(*sites.clients[i]->ShareKeys(sites.KeysFor(i), absl::Now()));
  }
  std::vector<v1::ShareDelivery> deliveries(4);
  for (const auto& response : shares) {
    for (const auto& share : response.shares()) {
      const int receiver = share.receiver().back() - '0';
      *deliveries[receiver].add_shares() = share;
    }
  }
  for (int i = 0; i < 4; ++i) {
    REQUIRE(sites.clients[i]->MaskInput(deliveries[i], ModVector(32, kVectorLength)).ok());
  }
  SECTION("in one request naming a peer as survivor and as dropped") {
    v1::UnmaskRequest request;
    for (const char* s : {"site-1", "site-2", "site-3"}) request.add_survivors(s);
    request.add_dropped("site-2");
    auto response = sites.clients[0]->Unmask(request);
    CHECK(response.status().code() == absl::StatusCode::kPermissionDenied);
    CHECK(sites.clients[0]->stage() == SecAggClient::Stage::kAborted);
  }
  SECTION("across two requests") {
    v1::UnmaskRequest first;
    for (const char* s : {"site-1", "site-2", "site-3"}) first.add_survivors(s);
    auto response = sites.clients[0]->Unmask(first);
    REQUIRE(response.ok());
    CHECK(response->self_mask_shares_size() == 4);  // its three neighbours' and its own
    CHECK(response->key_shares_size() == 0);
    v1::UnmaskRequest second;
    second.add_survivors("site-1");
    second.add_survivors("site-3");
    second.add_dropped("site-2");
    CHECK(sites.clients[0]->Unmask(second).status().code() ==
          absl::StatusCode::kFailedPrecondition);
  }
  SECTION("when too few survivors are claimed to hide an individual input") {
    // t = 3 for 4 sites at tolerance 0.3: itself and one claimed survivor are not enough.
    v1::UnmaskRequest request;
    request.add_survivors("site-1");
    request.add_dropped("site-2");
    request.add_dropped("site-3");
    CHECK(sites.clients[0]->Unmask(request).status().code() ==
          absl::StatusCode::kFailedPrecondition);
  }
}

TEST_CASE("Sites refuse configurations that weaken secure aggregation", "[secagg][malicious]") {
  v1::SecAggConfig config = MakeConfig(5, 0.3);
  SECTION("a threshold of half the share holders or less") { config.set_threshold(3 - 1); }
  SECTION("a session id of the wrong size") { config.set_session_id("short"); }
  SECTION("quantization that can wrap") {
    config.set_bits(31);
    config.set_modulus_bits(32);
  }
  SECTION("a cohort of two") {
    config.clear_cohort();
    config.add_cohort("site-0");
    config.add_cohort("site-1");
    config.set_degree(1);
    config.set_threshold(1);
  }
  SECTION("a cohort naming a site twice") { config.set_cohort(1, "site-0"); }
  auto client = SecAggClient::Create(Identities::Get().Site(0), 3, config);
  CHECK(client.status().code() == absl::StatusCode::kInvalidArgument);
}

// --- A misbehaving site: the coordinator drops it and the round goes on. ---

namespace {

// Runs a 7-site round (t = 4, three dropouts tolerated) in which `bad_site` sends an invalid
// message at `bad_stage` (once). Returns the server after CloseUnmask.
std::unique_ptr<SecAggServer> RunWithOneBadMessage(std::vector<LocalSite>& sites,
                                                   const v1::SecAggConfig& config, int bad_site,
                                                   int bad_stage, absl::Status* refused) {
  const int n = static_cast<int>(sites.size());
  auto server = *SecAggServer::Create(config, kFederation, 2, Identities::Get().ca().cert_pem);
  std::vector<std::unique_ptr<SecAggClient>> clients;
  auto id = [](int i) { return absl::StrCat("site-", i); };
  for (int i = 0; i < n; ++i) {
    clients.push_back(*SecAggClient::Create(sites[i].credentials, 2, config));
    v1::KeyAdvertisement ad = *clients[i]->AdvertiseKeys();
    if (i == bad_site && bad_stage == 0) {
      ad.set_encryption_public_key(std::string(32, '\x01'));  // signature no longer matches
      *refused = server->OnAdvertisement(id(i), ad, absl::Now());
      continue;
    }
    REQUIRE(server->OnAdvertisement(id(i), ad, absl::Now()).ok());
  }
  CHECK(server->OnAdvertisement("site-99", v1::KeyAdvertisement(), absl::Now()).code() ==
        absl::StatusCode::kPermissionDenied);
  REQUIRE(server->CloseAdvertise().ok());
  for (const std::string& site : server->Active()) {
    const int i = site.back() - '0';
    v1::ShareKeysResponse response = *clients[i]->ShareKeys(*server->PeerKeysFor(site), absl::Now());
    if (i == bad_site && bad_stage == 1) {
      response.mutable_shares()->RemoveLast();  // one neighbour left without a share
      *refused = server->OnShareKeys(site, response);
      continue;
    }
    REQUIRE(server->OnShareKeys(site, response).ok());
  }
  REQUIRE(server->CloseShareKeys().ok());
  for (const std::string& site : server->Active()) {
    const int i = site.back() - '0';
    ModVector masked = *clients[i]->MaskInput(*server->SharesFor(site), sites[i].input);
    if (i == bad_site && bad_stage == 2) {
      *refused = server->OnMaskedInput(site, ModVector(32, kVectorLength + 1));
      CHECK(server->OnMaskedInput(site, masked).code() == absl::StatusCode::kFailedPrecondition);
      continue;
    }
    REQUIRE(server->OnMaskedInput(site, masked).ok());
  }
  REQUIRE(server->CloseMaskedInput().ok());
  for (const std::string& site : server->Active()) {
    const int i = site.back() - '0';
    v1::UnmaskResponse response = *clients[i]->Unmask(*server->UnmaskRequestFor(site));
    if (i == bad_site && bad_stage == 3) {
      // A share the coordinator never asked for (of a survivor's masking key).
      auto* extra = response.add_key_shares();
      extra->set_owner(id((i + 1) % n));
      extra->set_share(std::string(40, '\0'));
      *refused = server->OnUnmaskResponse(site, response);
      continue;
    }
    REQUIRE(server->OnUnmaskResponse(site, response).ok());
  }
  return server;
}

}  // namespace

TEST_CASE("A site sending an invalid message is dropped, not the round", "[secagg]") {
  std::mt19937_64 rng(3);
  const int n = 7;
  for (int bad_stage = 0; bad_stage < 4; ++bad_stage) {
    INFO("invalid message at stage " << bad_stage);
    v1::SecAggConfig config = MakeConfig(n, 0.45);
    REQUIRE(config.threshold() == 4);
    std::vector<LocalSite> sites = MakeSites(n, rng);
    absl::Status refused;
    auto server = RunWithOneBadMessage(sites, config, /*bad_site=*/2, bad_stage, &refused);
    CHECK_FALSE(refused.ok());
    CHECK(server->drop_reasons().count("site-2") == 1);
    REQUIRE(server->CloseUnmask().ok());
    std::vector<std::string> expected;
    for (int i = 0; i < n; ++i) {
      // A site dropped during unmasking still has its input in the sum.
      if (i != 2 || bad_stage == 3) expected.push_back(absl::StrCat("site-", i));
    }
    std::vector<std::string> survivors = server->survivors();
    std::sort(survivors.begin(), survivors.end());
    CHECK(survivors == expected);
    CHECK(server->sum() == ExpectedSum(sites, expected, 32));
  }
}

}  // namespace cohort::secagg

namespace cohort::secagg {
namespace {

// `message` serialized, with a few random bytes flipped, parsed back (the original when the
// mutation does not parse).
template <typename Message>
Message Mutate(const Message& message, std::mt19937_64& rng) {
  std::string bytes = message.SerializeAsString();
  if (bytes.empty()) return message;
  const int flips = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < flips; ++i) bytes[rng() % bytes.size()] ^= static_cast<char>(1 + rng() % 255);
  Message mutated;
  if (!mutated.ParseFromString(bytes)) return message;
  return mutated;
}

}  // namespace

TEST_CASE("Mutated protocol messages are refused or harmless, never a crash or a wrong sum",
          "[secagg]") {
  std::mt19937_64 rng(11);
  const int n = 5;
  int unmasked = 0;
  for (int trial = 0; trial < 40; ++trial) {
    v1::SecAggConfig config = MakeConfig(n, 0.45);  // t = 3, two may drop
    std::vector<LocalSite> sites = MakeSites(n, rng);
    auto server = *SecAggServer::Create(config, kFederation, 3, Identities::Get().ca().cert_pem);
    std::vector<std::unique_ptr<SecAggClient>> clients;
    const int victim = static_cast<int>(rng() % n);  // whose messages are mutated
    const int stage = static_cast<int>(rng() % 3);
    auto id = [](int i) { return absl::StrCat("site-", i); };
    for (int i = 0; i < n; ++i) {
      clients.push_back(*SecAggClient::Create(sites[i].credentials, 3, config));
      v1::KeyAdvertisement ad = *clients[i]->AdvertiseKeys();
      if (i == victim && stage == 0) ad = Mutate(ad, rng);
      server->OnAdvertisement(id(i), ad, absl::Now()).IgnoreError();
    }
    if (!server->CloseAdvertise().ok()) continue;
    for (const std::string& site : server->Active()) {
      const int i = site.back() - '0';
      v1::PeerKeys keys = *server->PeerKeysFor(site);
      // The victim also receives mutated peer keys: it must refuse or cope.
      if (i == victim && stage == 1) keys = Mutate(keys, rng);
      auto response = clients[i]->ShareKeys(keys, absl::Now());
      if (!response.ok()) {
        server->DropSite(site, "refused");
        continue;
      }
      server->OnShareKeys(site, i == victim && stage == 1 ? Mutate(*response, rng) : *response)
          .IgnoreError();
    }
    if (!server->CloseShareKeys().ok()) continue;
    for (const std::string& site : server->Active()) {
      const int i = site.back() - '0';
      v1::ShareDelivery delivery = *server->SharesFor(site);
      if (i == victim && stage == 2) delivery = Mutate(delivery, rng);
      auto masked = clients[i]->MaskInput(delivery, sites[i].input);
      if (!masked.ok()) {
        server->DropSite(site, "refused");
        continue;
      }
      server->OnMaskedInput(site, *masked).IgnoreError();
    }
    if (!server->CloseMaskedInput().ok()) continue;
    for (const std::string& site : server->Active()) {
      const int i = site.back() - '0';
      auto response = clients[i]->Unmask(*server->UnmaskRequestFor(site));
      if (!response.ok()) {
        server->DropSite(site, "refused");
        continue;
      }
      server->OnUnmaskResponse(site, i == victim ? Mutate(*response, rng) : *response).IgnoreError();
    }
    if (!server->CloseUnmask().ok()) continue;
    // Whatever was mutated, a sum that unmasks is the exact sum of the survivors' inputs.
    CHECK(server->sum() == ExpectedSum(sites, server->survivors(), 32));
    ++unmasked;
  }
  // Most mutations hit one site only, which the others survive.
  CHECK(unmasked >= 20);
}

}  // namespace cohort::secagg
