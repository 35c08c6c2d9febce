#ifndef COHORT_COMMON_SECAGG_SECRET_H_
#define COHORT_COMMON_SECAGG_SECRET_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace cohort::secagg {

// Key material that is wiped (OPENSSL_cleanse) when it is destroyed or overwritten.
// Move-only, so a secret is never silently duplicated; Copy() makes duplication explicit.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(size_t size) : bytes_(size, 0) {}
  explicit SecretBytes(absl::string_view bytes) : bytes_(bytes.begin(), bytes.end()) {}
  ~SecretBytes() { Wipe(); }
  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  SecretBytes Copy() const { return SecretBytes(view()); }
  // Overwrites every byte with zeros and empties the buffer.
  void Wipe();

  uint8_t* data() { return bytes_.data(); }
  const uint8_t* data() const { return bytes_.data(); }
  size_t size() const { return bytes_.size(); }
  bool empty() const { return bytes_.empty(); }
  absl::string_view view() const {
    return absl::string_view(reinterpret_cast<const char*>(bytes_.data()), bytes_.size());
  }
  bool operator==(const SecretBytes& other) const { return bytes_ == other.bytes_; }
  bool operator!=(const SecretBytes& other) const { return !(*this == other); }

 private:
  std::vector<uint8_t> bytes_;
};

// `size` bytes from the OS's entropy source (RAND_priv_bytes).
SecretBytes RandomSecret(size_t size);

}  // namespace cohort::secagg

#endif  // COHORT_COMMON_SECAGG_SECRET_H_
