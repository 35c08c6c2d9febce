#include "common/util/signals.h"

#include <pthread.h>
#include <signal.h>

#include <thread>

namespace cohort {

void StopOnTerminationSignal(std::function<void(int)> on_signal) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([signals, on_signal = std::move(on_signal)]() {
    int received = 0;
    if (sigwait(&signals, &received) == 0) on_signal(received);
  }).detach();
}

}  // namespace cohort
