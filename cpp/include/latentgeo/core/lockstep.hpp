// Independent solves that share one expensive, batched evaluator.
//
// A metric implemented in Python costs a fixed overhead per call (interpreter, framework
// dispatch) plus a small cost per point, and it can only be called from the thread that holds
// the interpreter. Solving B geodesics one after the other therefore pays the overhead B times
// per solver iteration. LockstepPool runs the B solves on worker threads instead: a solve that
// needs an evaluation posts a request and blocks; the calling thread (the coordinator) waits until
// every running solve is blocked or finished and then serves all pending requests in one call of
// `serve`, so each round of evaluations costs one overhead.
//
// Which solves share a round does not depend on the timing of the threads (a round waits for all
// of them), and the requests of a round are served in the order of their solves, so the calls of
// `serve` are the same in every run. `serve` must give every request the result it would get
// alone (an evaluator whose rows do not interact); then the results do not depend on `width`.
//
// Cancellation: the workers inherit the caller's Cancellation; the coordinator checks it (and so
// polls for signals) while it waits. An exception from `serve` or from a solve (which must catch
// everything but Cancelled and bad_alloc itself) stops the pool: blocked solves are woken with
// Cancelled, the threads are joined, and the first exception is rethrown to the caller.
//
// Nothing here knows about Python.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <limits>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "latentgeo/core/cancel.hpp"
#include "latentgeo/core/common.hpp"

namespace latentgeo {

template <class Request>
class LockstepPool {
 public:
  LockstepPool() = default;
  LockstepPool(const LockstepPool&) = delete;
  LockstepPool& operator=(const LockstepPool&) = delete;

  // Runs solve(i) for i in [0, n) on at most `width` threads; serve(std::vector<Request*>&) runs on
  // the calling thread for every round of requests.
  template <class Solve, class Serve>
  void run(Index n, Index width, Solve&& solve, Serve&& serve) {
    if (n <= 0) return;
    reset(std::min<Index>(std::max<Index>(width, 1), n));
    Cancellation* cancel = current_cancellation();
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(live_));
    const Index n_threads = live_;
    for (Index t = 0; t < n_threads; ++t) {
      try {
        threads.emplace_back([this, cancel, n, &solve] { work(cancel, n, solve); });
      } catch (const std::system_error&) {  // no more threads: go on with those started
        const std::lock_guard<std::mutex> lock(mutex_);
        live_ -= n_threads - t;
        if (t == 0) throw;
        break;
      }
    }
    coordinate(serve);
    for (auto& thread : threads) thread.join();
    if (failure_) std::rethrow_exception(failure_);
  }

  // Called by a solve: blocks until the request has been served. Throws Cancelled when the pool
  // stops first.
  void submit(Request& request) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (stopped_) throw Cancelled();
    pending_.push_back({current_item(), &request});
    const std::uint64_t round = round_;
    coordinator_.notify_one();
    // While its round is being served no solve runs, so nothing stops the pool before the
    // coordinator has finished writing into the request.
    workers_.wait(lock, [&] { return round_ != round || stopped_; });
    if (stopped_) throw Cancelled();
  }

  Index rounds() const { return static_cast<Index>(round_); }

 private:
  void reset(Index width) {
    pending_.clear();
    live_ = width;
    next_ = 0;
    round_ = 0;
    stopped_ = false;
    failure_ = nullptr;
  }

  template <class Solve>
  void work(Cancellation* cancel, Index n, Solve& solve) {
    const CancelScope scope(cancel);
    try {
      for (Index i = take(); i < n; i = take()) {
        current_item() = i;
        solve(i);
      }
    } catch (...) {
      stop(std::current_exception());
    }
    const std::lock_guard<std::mutex> lock(mutex_);
    --live_;
    coordinator_.notify_one();
  }

  Index take() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return stopped_ ? std::numeric_limits<Index>::max() : next_++;
  }

  // Serves rounds until every worker has finished (or the pool stopped).
  template <class Serve>
  void coordinate(Serve& serve) {
    std::vector<Request*> batch;
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      // Every live solve is blocked in submit(), or none is left: a round is due.
      const auto due = [&] { return live_ == 0 || static_cast<Index>(pending_.size()) == live_; };
      while (!due()) {
        coordinator_.wait_for(lock, std::chrono::milliseconds(10));
        if (!stopped_ && !due()) check_while_unlocked(lock);
      }
      if (live_ == 0) return;
      if (stopped_) {  // wake the blocked solves, then wait for the workers to leave
        workers_.notify_all();
        coordinator_.wait_for(lock, std::chrono::milliseconds(10));
        continue;
      }
      std::sort(pending_.begin(), pending_.end(), [](const Pending& a, const Pending& b) { return a.item < b.item; });
      for (const Pending& p : pending_) batch.push_back(p.request);
      pending_.clear();
      lock.unlock();
      try {
        check_cancelled();
        serve(batch);
      } catch (...) {
        stop(std::current_exception());
      }
      batch.clear();
      lock.lock();
      ++round_;
      workers_.notify_all();
    }
  }

  void check_while_unlocked(std::unique_lock<std::mutex>& lock) {
    lock.unlock();
    try {
      check_cancelled();
    } catch (...) {
      stop(std::current_exception());
    }
    lock.lock();
  }

  void stop(std::exception_ptr reason) {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (!failure_) failure_ = std::move(reason);
    stopped_ = true;
    workers_.notify_all();
    coordinator_.notify_one();
  }

  std::mutex mutex_;
  std::condition_variable coordinator_, workers_;
  struct Pending {
    Index item;  // the solve that asks
    Request* request;
  };
  static Index& current_item() {  // the solve running on this thread
    thread_local Index item = 0;
    return item;
  }

  std::vector<Pending> pending_;
  Index live_ = 0, next_ = 0;
  std::uint64_t round_ = 0;
  bool stopped_ = false;
  std::exception_ptr failure_;
};

}  // namespace latentgeo
