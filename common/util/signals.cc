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

void CallOnHangup(std::function<void()> on_hangup) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([signals, on_hangup = std::move(on_hangup)]() {
    // This thread takes no other signal, whatever order the handlers were installed in.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    int received = 0;
    while (sigwait(&signals, &received) == 0) on_hangup();
  }).detach();
}

}  // namespace cohort
