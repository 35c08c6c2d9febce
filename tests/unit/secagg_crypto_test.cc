// Unit tests for the secure aggregation primitives in common/secagg: secrets, the mod-2^k
// vectors, the AES-CTR mask PRG, X25519 + HKDF, AES-GCM, Shamir sharing, the quantizer and
// signatures. Known-answer values come from published vectors or an independent computation.
#include <openssl/evp.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "common/secagg/aead.h"
#include "common/secagg/key_agreement.h"
#include "common/secagg/mod_vector.h"
#include "common/secagg/prg.h"
#include "common/secagg/quantizer.h"
#include "common/secagg/secret.h"
#include "common/secagg/shamir.h"
#include "common/secagg/signature.h"
#include "common/util/files.h"
#include "tests/support/status_assertions.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_pki.h"

namespace cohort::secagg {
namespace {

using ::cohort::testing::RequireInvalid;

SecretBytes FromHex(absl::string_view hex) { return SecretBytes(absl::HexStringToBytes(hex)); }
std::string Hex(absl::string_view bytes) { return absl::BytesToHexString(bytes); }

// Seed bytes 0, 1, ..., 31.
SecretBytes CountingSeed(uint8_t first = 0) {
  SecretBytes seed(32);
  for (size_t i = 0; i < 32; ++i) seed.data()[i] = static_cast<uint8_t>(first + i);
  return seed;
}

// The AES-256-CTR keystream computed independently of the PRG: AES-256-ECB encryption of the
// counter blocks 0, 1, 2, ... (128-bit big-endian, as CTR mode with an all-zero IV uses).
std::string EcbCounterKeystream(const SecretBytes& key, size_t bytes) {
  const size_t blocks = (bytes + 15) / 16;
  std::string counters(blocks * 16, '\0');
  for (size_t b = 0; b < blocks; ++b) {
    for (int i = 0; i < 8; ++i) counters[b * 16 + 15 - i] = static_cast<char>(b >> (8 * i));
  }
  std::string out(counters.size(), '\0');
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  REQUIRE(ctx != nullptr);
  int length = 0;
  REQUIRE(EVP_EncryptInit_ex(ctx, EVP_aes_256_ecb(), nullptr, key.data(), nullptr) == 1);
  REQUIRE(EVP_CIPHER_CTX_set_padding(ctx, 0) == 1);
  REQUIRE(EVP_EncryptUpdate(ctx, reinterpret_cast<unsigned char*>(&out[0]), &length,
                            reinterpret_cast<const unsigned char*>(counters.data()),
                            static_cast<int>(counters.size())) == 1);
  REQUIRE(static_cast<size_t>(length) == counters.size());
  EVP_CIPHER_CTX_free(ctx);
  out.resize(bytes);
  return out;
}

// ---- SecretBytes ------------------------------------------------------------------------

TEST_CASE("SecretBytes moves empty the source and Wipe clears", "[secagg]") {
  SecretBytes a(absl::string_view("key material"));
  SecretBytes b(std::move(a));
  CHECK(a.empty());  // NOLINT(bugprone-use-after-move): the contract under test
  CHECK(b.view() == "key material");
  SecretBytes c = b.Copy();
  CHECK(c == b);
  SecretBytes d(4);
  d = std::move(c);
  CHECK(c.empty());  // NOLINT(bugprone-use-after-move)
  CHECK(d.view() == "key material");
  d.Wipe();
  CHECK(d.empty());
  SecretBytes r1 = RandomSecret(32), r2 = RandomSecret(32);
  CHECK(r1.size() == 32);
  CHECK(r1 != r2);
  CHECK(RandomSecret(0).empty());
}

// ---- ModVector --------------------------------------------------------------------------

TEST_CASE("ModVector addition and subtraction wrap modulo 2^32 and 2^64", "[secagg]") {
  ModVector a(32, 3), b(32, 3);
  a.Set(0, 0xffffffffu);
  b.Set(0, 2);
  a.Set(1, 0);
  b.Set(1, 1);
  a.Set(2, uint64_t{0x1'0000'0005});  // stored mod 2^32
  CHECK(a.Get(2) == 5);
  REQUIRE(a.AddAssign(b).ok());
  CHECK(a.Get(0) == 1);
  CHECK(a.Get(1) == 1);
  REQUIRE(a.SubtractAssign(b).ok());
  REQUIRE(a.SubtractAssign(b).ok());
  CHECK(a.Get(0) == 0xfffffffdu);
  CHECK(a.Get(1) == 0xffffffffu);

  ModVector c(64, 2), d(64, 2);
  c.Set(0, std::numeric_limits<uint64_t>::max());
  d.Set(0, 3);
  REQUIRE(c.AddAssign(d).ok());
  CHECK(c.Get(0) == 2);
  REQUIRE(c.SubtractAssign(d).ok());
  REQUIRE(c.SubtractAssign(d).ok());
  CHECK(c.Get(0) == std::numeric_limits<uint64_t>::max() - 3);
  CHECK(c.Get(1) == 0);

  RequireInvalid(a.AddAssign(ModVector(32, 4)), {"AddAssign", "3 words", "4 words"});
  RequireInvalid(a.SubtractAssign(ModVector(64, 3)), {"SubtractAssign", "2^32", "2^64"});
}

TEST_CASE("ModVector bytes are little-endian and round-trip", "[secagg]") {
  ModVector a(32, 2);
  a.Set(0, 0x01020304);
  a.Set(1, 0xa0b0c0d0);
  CHECK(a.byte_size() == 8);
  CHECK(Hex(a.ToBytes()) == "04030201d0c0b0a0");
  auto back = ModVector::FromBytes(32, a.ToBytes());
  REQUIRE(back.ok());
  CHECK(*back == a);

  ModVector b(64, 2);
  b.Set(0, 0x0102030405060708);
  b.Set(1, 0xfffffffffffffffe);
  CHECK(Hex(b.ToBytes()) == "0807060504030201feffffffffffffff");
  auto back64 = ModVector::FromBytes(64, b.ToBytes());
  REQUIRE(back64.ok());
  CHECK(*back64 == b);
  CHECK(!(*back64 == a));

  auto empty = ModVector::FromBytes(32, "");
  REQUIRE(empty.ok());
  CHECK(empty->size() == 0);
}

TEST_CASE("ModVector refuses malformed bytes", "[secagg]") {
  RequireInvalid(ModVector::FromBytes(32, std::string(7, 'x')).status(),
                 {"7 bytes", "4-byte words"});
  RequireInvalid(ModVector::FromBytes(64, std::string(12, 'x')).status(),
                 {"12 bytes", "8-byte words"});
  RequireInvalid(ModVector::FromBytes(16, std::string(8, 'x')).status(), {"2^16"});
}

// ---- Mask PRG ---------------------------------------------------------------------------

TEST_CASE("Mask PRG known answer: AES-256 of the zero block under the zero key", "[secagg]") {
  const SecretBytes zero_key(32);
  ModVector mask(32, 4);
  REQUIRE(ExpandMask(zero_key, &mask).ok());
  CHECK(Hex(mask.ToBytes()) == "dc95c078a2408989ad48a21492842087");
  CHECK(mask.Get(0) == 0x78c095dcu);  // little-endian words of the keystream

  uint8_t raw[16];
  REQUIRE(RawKeystream(zero_key, raw, sizeof(raw)).ok());
  CHECK(Hex(absl::string_view(reinterpret_cast<const char*>(raw), sizeof(raw))) ==
        "dc95c078a2408989ad48a21492842087");
}

TEST_CASE("Mask PRG equals AES-256-ECB of the counter blocks", "[secagg]") {
  const SecretBytes seed = CountingSeed();
  // Sizes around the PRG's internal block (16 KiB) and not a multiple of the AES block.
  for (size_t words : {1, 3, 4, 101, 4095, 4096, 4097, 10007}) {
    INFO("words: " << words);
    ModVector m32(32, words);
    REQUIRE(ExpandMask(seed, &m32).ok());
    CHECK(m32.ToBytes() == EcbCounterKeystream(seed, 4 * words));
    ModVector m64(64, words);
    REQUIRE(ExpandMask(seed, &m64).ok());
    CHECK(m64.ToBytes() == EcbCounterKeystream(seed, 8 * words));
    std::string raw(8 * words, '\0');
    REQUIRE(RawKeystream(seed, reinterpret_cast<uint8_t*>(&raw[0]), raw.size()).ok());
    CHECK(raw == m64.ToBytes());
  }
}

TEST_CASE("ApplyMask adds and subtracts the expanded mask", "[secagg]") {
  const SecretBytes seed = CountingSeed(7);
  for (int bits : {32, 64}) {
    for (size_t words : {0, 5, 4096, 70001}) {
      INFO("bits: " << bits << " words: " << words);
      ModVector expanded(bits, words);
      REQUIRE(ExpandMask(seed, &expanded).ok());

      ModVector zero(bits, words);
      REQUIRE(ApplyMask(seed, MaskSign::kAdd, &zero).ok());
      CHECK(zero == expanded);

      ModVector negated(bits, words);
      REQUIRE(ApplyMask(seed, MaskSign::kSubtract, &negated).ok());
      REQUIRE(negated.AddAssign(expanded).ok());
      CHECK(negated == ModVector(bits, words));

      ModVector input(bits, words);
      for (size_t i = 0; i < words; ++i) input.Set(i, i * 2654435761u + 17);
      ModVector masked = input;
      REQUIRE(ApplyMask(seed, MaskSign::kAdd, &masked).ok());
      if (words > 0) CHECK(!(masked == input));
      REQUIRE(ApplyMask(seed, MaskSign::kSubtract, &masked).ok());
      CHECK(masked == input);
    }
  }
}

TEST_CASE("Mask PRG refuses a seed that is not 32 bytes, and seeds differ", "[secagg]") {
  ModVector v(32, 8);
  RequireInvalid(ApplyMask(SecretBytes(31), MaskSign::kAdd, &v), {"32 bytes", "got 31"});
  RequireInvalid(ExpandMask(SecretBytes(33), &v), {"32 bytes", "got 33"});
  uint8_t out[4];
  RequireInvalid(RawKeystream(SecretBytes(), out, sizeof(out)), {"32 bytes", "got 0"});
  ModVector a(32, 8), b(32, 8);
  REQUIRE(ExpandMask(CountingSeed(0), &a).ok());
  REQUIRE(ExpandMask(CountingSeed(1), &b).ok());
  CHECK(!(a == b));
}

// ---- Key agreement ----------------------------------------------------------------------

// RFC 7748, section 6.1.
constexpr char kAlicePrivate[] = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
constexpr char kAlicePublic[] = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
constexpr char kBobPrivate[] = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
constexpr char kBobPublic[] = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
constexpr char kSharedSecret[] =
    "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

KeyContext TestContext() {
  KeyContext context;
  context.federation = "hospital-consortium";
  context.round = 42;
  context.session_id = "session-0123456789abcdef";
  context.site_a = "site-alpha";
  context.site_b = "site-beta";
  context.purpose = "cohort/secagg/pairwise-mask";
  return context;
}

TEST_CASE("X25519 known answers from RFC 7748", "[secagg]") {
  auto alice = X25519KeyPairFromPrivate(FromHex(kAlicePrivate));
  auto bob = X25519KeyPairFromPrivate(FromHex(kBobPrivate));
  REQUIRE(alice.ok());
  REQUIRE(bob.ok());
  CHECK(Hex(alice->public_key) == kAlicePublic);
  CHECK(Hex(bob->public_key) == kBobPublic);
  CHECK(alice->private_key == FromHex(kAlicePrivate));

  auto ab = X25519SharedSecret(alice->private_key, bob->public_key);
  auto ba = X25519SharedSecret(bob->private_key, alice->public_key);
  REQUIRE(ab.ok());
  REQUIRE(ba.ok());
  CHECK(Hex(ab->view()) == kSharedSecret);
  CHECK(*ab == *ba);
}

TEST_CASE("DeriveKey known answer, symmetric in the site ids, bound to every field",
          "[secagg]") {
  const SecretBytes shared = FromHex(kSharedSecret);
  const KeyContext context = TestContext();
  auto key = DeriveKey(shared, context);
  REQUIRE(key.ok());
  REQUIRE(key->size() == 32);
  // Pinned, and cross-checked with Python's hmac/hashlib (RFC 5869 by hand): HKDF-SHA256,
  // empty salt, info = "cohort-secagg-kdf-v1" || purpose || federation || round (8 bytes BE)
  // || session id || smaller site id || larger site id, each string with a 4-byte BE length.
  // A change here changes every derived key on the wire.
  CHECK(Hex(key->view()) == "6d2a8489e0a7ddbf2befd61161d58e693a1be898670f2b967e1da4d7ca539d15");

  KeyContext swapped = context;
  std::swap(swapped.site_a, swapped.site_b);
  auto swapped_key = DeriveKey(shared, swapped);
  REQUIRE(swapped_key.ok());
  CHECK(*swapped_key == *key);

  std::vector<KeyContext> variants(7, context);
  variants[0].federation += "x";
  variants[1].round += 1;
  variants[2].session_id += "x";
  variants[3].site_a = "site-alphb";
  variants[4].site_b = "site-betb";
  variants[5].purpose = "cohort/secagg/share-encryption";
  // Moving a byte across a field boundary must change the encoding too.
  variants[6].federation = "hospital-consortiu";
  variants[6].session_id = "msession-0123456789abcdef";
  for (size_t i = 0; i < variants.size(); ++i) {
    INFO("variant " << i);
    auto other = DeriveKey(shared, variants[i]);
    REQUIRE(other.ok());
    CHECK(*other != *key);
  }
  SecretBytes other_secret = shared.Copy();
  other_secret.data()[0] ^= 1;
  auto other = DeriveKey(other_secret, context);
  REQUIRE(other.ok());
  CHECK(*other != *key);

  RequireInvalid(DeriveKey(SecretBytes(31), context).status(), {"32 bytes", "got 31"});
  KeyContext huge = context;
  huge.federation = std::string(2000, 'f');
  RequireInvalid(DeriveKey(shared, huge).status(), {"too long"});
}

TEST_CASE("Generated X25519 key pairs agree and malformed keys are refused", "[secagg]") {
  auto a = GenerateX25519KeyPair();
  auto b = GenerateX25519KeyPair();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->private_key.size() == kX25519KeyBytes);
  CHECK(a->public_key.size() == kX25519KeyBytes);
  CHECK(a->public_key != b->public_key);
  auto again = X25519KeyPairFromPrivate(a->private_key);
  REQUIRE(again.ok());
  CHECK(again->public_key == a->public_key);
  auto ab = X25519SharedSecret(a->private_key, b->public_key);
  auto ba = X25519SharedSecret(b->private_key, a->public_key);
  REQUIRE((ab.ok() && ba.ok()));
  CHECK(*ab == *ba);

  RequireInvalid(X25519SharedSecret(a->private_key, std::string(31, '\1')).status(),
                 {"X25519 public key must be 32 bytes, got 31"});
  RequireInvalid(X25519SharedSecret(SecretBytes(16), b->public_key).status(),
                 {"private key must be 32 bytes, got 16"});
  RequireInvalid(X25519KeyPairFromPrivate(SecretBytes(33)).status(), {"got 33"});
  // Low-order points: u = 0 and u = 1 force an all-zero shared secret.
  std::string zero(32, '\0');
  std::string one(32, '\0');
  one[0] = 1;
  CHECK(!X25519SharedSecret(a->private_key, zero).ok());
  CHECK(!X25519SharedSecret(a->private_key, one).ok());
}

// ---- AEAD -------------------------------------------------------------------------------

TEST_CASE("AES-GCM seals and opens with the same key and associated data", "[secagg]") {
  const SecretBytes key = RandomSecret(32);
  const SecretBytes plaintext(absl::string_view("a Shamir share, 40 bytes or so......"));
  auto sealed = Seal(key, plaintext, "from=a to=b round=3");
  REQUIRE(sealed.ok());
  CHECK(sealed->size() == 12 + plaintext.size() + 16);
  auto opened = Open(key, *sealed, "from=a to=b round=3");
  REQUIRE(opened.ok());
  CHECK(*opened == plaintext);

  auto sealed_again = Seal(key, plaintext, "from=a to=b round=3");
  REQUIRE(sealed_again.ok());
  CHECK(*sealed_again != *sealed);  // a fresh random nonce each time

  auto empty = Seal(key, SecretBytes(), "");
  REQUIRE(empty.ok());
  CHECK(empty->size() == 28);
  auto opened_empty = Open(key, *empty, "");
  REQUIRE(opened_empty.ok());
  CHECK(opened_empty->empty());
}

TEST_CASE("AES-GCM refuses tampering, other associated data, other keys, short input",
          "[secagg]") {
  const SecretBytes key = RandomSecret(32);
  const SecretBytes plaintext(absl::string_view("pairwise key share"));
  const std::string aad = "from=a to=b round=3";
  auto sealed = Seal(key, plaintext, aad);
  REQUIRE(sealed.ok());
  const size_t positions[] = {0, 11, 12, 12 + plaintext.size() - 1, 12 + plaintext.size(),
                              sealed->size() - 1};  // nonce, ciphertext, tag
  for (size_t position : positions) {
    for (int bit : {0, 7}) {
      INFO("flipped byte " << position << " bit " << bit);
      std::string tampered = *sealed;
      tampered[position] = static_cast<char>(tampered[position] ^ (1 << bit));
      CHECK(Open(key, tampered, aad).status().code() == absl::StatusCode::kUnauthenticated);
    }
  }
  CHECK(Open(key, *sealed, "from=a to=b round=4").status().code() ==
        absl::StatusCode::kUnauthenticated);
  CHECK(Open(key, *sealed, "").status().code() == absl::StatusCode::kUnauthenticated);
  CHECK(Open(RandomSecret(32), *sealed, aad).status().code() ==
        absl::StatusCode::kUnauthenticated);
  CHECK(Open(key, sealed->substr(0, sealed->size() - 1), aad).status().code() ==
        absl::StatusCode::kUnauthenticated);
  RequireInvalid(Open(key, sealed->substr(0, 27), aad).status(), {"at least 28 bytes", "got 27"});
  RequireInvalid(Open(key, "", aad).status(), {"got 0"});
  RequireInvalid(Seal(SecretBytes(16), plaintext, aad).status(), {"32 bytes", "got 16"});
  RequireInvalid(Open(SecretBytes(16), *sealed, aad).status(), {"32 bytes", "got 16"});
}

// ---- Shamir -----------------------------------------------------------------------------

// Calls f with every subset of {0, ..., n-1} of size k (as index lists).
template <typename F>
void ForEachSubset(int n, int k, F f) {
  std::vector<int> chosen;
  std::function<void(int)> rec = [&](int next) {
    if (static_cast<int>(chosen.size()) == k) {
      f(chosen);
      return;
    }
    for (int i = next; i < n; ++i) {
      chosen.push_back(i);
      rec(i + 1);
      chosen.pop_back();
    }
  };
  rec(0);
}

std::vector<ShamirShare> Pick(const std::vector<ShamirShare>& shares,
                              const std::vector<int>& indices) {
  std::vector<ShamirShare> out;
  for (int i : indices) out.push_back({shares[i].x, shares[i].y.Copy()});
  return out;
}

TEST_CASE("Shamir reconstructs from every subset of t shares", "[secagg]") {
  for (int t = 1; t <= 7; ++t) {
    for (int n = t; n <= 10; ++n) {
      const SecretBytes secret = RandomSecret(32);
      std::vector<uint32_t> xs;
      for (int i = 0; i < n; ++i) xs.push_back(static_cast<uint32_t>(3 * i + 1));
      auto shares = ShamirSplit(secret, t, xs);
      REQUIRE(shares.ok());
      REQUIRE(shares->size() == static_cast<size_t>(n));
      for (const ShamirShare& share : *shares) REQUIRE(share.y.size() == kShamirShareBytes);
      int failures = 0, subsets = 0;
      ForEachSubset(n, t, [&](const std::vector<int>& subset) {
        ++subsets;
        auto got = ShamirReconstruct(Pick(*shares, subset), t);
        if (!got.ok() || *got != secret) ++failures;
      });
      INFO("t=" << t << " n=" << n << " subsets=" << subsets);
      CHECK(failures == 0);
      // All n shares: the extras are checked and agree.
      auto all = ShamirReconstruct(*shares, t);
      REQUIRE(all.ok());
      CHECK(*all == secret);
      // One share fewer than the threshold is refused.
      if (t > 1) {
        std::vector<ShamirShare> few = Pick(*shares, {});
        for (int i = 0; i < t - 1; ++i) few.push_back({(*shares)[i].x, (*shares)[i].y.Copy()});
        RequireInvalid(ShamirReconstruct(few, t).status(), {"at least", "shares"});
      }
    }
  }
}

TEST_CASE("Shamir known structure: threshold 1 shares are the secret's limbs", "[secagg]") {
  // With t = 1 every share is the constant polynomial: the 7-byte limbs of the secret.
  SecretBytes secret(32);
  for (size_t i = 0; i < 32; ++i) secret.data()[i] = static_cast<uint8_t>(0xa0 + i);
  const uint32_t xs[] = {1, 2};
  auto shares = ShamirSplit(secret, 1, xs);
  REQUIRE(shares.ok());
  CHECK(Hex((*shares)[0].y.view()) ==
        "a0a1a2a3a4a5a600"
        "a7a8a9aaabacad00"
        "aeafb0b1b2b3b400"
        "b5b6b7b8b9babb00"
        "bcbdbebf00000000");
  CHECK((*shares)[0].y == (*shares)[1].y);
}

TEST_CASE("Shamir detects a corrupted extra share", "[secagg]") {
  const SecretBytes secret = RandomSecret(32);
  const uint32_t xs[] = {5, 9, 11, 20, 1000};
  auto shares = ShamirSplit(secret, 3, xs);
  REQUIRE(shares.ok());
  for (size_t bad = 3; bad < 5; ++bad) {
    for (int limb = 0; limb < 5; ++limb) {
      std::vector<ShamirShare> copy = Pick(*shares, {0, 1, 2, 3, 4});
      copy[bad].y.data()[8 * limb] ^= 1;
      auto got = ShamirReconstruct(copy, 3);
      INFO("bad share " << bad << " limb " << limb << ": " << got.status());
      CHECK(got.status().code() == absl::StatusCode::kDataLoss);
    }
  }
  // A share with the wrong x is as bad as a wrong y.
  std::vector<ShamirShare> moved = Pick(*shares, {0, 1, 2, 3});
  moved[3].x = 21;
  CHECK(ShamirReconstruct(moved, 3).status().code() == absl::StatusCode::kDataLoss);
  // Corrupting one of only t shares gives a wrong polynomial; the limb range check usually
  // catches it (a limb decodes to more than 7 bytes) but cannot always.
  std::vector<ShamirShare> exact = Pick(*shares, {0, 1, 2});
  exact[0].y.data()[0] ^= 1;
  auto got = ShamirReconstruct(exact, 3);
  CHECK((!got.ok() || *got != secret));
}

TEST_CASE("Shamir refuses bad parameters, zero or duplicate x, malformed y", "[secagg]") {
  const SecretBytes secret = RandomSecret(32);
  const uint32_t xs[] = {1, 2, 3};
  RequireInvalid(ShamirSplit(SecretBytes(31), 2, xs).status(), {"32 bytes", "got 31"});
  RequireInvalid(ShamirSplit(secret, 0, xs).status(), {"threshold", "got 0"});
  RequireInvalid(ShamirSplit(secret, 4, xs).status(), {"threshold", "[1, 3]", "got 4"});
  const uint32_t with_zero[] = {1, 0, 3};
  RequireInvalid(ShamirSplit(secret, 2, with_zero).status(), {"x = 0"});
  const uint32_t duplicate[] = {1, 3, 3};
  RequireInvalid(ShamirSplit(secret, 2, duplicate).status(), {"x = 3", "more than once"});

  auto shares = ShamirSplit(secret, 2, xs);
  REQUIRE(shares.ok());
  std::vector<ShamirShare> dup = Pick(*shares, {0, 1, 2});
  dup[2].x = dup[0].x;
  RequireInvalid(ShamirReconstruct(dup, 2).status(), {"x = 1", "more than once"});
  std::vector<ShamirShare> zero = Pick(*shares, {0, 1});
  zero[1].x = 0;
  RequireInvalid(ShamirReconstruct(zero, 2).status(), {"x = 0"});
  std::vector<ShamirShare> short_y = Pick(*shares, {0, 1});
  short_y[1].y = SecretBytes(39);
  RequireInvalid(ShamirReconstruct(short_y, 2).status(), {"39 bytes", "expected 40"});
  std::vector<ShamirShare> big_y = Pick(*shares, {0, 1});
  for (int b = 0; b < 8; ++b) big_y[1].y.data()[16 + b] = 0xff;  // limb 2 >= 2^61 - 1
  RequireInvalid(ShamirReconstruct(big_y, 2).status(), {"limb 2", "outside"});
  RequireInvalid(ShamirReconstruct(Pick(*shares, {0, 1}), 0).status(), {"threshold"});
  RequireInvalid(ShamirReconstruct(Pick(*shares, {0}), 2).status(),
                 {"need at least 2 shares, got 1"});
  // Field elements that do not decode to a 32-byte secret (limb 4 holds only 4 bytes).
  std::vector<ShamirShare> forged(2);
  forged[0].x = 1;
  forged[1].x = 2;
  for (ShamirShare& s : forged) {
    s.y = SecretBytes(40);
    s.y.data()[32 + 5] = 1;  // limb 4 = 2^40 on both: the constant polynomial 2^40
  }
  RequireInvalid(ShamirReconstruct(forged, 2).status(), {"limb 4", "does not decode"});
}

// ---- Quantizer --------------------------------------------------------------------------

QuantizationParams Params(int bits, double r, int modulus_bits) {
  QuantizationParams p;
  p.bits = bits;
  p.clip_range = r;
  p.modulus_bits = modulus_bits;
  return p;
}

TEST_CASE("Quantization parameters are validated, including the wrap bound", "[secagg]") {
  CHECK(ValidateQuantization(Params(16, 1.0, 32), 100).ok());
  RequireInvalid(ValidateQuantization(Params(0, 1.0, 32), 1), {"aggregation.secure.bits", "0"});
  RequireInvalid(ValidateQuantization(Params(63, 1.0, 64), 1), {"aggregation.secure.bits", "63"});
  RequireInvalid(ValidateQuantization(Params(8, 0.0, 32), 1), {"aggregation.secure.clip_range"});
  RequireInvalid(ValidateQuantization(Params(8, -1.0, 32), 1), {"aggregation.secure.clip_range"});
  RequireInvalid(ValidateQuantization(Params(8, std::numeric_limits<double>::infinity(), 32), 1),
                 {"aggregation.secure.clip_range"});
  RequireInvalid(ValidateQuantization(Params(8, std::nan(""), 32), 1),
                 {"aggregation.secure.clip_range"});
  RequireInvalid(ValidateQuantization(Params(8, 1.0, 16), 1),
                 {"aggregation.secure.modulus_bits", "16"});
  RequireInvalid(ValidateQuantization(Params(8, 1.0, 32), 0), {"at least 1", "got 0"});

  // 2 * (2^31 - 1) = 2^32 - 2 fits; 3 summands wrap.
  CHECK(ValidateQuantization(Params(31, 1.0, 32), 2).ok());
  RequireInvalid(ValidateQuantization(Params(31, 1.0, 32), 3),
                 {"aggregation.secure.bits: 31-bit values from 3 sites can wrap modulo 2^32"});
  CHECK(ValidateQuantization(Params(32, 1.0, 32), 1).ok());
  RequireInvalid(ValidateQuantization(Params(32, 1.0, 32), 2), {"wrap modulo 2^32"});
  RequireInvalid(ValidateQuantization(Params(33, 1.0, 32), 1), {"wrap modulo 2^32"});
  RequireInvalid(ValidateQuantization(Params(24, 1.0, 32), 300),
                 {"aggregation.secure.bits: 24-bit values from 300 sites can wrap modulo 2^32"});
  CHECK(ValidateQuantization(Params(24, 1.0, 64), 300).ok());
  // 4 * (2^62 - 1) = 2^64 - 4 fits; 5 wrap.
  CHECK(ValidateQuantization(Params(62, 1.0, 64), 4).ok());
  RequireInvalid(ValidateQuantization(Params(62, 1.0, 64), 5), {"wrap modulo 2^64"});
  CHECK(ValidateQuantization(Params(1, 1.0, 32), int64_t{0xffffffff}).ok());
  RequireInvalid(ValidateQuantization(Params(1, 1.0, 32), int64_t{1} << 32), {"wrap"});
  // No overflow in the check itself at the extremes.
  RequireInvalid(ValidateQuantization(Params(62, 1.0, 64), std::numeric_limits<int64_t>::max()),
                 {"wrap modulo 2^64"});
}

TEST_CASE("Stochastic rounding is unbiased", "[secagg]") {
  const QuantizationParams params = Params(4, 1.0, 32);  // scale 7.5
  const size_t n = 200000;
  const std::vector<float> values(n, 0.3f);
  const double x = (static_cast<double>(0.3f) + 1.0) * 7.5;  // 9.75...
  ModVector out(32, n);
  REQUIRE(Quantize(values, params, CountingSeed(3), &out).ok());
  double sum = 0;
  size_t outside = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint64_t q = out.Get(i);
    if (q != 9 && q != 10) ++outside;
    sum += static_cast<double>(q);
  }
  CHECK(outside == 0);
  const double p = x - 9;
  const double standard_error = std::sqrt(p * (1 - p) / n);
  CHECK(std::abs(sum / n - x) < 5 * standard_error);
  // The same through the decoder: the mean decodes to the value.
  const std::vector<double> decoded = DequantizeSum(out, 0, n, 1, params);
  double mean = 0;
  for (double d : decoded) mean += d;
  mean /= n;
  CHECK(std::abs(mean - 0.3) < 5 * standard_error / 7.5);

  // The same seed repeats; another seed does not.
  ModVector again(32, n), other(32, n);
  REQUIRE(Quantize(values, params, CountingSeed(3), &again).ok());
  REQUIRE(Quantize(values, params, CountingSeed(4), &other).ok());
  CHECK(again == out);
  CHECK(!(other == out));
}

TEST_CASE("Sums of exactly representable values decode exactly", "[secagg]") {
  for (int modulus_bits : {32, 64}) {
    // bits 8, r = 127.5: scale 1, so v = k - 127.5 encodes to exactly k.
    const QuantizationParams params = Params(8, 127.5, modulus_bits);
    const int summands = 5;
    REQUIRE(ValidateQuantization(params, summands).ok());
    const size_t n = 256;
    ModVector sum(modulus_bits, n);
    std::vector<double> expected(n, 0.0);
    for (int s = 0; s < summands; ++s) {
      std::vector<float> values(n);
      for (size_t i = 0; i < n; ++i) {
        values[i] = static_cast<float>(static_cast<double>((i * (s + 3)) % 256) - 127.5);
        expected[i] += values[i];
      }
      ModVector encoded(modulus_bits, n);
      REQUIRE(Quantize(values, params, RandomSecret(32), &encoded).ok());
      for (size_t i = 0; i < n; ++i) REQUIRE(encoded.Get(i) == (i * (s + 3)) % 256);
      REQUIRE(sum.AddAssign(encoded).ok());
    }
    const std::vector<double> decoded = DequantizeSum(sum, 0, n, summands, params);
    REQUIRE(decoded.size() == n);
    for (size_t i = 0; i < n; ++i) REQUIRE(decoded[i] == expected[i]);
    // A sub-range.
    const std::vector<double> part = DequantizeSum(sum, 10, 3, summands, params);
    REQUIRE(part.size() == 3);
    CHECK(part[0] == expected[10]);
    CHECK(part[2] == expected[12]);
  }
  // 40-bit values mod 2^64: r = (2^40 - 1) / 2 keeps the scale at 1.
  const QuantizationParams wide = Params(40, (std::ldexp(1.0, 40) - 1) / 2, 64);
  const std::vector<float> values = {-static_cast<float>(wide.clip_range), 0.5f, 1024.5f};
  ModVector encoded(64, 3);
  REQUIRE(Quantize(values, wide, RandomSecret(32), &encoded).ok());
  const std::vector<double> decoded = DequantizeSum(encoded, 0, 3, 1, wide);
  CHECK(decoded[1] == 0.5);
  CHECK(decoded[2] == 1024.5);
}

TEST_CASE("Quantize clips, and refuses non-finite values and bad arguments", "[secagg]") {
  const QuantizationParams params = Params(16, 1.0, 32);
  const std::vector<float> values = {5.0f, -5.0f, 1.0f, -1.0f};
  ModVector out(32, 6);
  REQUIRE(Quantize(values, params, RandomSecret(32), &out, 2).ok());
  CHECK(out.Get(0) == 0);  // untouched below the offset
  CHECK(out.Get(2) == 65535);
  CHECK(out.Get(3) == 0);
  CHECK(out.Get(4) == 65535);
  CHECK(out.Get(5) == 0);
  const std::vector<double> decoded = DequantizeSum(out, 2, 4, 1, params);
  CHECK(decoded == std::vector<double>{1.0, -1.0, 1.0, -1.0});

  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  RequireInvalid(Quantize(std::vector<float>{0.0f, nan}, params, RandomSecret(32), &out),
                 {"value 1", "not finite"});
  RequireInvalid(Quantize(std::vector<float>{inf}, params, RandomSecret(32), &out), {"value 0"});
  RequireInvalid(Quantize(values, params, SecretBytes(16), &out), {"rounding seed", "got 16"});
  RequireInvalid(Quantize(values, params, RandomSecret(32), &out, 3), {"offset 3", "6-word"});
  ModVector wide(64, 4);
  RequireInvalid(Quantize(values, params, RandomSecret(32), &wide), {"2^64", "2^32"});
  RequireInvalid(Quantize(values, Params(0, 1.0, 32), RandomSecret(32), &out),
                 {"aggregation.secure.bits"});
  CHECK(DequantizeSum(out, 5, 2, 1, params).empty());
}

// ---- Signatures -------------------------------------------------------------------------

TEST_CASE("Key advertisements are signed with the TLS key and verified with the certificate",
          "[secagg]") {
  testing::TempDir dir;
  testing::TestPki pki(dir.path(), "fed-test");
  const config::TlsFiles alpha = pki.IssueSite("site-alpha");
  const config::TlsFiles beta = pki.IssueSite("site-beta");
  auto alpha_key = ReadFileToString(alpha.key);
  auto alpha_cert = ReadFileToString(alpha.cert);
  auto beta_cert = ReadFileToString(beta.cert);
  REQUIRE((alpha_key.ok() && alpha_cert.ok() && beta_cert.ok()));

  const std::string message = "round=3 site=site-alpha x25519=0123...";
  auto signature = SignMessage(*alpha_key, message);
  REQUIRE(signature.ok());
  CHECK(!signature->empty());
  CHECK(VerifyMessage(*alpha_cert, message, *signature).ok());

  CHECK(VerifyMessage(*alpha_cert, message + ".", *signature).code() ==
        absl::StatusCode::kUnauthenticated);
  CHECK(VerifyMessage(*beta_cert, message, *signature).code() ==
        absl::StatusCode::kUnauthenticated);
  std::string flipped = *signature;
  flipped[flipped.size() / 2] ^= 0x01;
  CHECK(VerifyMessage(*alpha_cert, message, flipped).code() ==
        absl::StatusCode::kUnauthenticated);
  CHECK(VerifyMessage(*alpha_cert, message, "").code() == absl::StatusCode::kUnauthenticated);
  // The CA's own key is a different key too.
  auto ca_signature = SignMessage(pki.ca().key_pem, message);
  REQUIRE(ca_signature.ok());
  CHECK(VerifyMessage(*alpha_cert, message, *ca_signature).code() ==
        absl::StatusCode::kUnauthenticated);
  CHECK(VerifyMessage(pki.ca().cert_pem, message, *ca_signature).ok());

  RequireInvalid(VerifyMessage("not a certificate", message, *signature), {"certificate"});
  RequireInvalid(SignMessage("not a key", message).status(), {"private key"});
}

}  // namespace
}  // namespace cohort::secagg
