// bench_coordinator_memory: peak resident memory of cohort-coordinator, run as its own
// process, while 20 in-process no-op sites run 2 rounds of a 10M-parameter model.
//
// The driver writes a PKI and a coordinator YAML into a temp dir, starts
// build/bin/cohort-coordinator with fork/exec (stdout and stderr go to a log file in that
// dir), waits until it listens, records its idle RSS, runs the sites, polls
// /proc/<pid>/status (VmRSS, VmHWM) every few milliseconds until the coordinator exits,
// and takes the exit status and ru_maxrss from wait4(). The coordinator is killed on every
// exit path of the driver: RAII on normal returns, a signal handler for SIGINT/SIGTERM/
// SIGHUP, an atexit hook, and PR_SET_PDEATHSIG in the child for a driver that crashes.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "tools/sim/loopback.h"
#include "common/state/state_store.h"
#include "common/util/files.h"

namespace cohort::bench {
namespace {

using sim::ClientThread;
using sim::CollectSiteRoundTimes;
using sim::LoopbackClientConfig;
using sim::LoopbackPki;
using sim::NoOpTrainer;
using sim::PickFreeLoopbackPort;
using sim::ScratchDir;
using sim::SiteNames;
using sim::SiteRoundTimes;

constexpr double kMiB = 1024.0 * 1024.0;

// The pid of the running coordinator, for the signal handler and the atexit hook.
std::atomic<pid_t> g_child_pid{0};

void KillChildNow() {
  pid_t pid = g_child_pid.exchange(0);
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
}

extern "C" void OnFatalSignal(int signal_number) {
  pid_t pid = g_child_pid.exchange(0);
  if (pid > 0) kill(pid, SIGKILL);  // async-signal-safe; the kernel reaps it after our exit
  _exit(128 + signal_number);
}

void InstallKillHooks() {
  struct sigaction action {};
  action.sa_handler = OnFatalSignal;
  sigemptyset(&action.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &action, nullptr);
  std::atexit(KillChildNow);
}

// A child process started with fork/exec. The destructor kills and reaps it if it is still
// running, so no return path leaves it behind.
class ChildProcess {
 public:
  // Starts `argv` with stdout and stderr appended to `log_path`. Call before any thread
  // is started in this process (fork of a single-threaded parent).
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(const std::vector<std::string>& argv,
                                                             const std::string& log_path) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
    if (pid == 0) {
      // Only async-signal-safe calls until exec.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);  // the driver died before prctl took effect
      int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
      }
      execv(args[0], args.data());
      _exit(127);
    }
    g_child_pid = pid;
    return std::unique_ptr<ChildProcess>(new ChildProcess(pid));
  }

  ~ChildProcess() { Kill(); }

  // Kills and reaps the child unless it was reaped already.
  void Kill() {
    if (reaped_) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, &wait_status_, 0);
    reaped_ = true;
    g_child_pid = 0;
  }

  pid_t pid() const { return pid_; }
  bool reaped() const { return reaped_; }
  int wait_status() const { return wait_status_; }
  // Peak RSS of the exited child in KiB (ru_maxrss from wait4), valid once reaped.
  long max_rss_kib() const { return max_rss_kib_; }

  // Reaps the child if it exited; true once it has.
  bool TryReap() {
    if (reaped_) return true;
    struct rusage usage {};
    int status = 0;
    pid_t r = wait4(pid_, &status, WNOHANG, &usage);
    if (r == pid_) {
      reaped_ = true;
      g_child_pid = 0;
      wait_status_ = status;
      max_rss_kib_ = usage.ru_maxrss;
    }
    return reaped_;
  }

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}

  const pid_t pid_;
  bool reaped_ = false;
  int wait_status_ = 0;
  long max_rss_kib_ = 0;
};

// Memory figures of a process from /proc/<pid>/status, in KiB (-1 when unreadable):
// VmRSS = RssAnon (heap, stacks) + RssFile (mapped files: mostly shared-library code)
// + RssShmem; VmHWM is the kernel's high-water mark of VmRSS.
struct MemoryReading {
  long rss_kib = -1;
  long hwm_kib = -1;
  long anon_kib = -1;
  long file_kib = -1;
};

MemoryReading ReadMemory(pid_t pid) {
  MemoryReading reading;
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) reading.rss_kib = std::atol(line.c_str() + 6);
    if (line.rfind("VmHWM:", 0) == 0) reading.hwm_kib = std::atol(line.c_str() + 6);
    if (line.rfind("RssAnon:", 0) == 0) reading.anon_kib = std::atol(line.c_str() + 8);
    if (line.rfind("RssFile:", 0) == 0) reading.file_kib = std::atol(line.c_str() + 8);
  }
  return reading;
}

// Polls a process's memory on its own thread until stopped: keeps the highest VmHWM seen
// and a timeline of VmRSS samples.
class MemorySampler {
 public:
  // One VmRSS sample.
  struct Sample {
    absl::Time at;
    long rss_kib;
  };

  MemorySampler(pid_t pid, absl::Duration interval) : pid_(pid), interval_(interval) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~MemorySampler() { Stop(); }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  long max_hwm_kib() const {
    absl::MutexLock lock(&mu_);
    return max_hwm_kib_;
  }
  // The sample with the highest VmRSS (its anon/file split tells what the peak is made of).
  MemoryReading peak_sample() const {
    absl::MutexLock lock(&mu_);
    return peak_sample_;
  }
  // When the sampled VmHWM first reached its highest value.
  absl::Time peak_seen_at() const {
    absl::MutexLock lock(&mu_);
    return peak_seen_at_;
  }
  std::vector<Sample> samples() const {
    absl::MutexLock lock(&mu_);
    return samples_;
  }

 private:
  void Loop() {
    while (!stop_) {
      MemoryReading reading = ReadMemory(pid_);
      if (reading.rss_kib >= 0) {
        absl::MutexLock lock(&mu_);
        const absl::Time now = absl::Now();
        samples_.push_back({now, reading.rss_kib});
        if (reading.rss_kib > peak_sample_.rss_kib) peak_sample_ = reading;
        if (reading.hwm_kib > max_hwm_kib_) {
          max_hwm_kib_ = reading.hwm_kib;
          peak_seen_at_ = now;
        }
      }
      absl::SleepFor(interval_);
    }
  }

  const pid_t pid_;
  const absl::Duration interval_;
  std::atomic<bool> stop_{false};
  mutable absl::Mutex mu_;
  long max_hwm_kib_ ABSL_GUARDED_BY(mu_) = 0;
  MemoryReading peak_sample_ ABSL_GUARDED_BY(mu_);
  absl::Time peak_seen_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::vector<Sample> samples_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// Command-line options.
struct Options {
  std::string coordinator = std::string(COHORT_BINARY_DIR) + "/bin/cohort-coordinator";
  int clients = 20;
  int64_t inputs = 4999999;  // logreg: 2 x inputs + 2 = 10,000,000 parameters
  int rounds = 2;
  int max_concurrent_uploads = 1;  // the coordinator's default
  int sample_ms = 5;
  int timeout_s = 900;
  // Investigation only: a command put in front of the coordinator (e.g. "heaptrack -o F").
  // The RSS figures then describe the wrapper process, not the coordinator.
  std::string wrapper;
};

bool CanConnect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

std::string Tail(const std::string& path, size_t max_bytes) {
  absl::StatusOr<std::string> text = ReadFileToString(path);
  if (!text.ok()) return "";
  return text->size() <= max_bytes ? *text : text->substr(text->size() - max_bytes);
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  return "unknown wait status";
}

// Where the time `t` falls in the rounds recorded by the coordinator and seen by the sites.
std::string PhaseAt(absl::Time t, const std::vector<state::RoundRecord>& rounds,
                    const std::vector<SiteRoundTimes>& sites) {
  for (size_t i = 0; i < rounds.size(); ++i) {
    const state::RoundRecord& r = rounds[i];
    const absl::Time end = r.started_at + absl::Seconds(r.duration_s);
    if (t < r.started_at || t > end + absl::Milliseconds(100)) continue;
    std::string where = absl::StrCat("round ", r.round, ", ");
    if (i >= sites.size()) return where + "unknown phase";
    const SiteRoundTimes& s = sites[i];
    if (t <= s.last_train) return where + "TRAIN: model downloads";
    if (t <= s.first_eval) return where + "TRAIN: uploads / AGGREGATE";
    if (t <= s.last_eval) return where + "EVALUATE: candidate downloads";
    return where + "EVALUATE reports / COMMIT (checkpoint)";
  }
  return "outside any round";
}

int Run(const Options& options) {
  spdlog::set_level(spdlog::level::warn);
  InstallKillHooks();
  const int64_t params = 2 * options.inputs + 2;
  const uint64_t model_bytes = static_cast<uint64_t>(params) * sizeof(float);
  const double budget_mib = 3.0 * model_bytes / kMiB + 150.0;

  if (access(options.coordinator.c_str(), X_OK) != 0) {
    std::cerr << options.coordinator << " is not executable; build it with "
              << "`make -j2 cohort-coordinator`\n";
    return 1;
  }
  ScratchDir dir("cohort-bench-memory");
  if (!dir.status().ok()) {
    std::cerr << dir.status() << "\n";
    return 1;
  }
  const std::vector<std::string> sites = SiteNames(options.clients);
  absl::StatusOr<std::unique_ptr<LoopbackPki>> pki = LoopbackPki::Create(dir.File("pki"), "bench");
  if (!pki.ok()) {
    std::cerr << "PKI: " << pki.status() << "\n";
    return 1;
  }
  for (const std::string& site : sites) {
    if (absl::StatusOr<config::TlsFiles> files = (*pki)->IssueSite(site); !files.ok()) {
      std::cerr << "PKI: " << files.status() << "\n";
      return 1;
    }
  }
  absl::StatusOr<int> port = PickFreeLoopbackPort();
  if (!port.ok()) {
    std::cerr << port.status() << "\n";
    return 1;
  }
  const config::TlsFiles tls = (*pki)->coordinator_files();
  const std::string yaml = absl::StrCat(
      "federation: bench\n",
      "listen: 127.0.0.1:", *port, "\n",
      "tls: {ca: ", tls.ca, ", cert: ", tls.cert, ", key: ", tls.key, "}\n",
      "sites: [", absl::StrJoin(sites, ", "), "]\n",
      "state_dir: ", dir.File("state"), "\n",
      "seed: 1\n",
      "model: {arch: logreg, inputs: ", options.inputs, ", classes: 2}\n",
      "rounds: {count: ", options.rounds, ", min_clients: ", options.clients,
      ", stage_timeout: 300s, select_timeout: 1s}\n",
      "limits: {max_concurrent_uploads: ", options.max_concurrent_uploads, "}\n",
      "logging: {level: warn}\n");
  const std::string config_path = dir.File("coordinator.yaml");
  const std::string log_path = dir.File("coordinator.log");
  if (absl::Status s = WriteFileDurably(config_path, yaml); !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }

  std::printf("model: logreg inputs=%lld classes=2 -> %lld float32 params = %llu bytes "
              "(%.1f MiB)\n",
              static_cast<long long>(options.inputs), static_cast<long long>(params),
              static_cast<unsigned long long>(model_bytes), model_bytes / kMiB);
  std::printf("coordinator: %s, %d sites, %d rounds, max_concurrent_uploads=%d\n",
              options.coordinator.c_str(), options.clients, options.rounds,
              options.max_concurrent_uploads);
  std::fflush(stdout);

  // Fork before any thread exists in this process.
  std::vector<std::string> argv = absl::StrSplit(options.wrapper, ' ', absl::SkipEmpty());
  if (!argv.empty()) {
    std::printf("WARNING: wrapped in '%s': the RSS figures below are the wrapper's\n",
                options.wrapper.c_str());
  }
  argv.insert(argv.end(), {options.coordinator, "--config", config_path});
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Spawn(argv, log_path);
  if (!child.ok()) {
    std::cerr << child.status() << "\n";
    return 1;
  }
  // Kills the coordinator first: that also breaks any model transfer a site is blocked in
  // (SiteClient::Stop() cancels only the session stream), so the sites stop promptly.
  auto fail = [&](const std::string& why) {
    (*child)->Kill();
    std::cerr << why << "\n--- coordinator log (tail) ---\n" << Tail(log_path, 4000) << "\n";
    return 1;
  };

  const absl::Time spawned = absl::Now();
  while (!CanConnect(*port)) {
    if ((*child)->TryReap()) {
      return fail(absl::StrCat("coordinator exited before listening: ",
                               DescribeWaitStatus((*child)->wait_status())));
    }
    if (absl::Now() - spawned > absl::Seconds(120)) return fail("coordinator did not listen");
    absl::SleepFor(absl::Milliseconds(20));
  }
  const double startup_s = absl::ToDoubleSeconds(absl::Now() - spawned);
  absl::SleepFor(absl::Milliseconds(500));
  const MemoryReading idle = ReadMemory((*child)->pid());

  MemorySampler sampler((*child)->pid(), absl::Milliseconds(options.sample_ms));
  std::vector<std::unique_ptr<ClientThread>> clients;
  for (const std::string& site : sites) {
    clients.push_back(std::make_unique<ClientThread>(LoopbackClientConfig(**pki, site, *port)));
  }
  const absl::Time clients_started = absl::Now();
  while (!(*child)->TryReap()) {
    if (absl::Now() - clients_started > absl::Seconds(options.timeout_s)) {
      return fail(absl::StrCat("coordinator still running after ", options.timeout_s,
                               " s; killed"));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  const double run_s = absl::ToDoubleSeconds(absl::Now() - clients_started);
  sampler.Stop();
  const int status = (*child)->wait_status();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return fail(absl::StrCat("coordinator ended with ", DescribeWaitStatus(status)));
  }
  for (auto& client : clients) {
    if (absl::Status s = client->Join(); !s.ok()) return fail(absl::StrCat("a site: ", s.ToString()));
  }
  std::vector<SiteRoundTimes> site_times = CollectSiteRoundTimes(clients);
  clients.clear();

  std::vector<state::RoundRecord> rounds;
  absl::StatusOr<std::unique_ptr<state::StateStore>> store =
      state::StateStore::OpenReadOnly(dir.File("state/state.db"));
  if (store.ok()) {
    absl::StatusOr<std::vector<state::RoundRecord>> listed = (*store)->ListRounds(false);
    if (listed.ok()) rounds = *listed;
  }
  size_t committed = 0;
  for (const state::RoundRecord& r : rounds) committed += r.status == "committed";

  const long peak_kib = std::max((*child)->max_rss_kib(), sampler.max_hwm_kib());
  const double peak_mib = peak_kib / 1024.0;
  std::vector<MemorySampler::Sample> samples = sampler.samples();

  std::printf("coordinator listening after %.2f s; rounds run in %.2f s; %zu of %zu rounds "
              "committed; exit 0\n",
              startup_s, run_s, committed, rounds.size());
  for (size_t i = 0; i < rounds.size(); ++i) {
    const state::RoundRecord& r = rounds[i];
    const absl::Time end = r.started_at + absl::Seconds(r.duration_s);
    long max_rss = 0;
    for (const auto& s : samples) {
      if (s.at >= r.started_at && s.at <= end) max_rss = std::max(max_rss, s.rss_kib);
    }
    std::printf("  round %llu: %.2f s, %zu participants, highest sampled VmRSS %.1f MiB\n",
                static_cast<unsigned long long>(r.round), r.duration_s, r.participants.size(),
                max_rss / 1024.0);
    if (i < site_times.size()) {
      const SiteRoundTimes& t = site_times[i];
      struct Window {
        const char* name;
        absl::Time from, to;
      };
      for (const Window& w : {Window{"train downloads", r.started_at, t.last_train},
                              Window{"uploads+aggregate", t.last_train, t.first_eval},
                              Window{"eval downloads", t.first_eval, t.last_eval},
                              Window{"reports+checkpoint", t.last_eval, end}}) {
        long m = 0;
        for (const auto& s : samples) {
          if (s.at >= w.from && s.at <= w.to) m = std::max(m, s.rss_kib);
        }
        std::printf("    %-20s %6.2f s  max VmRSS %7.1f MiB\n", w.name,
                    absl::ToDoubleSeconds(w.to - w.from), m / 1024.0);
      }
    }
  }
  std::printf("\n%-44s %14llu (%.1f MiB)\n", "model bytes",
              static_cast<unsigned long long>(model_bytes), model_bytes / kMiB);
  const MemoryReading peak_sample = sampler.peak_sample();
  std::printf("%-44s %10.1f MiB (anon %.1f, file %.1f; VmHWM then %.1f)\n",
              "coordinator RSS before the first round", idle.rss_kib / 1024.0,
              idle.anon_kib / 1024.0, idle.file_kib / 1024.0, idle.hwm_kib / 1024.0);
  std::printf("%-44s %10.1f MiB (ru_maxrss %.1f, sampled VmHWM %.1f)\n", "coordinator peak RSS",
              peak_mib, (*child)->max_rss_kib() / 1024.0, sampler.max_hwm_kib() / 1024.0);
  std::printf("%-44s %10.1f MiB (anon %.1f, file %.1f)\n", "highest VmRSS sample",
              peak_sample.rss_kib / 1024.0, peak_sample.anon_kib / 1024.0,
              peak_sample.file_kib / 1024.0);
  std::printf("%-44s %10.1f MiB\n", "peak minus idle", peak_mib - idle.rss_kib / 1024.0);
  std::printf("%-44s %10.1f MiB (= %.2f x model bytes)\n", "peak minus idle, in model sizes",
              peak_mib - idle.rss_kib / 1024.0,
              (peak_mib - idle.rss_kib / 1024.0) * kMiB / model_bytes);
  std::printf("%-44s %10.1f MiB\n", "budget: 3 x model bytes + 150 MiB", budget_mib);
  std::printf("%-44s %10s (peak is %.0f%% of budget)\n", "within budget",
              peak_mib <= budget_mib ? "yes" : "NO", 100.0 * peak_mib / budget_mib);
  std::printf("%-44s %s\n", "peak first seen",
              PhaseAt(sampler.peak_seen_at(), rounds, site_times).c_str());
  return 0;
}

int Main(int argc, char** argv) {
  Options options;
  CLI::App app{"bench_coordinator_memory: peak RSS of cohort-coordinator with N no-op sites"};
  app.add_option("--coordinator", options.coordinator, "Path of the cohort-coordinator binary");
  app.add_option("--clients", options.clients, "In-process sites")->check(CLI::Range(1, 1000));
  app.add_option("--inputs", options.inputs,
                 "logreg inputs (params = 2 x inputs + 2; default gives 10,000,000)");
  app.add_option("--rounds", options.rounds, "Rounds to run")->check(CLI::Range(1, 100));
  app.add_option("--max-concurrent-uploads", options.max_concurrent_uploads,
                 "limits.max_concurrent_uploads")
      ->check(CLI::Range(1, 1024));
  app.add_option("--sample-ms", options.sample_ms, "Polling interval of /proc/<pid>/status")
      ->check(CLI::Range(1, 1000));
  app.add_option("--timeout", options.timeout_s, "Seconds before a stalled run is killed");
  app.add_option("--wrapper", options.wrapper,
                 "Investigation only: command to run the coordinator under (absolute path, "
                 "e.g. '/usr/bin/heaptrack -o /tmp/coord'); RSS figures are then meaningless");
  CLI11_PARSE(app, argc, argv);
  return Run(options);
}

}  // namespace
}  // namespace cohort::bench

int main(int argc, char** argv) { return cohort::bench::Main(argc, argv); }
