#include "common/model/checkpoint.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <variant>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/util/files.h"

namespace cohort::model {
namespace {

constexpr char kArchive[] = "archive";
constexpr size_t kAlignment = 64;  // PyTorch aligns record data to 64 bytes (for mmap).
constexpr uint64_t kZipLimit = 0xFFFFFFFFull;
// Unpickler bounds. A state dict nests tuples 2 deep (a tensor's size inside its arguments);
// memo references copy values, so without a bound a few bytes that copy a tuple of two copies
// of the last one double the memory with every 7 bytes of pickle.
constexpr int kMaxPickleDepth = 32;
// Values (and 8-byte words of text) copied into or out of the memo. torch.save's pickle of a
// state dict costs about 50 per tensor (tests/data/torch_save_linear_3x2.pt: 107 for two),
// ours nothing (no memo).
constexpr uint64_t kMaxPickleMemoCopies = uint64_t{1} << 18;

// ---------------------------------------------------------------------------------------
// Writing

void PutU16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v & 0xFF));
  out->push_back(static_cast<char>(v >> 8));
}
void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// Emits the pickle opcodes for the subset of protocol 2 a state dict needs.
class PickleWriter {
 public:
  PickleWriter() { out_ += "\x80\x02"; }
  void Mark() { out_ += '('; }
  void Tuple() { out_ += 't'; }
  void EmptyTuple() { out_ += ')'; }
  void EmptyDict() { out_ += '}'; }
  void SetItems() { out_ += 'u'; }
  void Reduce() { out_ += 'R'; }
  void PersistentId() { out_ += 'Q'; }
  void False() { out_ += '\x89'; }
  void Stop() { out_ += '.'; }
  void Global(absl::string_view module, absl::string_view name) {
    absl::StrAppend(&out_, "c", module, "\n", name, "\n");
  }
  void String(absl::string_view s) {
    out_ += 'X';
    PutU32(&out_, static_cast<uint32_t>(s.size()));
    out_.append(s.data(), s.size());
  }
  void Int(int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) {
      out_ += 'J';
      PutU32(&out_, static_cast<uint32_t>(static_cast<int32_t>(v)));
      return;
    }
    out_ += '\x8a';  // LONG1: little-endian two's complement, 8 bytes.
    out_ += '\x08';
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
  const std::string& bytes() const { return out_; }

 private:
  std::string out_;
};

std::string EncodePickle(const tensor::ParameterLayout& layout) {
  PickleWriter p;
  p.EmptyDict();
  p.Mark();
  for (size_t i = 0; i < layout.tensors().size(); ++i) {
    const tensor::TensorSpec& spec = layout.tensors()[i];
    p.String(spec.name);
    p.Global("torch._utils", "_rebuild_tensor_v2");
    p.Mark();
    // Persistent id of the storage: ('storage', torch.FloatStorage, key, 'cpu', numel).
    p.Mark();
    p.String("storage");
    p.Global("torch", "FloatStorage");
    p.String(absl::StrCat(i));
    p.String("cpu");
    p.Int(spec.NumValues());
    p.Tuple();
    p.PersistentId();
    p.Int(0);  // storage offset
    p.Mark();
    for (int64_t d : spec.shape) p.Int(d);
    p.Tuple();
    p.Mark();  // contiguous strides
    int64_t stride = 1;
    std::vector<int64_t> strides(spec.shape.size());
    for (size_t k = spec.shape.size(); k-- > 0;) {
      strides[k] = stride;
      stride *= spec.shape[k];
    }
    for (int64_t s : strides) p.Int(s);
    p.Tuple();
    p.False();  // requires_grad
    p.Global("collections", "OrderedDict");
    p.EmptyTuple();
    p.Reduce();  // backward_hooks = OrderedDict()
    p.Tuple();
    p.Reduce();
  }
  p.SetItems();
  p.Stop();
  return p.bytes();
}

// Writes a zip archive of stored (uncompressed) entries, each entry's data aligned to 64
// bytes by padding the local header's extra field, as PyTorch does.
class ZipWriter {
 public:
  explicit ZipWriter(const ByteSink& sink) : sink_(sink) {}

  absl::Status Add(const std::string& name, absl::string_view data) {
    if (data.size() >= kZipLimit || offset_ >= kZipLimit) {
      return absl::InvalidArgumentError("checkpoint larger than 4 GiB is not supported");
    }
    const uint32_t crc = static_cast<uint32_t>(
        crc32_z(crc32_z(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(data.data()), data.size()));
    const size_t header_size = 30 + name.size() + 4;  // + extra field header
    const size_t padding = (kAlignment - (offset_ + header_size) % kAlignment) % kAlignment;
    std::string header;
    PutU32(&header, 0x04034b50);
    PutU16(&header, 20);  // version needed
    PutU16(&header, 0);   // flags
    PutU16(&header, 0);   // stored
    PutU16(&header, 0);   // time
    PutU16(&header, 0x21);  // date (1980-01-01)
    PutU32(&header, crc);
    PutU32(&header, static_cast<uint32_t>(data.size()));
    PutU32(&header, static_cast<uint32_t>(data.size()));
    PutU16(&header, static_cast<uint16_t>(name.size()));
    PutU16(&header, static_cast<uint16_t>(4 + padding));
    header += name;
    PutU16(&header, 0x4246);  // "FB": PyTorch's padding extra field id
    PutU16(&header, static_cast<uint16_t>(padding));
    header.append(padding, 'Z');
    entries_.push_back({name, crc, static_cast<uint32_t>(data.size()),
                        static_cast<uint32_t>(offset_)});
    if (absl::Status s = sink_(header); !s.ok()) return s;
    if (absl::Status s = sink_(data); !s.ok()) return s;
    offset_ += header.size() + data.size();
    return absl::OkStatus();
  }

  absl::Status Finish() {
    std::string directory;
    for (const Entry& e : entries_) {
      PutU32(&directory, 0x02014b50);
      PutU16(&directory, 20);  // version made by
      PutU16(&directory, 20);  // version needed
      PutU16(&directory, 0);
      PutU16(&directory, 0);
      PutU16(&directory, 0);
      PutU16(&directory, 0x21);
      PutU32(&directory, e.crc);
      PutU32(&directory, e.size);
      PutU32(&directory, e.size);
      PutU16(&directory, static_cast<uint16_t>(e.name.size()));
      PutU16(&directory, 0);  // extra
      PutU16(&directory, 0);  // comment
      PutU16(&directory, 0);  // disk
      PutU16(&directory, 0);  // internal attributes
      PutU32(&directory, 0);  // external attributes
      PutU32(&directory, e.offset);
      directory += e.name;
    }
    if (offset_ + directory.size() >= kZipLimit) {
      return absl::InvalidArgumentError("checkpoint larger than 4 GiB is not supported");
    }
    std::string end;
    PutU32(&end, 0x06054b50);
    PutU16(&end, 0);
    PutU16(&end, 0);
    PutU16(&end, static_cast<uint16_t>(entries_.size()));
    PutU16(&end, static_cast<uint16_t>(entries_.size()));
    PutU32(&end, static_cast<uint32_t>(directory.size()));
    PutU32(&end, static_cast<uint32_t>(offset_));
    PutU16(&end, 0);
    if (absl::Status s = sink_(directory); !s.ok()) return s;
    return sink_(end);
  }

 private:
  struct Entry {
    std::string name;
    uint32_t crc;
    uint32_t size;
    uint32_t offset;
  };
  const ByteSink& sink_;
  std::vector<Entry> entries_;
  uint64_t offset_ = 0;
};

absl::Status EncodeTo(const tensor::ParameterLayout& layout, const std::vector<float>& values,
                      const ByteSink& sink) {
  if (static_cast<int64_t>(values.size()) != layout.TotalValues()) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint has ", values.size(),
                                                   " values but the layout needs ",
                                                   layout.TotalValues()));
  }
  ZipWriter zip(sink);
  const std::string prefix = absl::StrCat(kArchive, "/");
  if (absl::Status s = zip.Add(prefix + "data.pkl", EncodePickle(layout)); !s.ok()) return s;
  size_t offset = 0;
  for (size_t i = 0; i < layout.tensors().size(); ++i) {
    const size_t n = layout.tensors()[i].NumValues();
    absl::string_view data(reinterpret_cast<const char*>(values.data() + offset),
                           n * sizeof(float));
    if (absl::Status s = zip.Add(absl::StrCat(prefix, "data/", i), data); !s.ok()) return s;
    offset += n;
  }
  if (absl::Status s = zip.Add(prefix + "byteorder", "little"); !s.ok()) return s;
  if (absl::Status s = zip.Add(prefix + "version", "3\n"); !s.ok()) return s;
  return zip.Finish();
}

// ---------------------------------------------------------------------------------------
// Reading

uint32_t GetU32(absl::string_view b, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}
uint16_t GetU16(absl::string_view b, size_t at) {
  return static_cast<uint16_t>(static_cast<unsigned char>(b[at]) |
                               (static_cast<unsigned char>(b[at + 1]) << 8));
}

absl::Status Corrupt(const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("not a valid checkpoint: ", why));
}

// Maps entry names to their stored bytes (views into `bytes`), via the central directory.
absl::StatusOr<std::map<std::string, absl::string_view>> ReadZip(absl::string_view bytes) {
  if (bytes.size() < 22) return Corrupt("too short for a zip archive");
  size_t end = std::string::npos;
  for (size_t i = bytes.size() - 22 + 1; i-- > 0 && bytes.size() - i <= 22 + 65535;) {
    if (GetU32(bytes, i) == 0x06054b50) {
      end = i;
      break;
    }
  }
  if (end == std::string::npos) return Corrupt("no zip end-of-directory record");
  const uint16_t count = GetU16(bytes, end + 10);
  const uint32_t dir_size = GetU32(bytes, end + 12);
  const uint32_t dir_offset = GetU32(bytes, end + 16);
  if (static_cast<uint64_t>(dir_offset) + dir_size > end) return Corrupt("bad directory offset");
  std::map<std::string, absl::string_view> entries;
  size_t at = dir_offset;
  for (uint16_t i = 0; i < count; ++i) {
    if (at + 46 > end || GetU32(bytes, at) != 0x02014b50) return Corrupt("bad directory entry");
    const uint16_t method = GetU16(bytes, at + 10);
    const uint32_t crc = GetU32(bytes, at + 16);
    const uint32_t size = GetU32(bytes, at + 20);
    const uint32_t raw_size = GetU32(bytes, at + 24);
    const uint16_t name_len = GetU16(bytes, at + 28);
    const uint16_t extra_len = GetU16(bytes, at + 30);
    const uint16_t comment_len = GetU16(bytes, at + 32);
    const uint32_t local = GetU32(bytes, at + 42);
    if (at + 46 + name_len > end) return Corrupt("bad directory entry name");
    std::string name(bytes.substr(at + 46, name_len));
    if (method != 0 || size != raw_size) {
      return Corrupt(absl::StrCat("entry ", name, " is compressed (only stored entries)"));
    }
    if (static_cast<uint64_t>(local) + 30 > bytes.size() || GetU32(bytes, local) != 0x04034b50) {
      return Corrupt(absl::StrCat("bad local header for ", name));
    }
    const uint64_t data_at = static_cast<uint64_t>(local) + 30 + GetU16(bytes, local + 26) +
                             GetU16(bytes, local + 28);
    if (data_at + size > bytes.size()) return Corrupt(absl::StrCat("entry ", name, " truncated"));
    absl::string_view data = bytes.substr(data_at, size);
    if (crc32_z(crc32_z(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(data.data()),
                data.size()) != crc) {
      return Corrupt(absl::StrCat("entry ", name, " fails its CRC check"));
    }
    entries[name] = data;
    at += 46 + name_len + extra_len + comment_len;
  }
  return entries;
}

// Values on the unpickler's stack.
struct PickleValue;
using PickleList = std::vector<PickleValue>;
struct Global {
  std::string module, name;
};
struct TensorRef {
  std::string storage_key;
  std::string storage_type;
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
};
struct Mark {};
struct PickleValue {
  std::variant<std::monostate, int64_t, bool, std::string, Global, PickleList, TensorRef,
               std::shared_ptr<std::vector<std::pair<std::string, TensorRef>>>, Mark>
      v;
  // Lists only: CopyCost of the list. Every value: the nesting depth of its lists (0: none).
  uint64_t weight = 1;
  int depth = 0;
};
using StateDict = std::shared_ptr<std::vector<std::pair<std::string, TensorRef>>>;

// What a copy of `value` costs, in values plus 8-byte words of text (a state dict is shared,
// not copied).
uint64_t CopyCost(const PickleValue& value) {
  if (std::holds_alternative<PickleList>(value.v)) return value.weight;
  if (const auto* s = std::get_if<std::string>(&value.v)) return 1 + s->size() / 8;
  if (const auto* g = std::get_if<Global>(&value.v)) {
    return 1 + (g->module.size() + g->name.size()) / 8;
  }
  if (const auto* t = std::get_if<TensorRef>(&value.v)) {
    return 1 + (t->storage_key.size() + t->storage_type.size()) / 8 + t->size.size() +
           t->stride.size();
  }
  return 1;
}

// A small unpickler for the opcodes a float32 state dict uses (ours and torch.save's).
// Anything else is refused: a checkpoint is data, never code to run.
class PickleReader {
 public:
  explicit PickleReader(absl::string_view bytes) : b_(bytes) {}

  absl::StatusOr<StateDict> Run() {
    while (pos_ < b_.size()) {
      const char op = b_[pos_++];
      absl::Status s = Step(op);
      if (!s.ok()) return s;
      if (op == '.') {
        if (stack_.size() != 1 || !std::holds_alternative<StateDict>(stack_[0].v)) {
          return Corrupt("pickle does not hold a dict of tensors");
        }
        return std::get<StateDict>(stack_[0].v);
      }
    }
    return Corrupt("pickle ends without STOP");
  }

 private:
  absl::Status Need(size_t n) {
    return pos_ + n <= b_.size() ? absl::OkStatus() : Corrupt("pickle truncated");
  }
  absl::StatusOr<PickleValue> Pop() {
    if (stack_.empty()) return Corrupt("pickle stack underflow");
    PickleValue v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  absl::StatusOr<PickleList> PopToMark() {
    size_t mark = stack_.size();
    while (mark > 0 && !std::holds_alternative<Mark>(stack_[mark - 1].v)) --mark;
    if (mark == 0) return Corrupt("pickle MARK missing");
    PickleList items(std::make_move_iterator(stack_.begin() + mark),
                     std::make_move_iterator(stack_.end()));
    stack_.resize(mark - 1);
    return items;
  }
  // Pushes a tuple or list of `items`, refusing nesting deeper than kMaxPickleDepth (the
  // values' destructors recurse once per level).
  absl::Status PushList(PickleList items) {
    PickleValue list;
    for (const PickleValue& item : items) {
      list.weight += CopyCost(item);
      list.depth = std::max(list.depth, item.depth);
    }
    if (++list.depth > kMaxPickleDepth) {
      return Corrupt(absl::StrCat("pickle nests lists deeper than ", kMaxPickleDepth));
    }
    list.v = std::move(items);
    stack_.push_back(std::move(list));
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> Line() {
    size_t nl = b_.find('\n', pos_);
    if (nl == absl::string_view::npos) return Corrupt("pickle GLOBAL truncated");
    std::string s(b_.substr(pos_, nl - pos_));
    pos_ = nl + 1;
    return s;
  }
  uint64_t Unsigned(size_t n) {
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | static_cast<unsigned char>(b_[pos_ + i]);
    pos_ += n;
    return v;
  }
  // Copies the top of the stack into the memo: charged like a copy out of it.
  absl::Status Memoize(uint64_t key) {
    if (stack_.empty()) return absl::OkStatus();
    if (absl::Status s = ChargeCopy(stack_.back()); !s.ok()) return s;
    memo_[key] = stack_.back();
    return absl::OkStatus();
  }
  absl::Status ChargeCopy(const PickleValue& value) {
    const uint64_t cost = CopyCost(value);
    if (cost > kMaxPickleMemoCopies - memo_copies_) {
      return Corrupt(absl::StrCat("pickle copies more than ", kMaxPickleMemoCopies,
                                  " values through its memo"));
    }
    memo_copies_ += cost;
    return absl::OkStatus();
  }

  absl::Status Step(char op) {
    switch (op) {
      case '\x80':  // PROTO
        if (absl::Status s = Need(1); !s.ok()) return s;
        ++pos_;
        return absl::OkStatus();
      case '(':
        stack_.push_back({Mark{}});
        return absl::OkStatus();
      case '}':
        stack_.push_back({std::make_shared<std::vector<std::pair<std::string, TensorRef>>>()});
        return absl::OkStatus();
      case ')':
        return PushList({});
      case '\x88':
      case '\x89':
        stack_.push_back({op == '\x88'});
        return absl::OkStatus();
      case 'N':
        stack_.push_back({std::monostate{}});
        return absl::OkStatus();
      case 'J': {
        if (absl::Status s = Need(4); !s.ok()) return s;
        stack_.push_back({static_cast<int64_t>(static_cast<int32_t>(Unsigned(4)))});
        return absl::OkStatus();
      }
      case 'K':
        if (absl::Status s = Need(1); !s.ok()) return s;
        stack_.push_back({static_cast<int64_t>(Unsigned(1))});
        return absl::OkStatus();
      case 'M':
        if (absl::Status s = Need(2); !s.ok()) return s;
        stack_.push_back({static_cast<int64_t>(Unsigned(2))});
        return absl::OkStatus();
      case '\x8a': {  // LONG1
        if (absl::Status s = Need(1); !s.ok()) return s;
        size_t n = static_cast<unsigned char>(b_[pos_++]);
        if (n > 8) return Corrupt("integer too large");
        if (absl::Status s = Need(n); !s.ok()) return s;
        uint64_t raw = Unsigned(n);
        if (n > 0 && n < 8 && (raw >> (8 * n - 1)) & 1) raw |= ~uint64_t{0} << (8 * n);
        stack_.push_back({static_cast<int64_t>(raw)});
        return absl::OkStatus();
      }
      case 'X':
      case 'T': {
        if (absl::Status s = Need(4); !s.ok()) return s;
        size_t n = Unsigned(4);
        if (absl::Status s = Need(n); !s.ok()) return s;
        stack_.push_back({std::string(b_.substr(pos_, n))});
        pos_ += n;
        return absl::OkStatus();
      }
      case 'U': {
        if (absl::Status s = Need(1); !s.ok()) return s;
        size_t n = static_cast<unsigned char>(b_[pos_++]);
        if (absl::Status s = Need(n); !s.ok()) return s;
        stack_.push_back({std::string(b_.substr(pos_, n))});
        pos_ += n;
        return absl::OkStatus();
      }
      case 'c': {
        absl::StatusOr<std::string> module = Line();
        if (!module.ok()) return module.status();
        absl::StatusOr<std::string> name = Line();
        if (!name.ok()) return name.status();
        stack_.push_back({Global{*module, *name}});
        return absl::OkStatus();
      }
      case 't': {
        absl::StatusOr<PickleList> items = PopToMark();
        if (!items.ok()) return items.status();
        return PushList(std::move(*items));
      }
      case '\x85':
      case '\x86':
      case '\x87': {
        size_t n = static_cast<size_t>(op - '\x85') + 1;
        if (stack_.size() < n) return Corrupt("pickle stack underflow");
        PickleList items(std::make_move_iterator(stack_.end() - n),
                         std::make_move_iterator(stack_.end()));
        stack_.resize(stack_.size() - n);
        return PushList(std::move(items));
      }
      case 'q':
        if (absl::Status s = Need(1); !s.ok()) return s;
        return Memoize(Unsigned(1));
      case 'r':
        if (absl::Status s = Need(4); !s.ok()) return s;
        return Memoize(Unsigned(4));
      case 'h':
      case 'j': {
        size_t n = op == 'h' ? 1 : 4;
        if (absl::Status s = Need(n); !s.ok()) return s;
        auto it = memo_.find(Unsigned(n));
        if (it == memo_.end()) return Corrupt("pickle memo miss");
        if (absl::Status s = ChargeCopy(it->second); !s.ok()) return s;
        stack_.push_back(it->second);
        return absl::OkStatus();
      }
      case 'Q': {  // BINPERSID: ('storage', type, key, location, numel)
        absl::StatusOr<PickleValue> pid = Pop();
        if (!pid.ok()) return pid.status();
        const PickleList* t = std::get_if<PickleList>(&pid->v);
        if (t == nullptr || t->size() != 5 || !std::holds_alternative<std::string>((*t)[2].v) ||
            !std::holds_alternative<Global>((*t)[1].v)) {
          return Corrupt("unexpected persistent id");
        }
        TensorRef storage;
        storage.storage_key = std::get<std::string>((*t)[2].v);
        storage.storage_type = std::get<Global>((*t)[1].v).name;
        stack_.push_back({storage});
        return absl::OkStatus();
      }
      case 'R':
        return Reduce();
      case 'b': {  // BUILD: state for an object (e.g. a state dict's _metadata); ignored.
        absl::StatusOr<PickleValue> state = Pop();
        return state.ok() ? absl::OkStatus() : state.status();
      }
      case 's':
      case 'u':
        return SetItems(op == 's');
      case '.':
        return absl::OkStatus();
      default:
        return Corrupt(absl::StrCat("unsupported pickle opcode 0x",
                                    absl::Hex(static_cast<unsigned char>(op))));
    }
  }

  absl::Status Reduce() {
    absl::StatusOr<PickleValue> args = Pop();
    if (!args.ok()) return args.status();
    absl::StatusOr<PickleValue> callable = Pop();
    if (!callable.ok()) return callable.status();
    const Global* g = std::get_if<Global>(&callable->v);
    const PickleList* a = std::get_if<PickleList>(&args->v);
    if (g == nullptr || a == nullptr) return Corrupt("REDUCE without a global and arguments");
    if (g->module == "collections" && g->name == "OrderedDict") {
      stack_.push_back({std::make_shared<std::vector<std::pair<std::string, TensorRef>>>()});
      return absl::OkStatus();
    }
    if (g->module == "torch._utils" && g->name == "_rebuild_tensor_v2" && a->size() >= 4) {
      const TensorRef* storage = std::get_if<TensorRef>(&(*a)[0].v);
      const int64_t* offset = std::get_if<int64_t>(&(*a)[1].v);
      const PickleList* size = std::get_if<PickleList>(&(*a)[2].v);
      const PickleList* stride = std::get_if<PickleList>(&(*a)[3].v);
      if (storage == nullptr || offset == nullptr || size == nullptr || stride == nullptr) {
        return Corrupt("malformed tensor");
      }
      TensorRef t = *storage;
      t.offset = *offset;
      for (const PickleValue& v : *size) {
        if (!std::holds_alternative<int64_t>(v.v)) return Corrupt("malformed tensor size");
        t.size.push_back(std::get<int64_t>(v.v));
      }
      for (const PickleValue& v : *stride) {
        if (!std::holds_alternative<int64_t>(v.v)) return Corrupt("malformed tensor stride");
        t.stride.push_back(std::get<int64_t>(v.v));
      }
      stack_.push_back({t});
      return absl::OkStatus();
    }
    return Corrupt(absl::StrCat("refusing to call ", g->module, ".", g->name));
  }

  absl::Status SetItems(bool single) {
    PickleList items;
    if (single) {
      if (stack_.size() < 2) return Corrupt("pickle stack underflow");
      items.assign(std::make_move_iterator(stack_.end() - 2),
                   std::make_move_iterator(stack_.end()));
      stack_.resize(stack_.size() - 2);
    } else {
      absl::StatusOr<PickleList> popped = PopToMark();
      if (!popped.ok()) return popped.status();
      items = std::move(*popped);
    }
    if (stack_.empty() || !std::holds_alternative<StateDict>(stack_.back().v)) {
      return Corrupt("SETITEMS outside a dict");
    }
    StateDict dict = std::get<StateDict>(stack_.back().v);
    if (items.size() % 2 != 0) return Corrupt("odd number of dict items");
    for (size_t i = 0; i < items.size(); i += 2) {
      // Only name -> tensor entries matter; others (torch.save's `_metadata` dict of
      // versions) are skipped.
      const std::string* key = std::get_if<std::string>(&items[i].v);
      const TensorRef* value = std::get_if<TensorRef>(&items[i + 1].v);
      if (key != nullptr && value != nullptr) dict->emplace_back(*key, *value);
    }
    return absl::OkStatus();
  }

  absl::string_view b_;
  size_t pos_ = 0;
  std::vector<PickleValue> stack_;
  std::map<uint64_t, PickleValue> memo_;
  uint64_t memo_copies_ = 0;
};

}  // namespace

absl::StatusOr<std::string> EncodeCheckpoint(const tensor::ParameterLayout& layout,
                                             const std::vector<float>& values) {
  std::string out;
  ByteSink sink = [&out](absl::string_view bytes) {
    out.append(bytes.data(), bytes.size());
    return absl::OkStatus();
  };
  if (absl::Status s = EncodeTo(layout, values, sink); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::string> EncodeArchive(
    const std::vector<std::pair<std::string, std::string>>& records) {
  std::string out;
  ByteSink sink = [&out](absl::string_view bytes) {
    out.append(bytes.data(), bytes.size());
    return absl::OkStatus();
  };
  ZipWriter zip(sink);
  for (const auto& [name, data] : records) {
    if (absl::Status s = zip.Add(name, data); !s.ok()) return s;
  }
  if (absl::Status s = zip.Finish(); !s.ok()) return s;
  return out;
}

absl::StatusOr<std::vector<float>> DecodeCheckpoint(const std::string& bytes,
                                                    const tensor::ParameterLayout& layout) {
  absl::StatusOr<std::map<std::string, absl::string_view>> entries = ReadZip(bytes);
  if (!entries.ok()) return entries.status();
  std::string prefix;
  for (const auto& [name, data] : *entries) {
    if (absl::EndsWith(name, "/data.pkl")) prefix = name.substr(0, name.size() - 8);
  }
  if (prefix.empty()) return Corrupt("no data.pkl record");
  absl::StatusOr<StateDict> dict = PickleReader(entries->at(prefix + "data.pkl")).Run();
  if (!dict.ok()) return dict.status();
  std::map<std::string, TensorRef> tensors;
  for (const auto& [name, ref] : **dict) tensors[name] = ref;
  if (tensors.size() != layout.tensors().size()) {
    return Corrupt(absl::StrCat("has ", tensors.size(), " tensors, the model has ",
                                layout.tensors().size()));
  }
  std::vector<float> values;
  values.reserve(layout.TotalValues());
  for (const tensor::TensorSpec& spec : layout.tensors()) {
    auto it = tensors.find(spec.name);
    if (it == tensors.end()) return Corrupt(absl::StrCat("tensor ", spec.name, " is missing"));
    const TensorRef& t = it->second;
    if (t.storage_type != "FloatStorage") {
      return Corrupt(absl::StrCat("tensor ", spec.name, " is ", t.storage_type,
                                  ", expected FloatStorage (float32)"));
    }
    if (t.size != spec.shape) {
      return Corrupt(absl::StrCat("tensor ", spec.name, " has the wrong shape"));
    }
    std::vector<int64_t> contiguous(spec.shape.size());
    int64_t stride = 1;
    for (size_t k = spec.shape.size(); k-- > 0;) {
      contiguous[k] = stride;
      stride *= spec.shape[k];
    }
    if (t.stride != contiguous) {
      return Corrupt(absl::StrCat("tensor ", spec.name, " is not contiguous"));
    }
    auto data = entries->find(prefix + "data/" + t.storage_key);
    if (data == entries->end()) {
      return Corrupt(absl::StrCat("storage of ", spec.name, " is missing"));
    }
    // In values, not bytes: an offset near 2^62 would wrap around a byte count and point
    // before the storage.
    const uint64_t stored = data->second.size() / sizeof(float);
    const uint64_t wanted = static_cast<uint64_t>(spec.NumValues());
    if (t.offset < 0 || static_cast<uint64_t>(t.offset) > stored ||
        wanted > stored - static_cast<uint64_t>(t.offset)) {
      return Corrupt(absl::StrCat("storage of ", spec.name, " is too short"));
    }
    const uint64_t begin = static_cast<uint64_t>(t.offset) * sizeof(float);
    const uint64_t length = wanted * sizeof(float);
    const size_t first = values.size();
    values.resize(first + spec.NumValues());
    std::memcpy(values.data() + first, data->second.data() + begin, length);
  }
  return values;
}

absl::Status WriteCheckpoint(const std::string& path, const tensor::ParameterLayout& layout,
                             const std::vector<float>& values) {
  return WriteFileDurably(
      path, [&](const ByteSink& sink) { return EncodeTo(layout, values, sink); }, 0644);
}

absl::StatusOr<std::vector<float>> ReadCheckpoint(const std::string& path,
                                                  const tensor::ParameterLayout& layout) {
  absl::StatusOr<std::string> bytes = ReadFileToString(path);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<std::vector<float>> values = DecodeCheckpoint(*bytes, layout);
  if (!values.ok()) {
    return absl::Status(values.status().code(), absl::StrCat(path, ": ", values.status().message()));
  }
  return values;
}

}  // namespace cohort::model
