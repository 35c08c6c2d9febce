#ifndef COHORT_COMMON_UTIL_SIGNALS_H_
#define COHORT_COMMON_UTIL_SIGNALS_H_

#include <functional>

namespace cohort {

// Blocks SIGINT and SIGTERM in the calling thread (call before starting other threads, so
// they inherit the mask) and starts a detached thread that waits for either and then runs
// `on_signal(signal_number)` once. Shutdown thus runs as ordinary code, not in a signal
// handler.
void StopOnTerminationSignal(std::function<void(int)> on_signal);

// Blocks SIGHUP in the calling thread (call before starting other threads) and starts a
// detached thread that runs `on_hangup()` for every SIGHUP received, in ordinary code.
void CallOnHangup(std::function<void()> on_hangup);

}  // namespace cohort

#endif  // COHORT_COMMON_UTIL_SIGNALS_H_
