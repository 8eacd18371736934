// Cooperative cancellation of long kernel calls (Ctrl-C).
//
// A caller (the Python binding) installs a Cancellation on its thread with a CancelScope. The
// loops of the kernels call check() between blocks: it throws Cancelled once the cancellation is
// requested, so every thread stops at its next block. On the thread that installed it, check()
// also runs the optional `poll` (e.g. "is a signal pending?") at most every `interval`, which
// is how a request arrives while the caller's thread is busy computing. parallel_for passes the
// caller's Cancellation on to its worker threads, so nested loops stop too.
//
// Nothing here knows about Python; without an installed Cancellation check() does nothing.
#pragma once

#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace latentgeo {

// Thrown by Cancellation::check once cancelled; the binding turns it into the pending Python
// exception (KeyboardInterrupt). Never caught as a metric or solver failure.
struct Cancelled : std::exception {
  const char* what() const noexcept override { return "cancelled"; }
};

class Cancellation {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Cancellation(std::function<bool()> poll = {},
                        std::chrono::milliseconds interval = std::chrono::milliseconds(10))
      : poll_(std::move(poll)),
        interval_(interval),
        owner_(std::this_thread::get_id()),
        next_poll_(Clock::now() + interval) {}
  Cancellation(const Cancellation&) = delete;
  Cancellation& operator=(const Cancellation&) = delete;

  bool requested() const { return flag_.load(std::memory_order_relaxed); }
  bool polls() const { return static_cast<bool>(poll_); }

  // Requests cancellation; `reason` (kept if it is the first) is what the caller should rethrow.
  void request(std::exception_ptr reason = nullptr) {
    if (reason) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!reason_) reason_ = std::move(reason);
    }
    flag_.store(true, std::memory_order_relaxed);
  }

  std::exception_ptr reason() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return reason_;
  }

  // Polls when due (owner thread only), then throws Cancelled if cancellation was requested.
  void check() {
    if (poll_ && std::this_thread::get_id() == owner_ && ++calls_ % kCallsPerClockRead == 0) {
      const auto now = Clock::now();
      if (now >= next_poll_) {
        next_poll_ = now + interval_;
        if (poll_()) request();
      }
    }
    if (requested()) throw Cancelled();
  }

  // check() without the exception: true when cancelled.
  bool poll_requested() {
    try {
      check();
    } catch (const Cancelled&) {
      return true;
    }
    return false;
  }

 private:
  static constexpr unsigned kCallsPerClockRead = 8;  // blocks are >= ~1 us: read the clock rarely

  std::atomic<bool> flag_{false};
  std::function<bool()> poll_;
  std::chrono::milliseconds interval_;
  std::thread::id owner_;
  Clock::time_point next_poll_;  // owner thread only
  unsigned calls_ = 0;           // owner thread only
  mutable std::mutex mutex_;
  std::exception_ptr reason_;
};

namespace detail {
inline Cancellation*& current_cancellation_slot() {
  thread_local Cancellation* current = nullptr;
  return current;
}
}  // namespace detail

// The Cancellation of the call running on this thread (nullptr: none).
inline Cancellation* current_cancellation() { return detail::current_cancellation_slot(); }

// Installs a Cancellation on this thread for its lifetime (nullptr installs none); restores the
// previous one.
class CancelScope {
 public:
  explicit CancelScope(Cancellation* c) : previous_(detail::current_cancellation_slot()) {
    detail::current_cancellation_slot() = c;
  }
  ~CancelScope() { detail::current_cancellation_slot() = previous_; }
  CancelScope(const CancelScope&) = delete;
  CancelScope& operator=(const CancelScope&) = delete;

 private:
  Cancellation* previous_;
};

// Throws Cancelled if the current call was cancelled (polling when due); a no-op without one.
inline void check_cancelled() {
  if (Cancellation* c = current_cancellation()) c->check();
}

}  // namespace latentgeo
