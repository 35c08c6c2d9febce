#include "common/secagg/shamir.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <unordered_set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace cohort::secagg {
namespace {

// Arithmetic in GF(p), p = 2^61 - 1 (a Mersenne prime). Every value is kept in [0, p).
constexpr uint64_t kP = (uint64_t{1} << 61) - 1;
constexpr int kLimbs = 5;
constexpr size_t kLimbBytes = 7;  // 5 x 7 = 35 bytes cover the 32-byte secret
static_assert(kLimbs * kLimbBytes >= kShamirSecretBytes, "limbs must cover the secret");
static_assert(kLimbs * 8 == kShamirShareBytes, "a share is one 8-byte element per limb");

using Limbs = std::array<uint64_t, kLimbs>;

uint64_t Add(uint64_t a, uint64_t b) {
  const uint64_t s = a + b;  // < 2^62, no overflow
  return s >= kP ? s - kP : s;
}

uint64_t Sub(uint64_t a, uint64_t b) { return a >= b ? a - b : a + kP - b; }

uint64_t Mul(uint64_t a, uint64_t b) {
  const unsigned __int128 product = static_cast<unsigned __int128>(a) * b;  // < 2^122
  // 2^61 = 1 (mod p), so high * 2^61 + low = high + low; both halves are < 2^61.
  const uint64_t low = static_cast<uint64_t>(product) & kP;
  const uint64_t high = static_cast<uint64_t>(product >> 61);
  return Add(low, high);
}

uint64_t Pow(uint64_t base, uint64_t exponent) {
  uint64_t result = 1;
  while (exponent > 0) {
    if (exponent & 1) result = Mul(result, base);
    base = Mul(base, base);
    exponent >>= 1;
  }
  return result;
}

// a^(p-2) = a^-1 for a != 0 (Fermat).
uint64_t Inverse(uint64_t a) { return Pow(a, kP - 2); }

// A uniform element of GF(p) from the OS's entropy source: 61 random bits, redrawn in the
// one case (all ones = p) that is not a field element.
uint64_t RandomElement() {
  uint64_t value = kP;
  while (value == kP) {
    unsigned char bytes[8];
    if (RAND_priv_bytes(bytes, sizeof(bytes)) != 1) std::abort();  // no safe fallback
    value = 0;
    for (int b = 0; b < 8; ++b) value |= static_cast<uint64_t>(bytes[b]) << (8 * b);
    OPENSSL_cleanse(bytes, sizeof(bytes));
    value &= kP;
  }
  return value;
}

void StoreLe64(uint64_t value, uint8_t* out) {
  for (int b = 0; b < 8; ++b) out[b] = static_cast<uint8_t>(value >> (8 * b));
}

uint64_t LoadLe64(const uint8_t* in) {
  uint64_t value = 0;
  for (int b = 0; b < 8; ++b) value |= static_cast<uint64_t>(in[b]) << (8 * b);
  return value;
}

// Checks every x: non-zero and distinct. `where` names the caller in errors.
absl::Status CheckPoints(absl::Span<const uint32_t> xs, const char* where) {
  std::unordered_set<uint32_t> seen;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (xs[i] == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": evaluation point ", i, " is x = 0 (x = 0 is the secret itself)"));
    }
    if (!seen.insert(xs[i]).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": evaluation point x = ", xs[i], " appears more than once"));
    }
  }
  return absl::OkStatus();
}

// Lagrange basis weights at z for the points xs[0..t): weights[j] = L_j(z) =
// prod_{m != j} (z - x_m) / (x_j - x_m). `inverse_denominators` holds
// 1 / prod_{m != j} (x_j - x_m), which does not depend on z. Prefix and suffix products give
// the numerators in O(t) without dividing by (z - x_j), which is 0 when z is one of the xs.
void LagrangeWeights(const std::vector<uint64_t>& xs,
                     const std::vector<uint64_t>& inverse_denominators, uint64_t z,
                     std::vector<uint64_t>* weights) {
  const size_t t = xs.size();
  std::vector<uint64_t> suffix(t + 1, 1);
  for (size_t m = t; m-- > 0;) suffix[m] = Mul(suffix[m + 1], Sub(z, xs[m]));
  weights->resize(t);
  uint64_t prefix = 1;
  for (size_t j = 0; j < t; ++j) {
    (*weights)[j] = Mul(Mul(prefix, suffix[j + 1]), inverse_denominators[j]);
    prefix = Mul(prefix, Sub(z, xs[j]));
  }
}

}  // namespace

absl::StatusOr<std::vector<ShamirShare>> ShamirSplit(const SecretBytes& secret, int threshold,
                                                     absl::Span<const uint32_t> xs) {
  if (secret.size() != kShamirSecretBytes) {
    return absl::InvalidArgumentError(absl::StrCat("ShamirSplit: secret must be ",
                                                   kShamirSecretBytes, " bytes, got ",
                                                   secret.size()));
  }
  if (threshold < 1 || static_cast<size_t>(threshold) > xs.size()) {
    return absl::InvalidArgumentError(absl::StrCat("ShamirSplit: threshold must be in [1, ",
                                                   xs.size(), "] (the number of shares), got ",
                                                   threshold));
  }
  if (absl::Status s = CheckPoints(xs, "ShamirSplit"); !s.ok()) return s;

  // coefficients[limb * t + d] is the degree-d coefficient of that limb's polynomial; the
  // constant term is the limb itself. Wiped before returning: any t of them with the shares
  // reveal the secret.
  const size_t t = static_cast<size_t>(threshold);
  std::vector<uint64_t> coefficients(kLimbs * t, 0);
  for (int limb = 0; limb < kLimbs; ++limb) {
    uint64_t value = 0;
    for (size_t b = 0; b < kLimbBytes; ++b) {
      const size_t index = limb * kLimbBytes + b;
      if (index < kShamirSecretBytes) value |= static_cast<uint64_t>(secret.data()[index]) << (8 * b);
    }
    coefficients[limb * t] = value;  // < 2^56 < p
    for (size_t d = 1; d < t; ++d) coefficients[limb * t + d] = RandomElement();
  }

  std::vector<ShamirShare> shares;
  shares.reserve(xs.size());
  for (uint32_t x : xs) {
    ShamirShare share;
    share.x = x;
    share.y = SecretBytes(kShamirShareBytes);
    for (int limb = 0; limb < kLimbs; ++limb) {
      // Horner's rule from the highest coefficient down.
      uint64_t y = 0;
      for (size_t d = t; d-- > 0;) y = Add(Mul(y, x), coefficients[limb * t + d]);
      StoreLe64(y, share.y.data() + 8 * limb);
    }
    shares.push_back(std::move(share));
  }
  OPENSSL_cleanse(coefficients.data(), coefficients.size() * sizeof(uint64_t));
  return shares;
}

absl::StatusOr<SecretBytes> ShamirReconstruct(absl::Span<const ShamirShare> shares,
                                              int threshold) {
  if (threshold < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("ShamirReconstruct: threshold must be at least 1, got ", threshold));
  }
  if (shares.size() < static_cast<size_t>(threshold)) {
    return absl::InvalidArgumentError(absl::StrCat("ShamirReconstruct: need at least ", threshold,
                                                   " shares, got ", shares.size()));
  }
  std::vector<uint32_t> points;
  points.reserve(shares.size());
  for (const ShamirShare& share : shares) points.push_back(share.x);
  if (absl::Status s = CheckPoints(points, "ShamirReconstruct"); !s.ok()) return s;

  // ys[i * kLimbs + limb]: the parsed evaluations, wiped before returning.
  std::vector<uint64_t> ys(shares.size() * kLimbs);
  auto wipe_ys = [&ys] { OPENSSL_cleanse(ys.data(), ys.size() * sizeof(uint64_t)); };
  for (size_t i = 0; i < shares.size(); ++i) {
    const ShamirShare& share = shares[i];
    if (share.y.size() != kShamirShareBytes) {
      wipe_ys();
      return absl::InvalidArgumentError(
          absl::StrCat("ShamirReconstruct: share with x = ", share.x, " has ", share.y.size(),
                       " bytes of y, expected ", kShamirShareBytes));
    }
    for (int limb = 0; limb < kLimbs; ++limb) {
      const uint64_t y = LoadLe64(share.y.data() + 8 * limb);
      if (y >= kP) {
        wipe_ys();
        return absl::InvalidArgumentError(
            absl::StrCat("ShamirReconstruct: share with x = ", share.x, " has limb ", limb,
                         " outside GF(2^61 - 1)"));
      }
      ys[i * kLimbs + limb] = y;
    }
  }

  // Interpolate through the first t shares.
  const size_t t = static_cast<size_t>(threshold);
  std::vector<uint64_t> xs(points.begin(), points.begin() + t);
  std::vector<uint64_t> inverse_denominators(t);
  for (size_t j = 0; j < t; ++j) {
    uint64_t denominator = 1;
    for (size_t m = 0; m < t; ++m) {
      if (m != j) denominator = Mul(denominator, Sub(xs[j], xs[m]));
    }
    inverse_denominators[j] = Inverse(denominator);  // non-zero: the xs are distinct and < p
  }
  std::vector<uint64_t> weights;
  auto evaluate = [&](uint64_t z, Limbs* out) {
    LagrangeWeights(xs, inverse_denominators, z, &weights);
    for (int limb = 0; limb < kLimbs; ++limb) {
      uint64_t value = 0;
      for (size_t j = 0; j < t; ++j) value = Add(value, Mul(weights[j], ys[j * kLimbs + limb]));
      (*out)[limb] = value;
    }
  };

  // Every further share must lie on the same polynomials.
  Limbs expected;
  for (size_t i = t; i < shares.size(); ++i) {
    evaluate(shares[i].x, &expected);
    for (int limb = 0; limb < kLimbs; ++limb) {
      if (expected[limb] != ys[i * kLimbs + limb]) {
        wipe_ys();
        OPENSSL_cleanse(expected.data(), sizeof(expected));
        return absl::DataLossError(absl::StrCat(
            "ShamirReconstruct: share with x = ", shares[i].x, " does not lie on the polynomial "
            "through the first ", t, " shares (a corrupted or forged share)"));
      }
    }
  }
  OPENSSL_cleanse(expected.data(), sizeof(expected));

  Limbs limbs;
  evaluate(0, &limbs);
  wipe_ys();
  SecretBytes secret(kShamirSecretBytes);
  absl::Status status = absl::OkStatus();
  for (int limb = 0; limb < kLimbs && status.ok(); ++limb) {
    // Limbs 0-3 carry 7 secret bytes, the last one the remaining 4; anything above that
    // means the shares were not made from a 32-byte secret (or t shares were tampered with).
    const size_t first = limb * kLimbBytes;
    const size_t count = std::min(kLimbBytes, kShamirSecretBytes - first);
    if ((limbs[limb] >> (8 * count)) != 0) {
      status = absl::InvalidArgumentError(absl::StrCat(
          "ShamirReconstruct: limb ", limb, " does not decode to ", count,
          " bytes (corrupted shares, or shares of different secrets)"));
      break;
    }
    for (size_t b = 0; b < count; ++b) {
      secret.data()[first + b] = static_cast<uint8_t>(limbs[limb] >> (8 * b));
    }
  }
  OPENSSL_cleanse(limbs.data(), sizeof(limbs));
  if (!status.ok()) return status;
  return secret;
}

}  // namespace cohort::secagg
