#ifndef COHORT_COMMON_SECAGG_PRG_H_
#define COHORT_COMMON_SECAGG_PRG_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "common/secagg/mod_vector.h"
#include "common/secagg/secret.h"

namespace cohort::secagg {

// The mask PRG: the AES-256-CTR keystream (OpenSSL EVP, all-zero 16-byte initial counter
// block) under a 32-byte seed, read as consecutive little-endian words of the vector's
// modulus (4 bytes per word mod 2^32, 8 bytes mod 2^64). Every seed is used for exactly
// one mask, so the fixed counter block never repeats a (key, counter) pair.
enum class MaskSign { kAdd, kSubtract };

// vector[i] = vector[i] +/- PRG(seed)[i] (mod 2^bits), for every i. The keystream is
// produced in cache-sized blocks and folded in as it is generated (never a second
// model-sized buffer). InvalidArgument unless the seed is 32 bytes.
absl::Status ApplyMask(const SecretBytes& seed, MaskSign sign, ModVector* vector);

// out = PRG(seed) (overwrites every word). Same keystream as ApplyMask.
absl::Status ExpandMask(const SecretBytes& seed, ModVector* out);

// Raw OpenSSL AES-256-CTR keystream into `out` (the benchmark baseline).
absl::Status RawKeystream(const SecretBytes& seed, uint8_t* out, size_t bytes);

}  // namespace cohort::secagg

#endif  // COHORT_COMMON_SECAGG_PRG_H_
