// Shared types and the OpenMP helpers of the latentgeo kernels.
#pragma once

#ifndef EIGEN_DONT_PARALLELIZE
#define EIGEN_DONT_PARALLELIZE
#endif

#include <Eigen/Dense>
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "latentgeo/core/cancel.hpp"
#include "latentgeo/core/numeric.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace latentgeo {

using Index = Eigen::Index;
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vector = Eigen::VectorXd;
using RowVector = Eigen::RowVectorXd;
using RowMatrixRef = Eigen::Ref<RowMatrix>;
using ConstRowMatrixRef = Eigen::Ref<const RowMatrix>;
using VectorRef = Eigen::Ref<Vector>;
using ConstVectorRef = Eigen::Ref<const Vector>;

inline bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

// n_threads <= 0 means "all cores".
inline int resolve_threads(int n_threads) {
  if (n_threads <= 0) return max_threads();
  return openmp_enabled() ? n_threads : 1;
}

// The metric is not defined at a point: G (or G^{-1}) is singular, not positive definite or not
// finite there. Kernels throw it from evaluations; the geodesic solver treats it as an infinite
// energy at trial points. `non_finite` tells NaN/Inf values from a singular or indefinite G.
class MetricDomainError : public std::domain_error {
 public:
  explicit MetricDomainError(const std::string& message, bool non_finite = false)
      : std::domain_error(message), non_finite_(non_finite) {}
  bool non_finite() const { return non_finite_; }

 private:
  bool non_finite_;
};

// "(z0, z1, ...)" of a point, for error messages.
template <class Row>
std::string format_point(const Row& z) {
  std::string out = "(";
  char buf[32];
  for (Index j = 0; j < z.size(); ++j) {
    std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(z(j)));
    out += (j > 0 ? ", " : "") + std::string(buf);
  }
  return out + ")";
}

// Throws MetricDomainError (non_finite) naming the first row of `values` (one per point of z)
// that holds NaN or Inf; `what` names the quantity and `why` explains it.
template <class Values>
void require_finite_rows(const Values& values, const ConstRowMatrixRef& z, const char* what, const char* why) {
  if (values.allFinite()) return;
  Index row = 0;
  while (row + 1 < values.rows() && values.row(row).allFinite()) ++row;
  throw MetricDomainError(std::string(what) + ": NaN or Inf at point " + std::to_string(row) +
                              ", z = " + format_point(z.row(row)) + " (" + why + ")",
                          true);
}

namespace detail {
// The calling thread, out of items, polls its cancellation until the other threads have finished
// `n` items: spinning for up to 1 ms as an OpenMP barrier would (no yield: on a busy machine the
// thread would lose its core for a whole time slice), then sleeping.
inline void wait_polling(const std::atomic<Index>& finished, Index n, Cancellation& cancel) {
  const auto spin_until = Cancellation::Clock::now() + std::chrono::milliseconds(1);
  while (finished.load(std::memory_order_acquire) < n && !cancel.poll_requested())
    if (Cancellation::Clock::now() >= spin_until) std::this_thread::sleep_for(std::chrono::microseconds(200));
}
}  // namespace detail

// Runs body(i) for i in [0, n) on up to n_threads threads. `grain` is the number of
// items worth one thread: small jobs stay on the calling thread, where a parallel
// region would cost more than it saves. An exception thrown by body is caught inside
// the parallel region (an exception must never leave it) and the first one is
// rethrown on the calling thread. Each i is computed the same way whatever the
// number of threads, so results do not depend on it.
//
// Cancellation (cancel.hpp): the caller's Cancellation is checked before every item and passed
// on to the worker threads (nested loops see it); once cancelled the remaining items are
// skipped and Cancelled is thrown on the calling thread, which keeps polling while the other
// threads finish their current item.
template <class Body>
void parallel_for(Index n, int n_threads, Body&& body, Index grain = 1) {
  Cancellation* const cancel = current_cancellation();
  const Index useful = std::max<Index>(1, n / std::max<Index>(grain, 1));
  const int threads = static_cast<int>(std::min<Index>(resolve_threads(n_threads), useful));
  if (threads <= 1) {  // no parallel region (and no nested team inside a caller's region)
    for (Index i = 0; i < n; ++i) {
      if (cancel) cancel->check();
      body(i);
    }
    return;
  }
#ifdef _OPENMP
  std::exception_ptr error;
  std::mutex error_mutex;
  std::atomic<Index> finished{0};
#pragma omp parallel num_threads(threads)
  {
    const CancelScope scope(cancel);
#pragma omp for schedule(dynamic, 1) nowait
    for (Index i = 0; i < n; ++i) {
      if (!(cancel && cancel->requested())) {  // once cancelled, the remaining items are skipped
        try {
          if (cancel) cancel->check();
          body(i);
        } catch (const Cancelled&) {
          // the flag is set: nothing to record
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (!error) error = std::current_exception();
        }
      }
      finished.fetch_add(1, std::memory_order_release);
    }
    if (cancel && cancel->polls() && omp_get_thread_num() == 0) detail::wait_polling(finished, n, *cancel);
  }
  if (cancel && cancel->requested()) throw Cancelled();
  if (error) std::rethrow_exception(error);
#endif
}

// Number of blocks of size `block` that cover n items.
inline Index block_count(Index n, Index block) { return (n + block - 1) / block; }

// Packed storage of a symmetric d x d matrix: the d(d+1)/2 entries (a <= b), row by row.
inline Index packed_size(Index d) { return d * (d + 1) / 2; }

template <class Sym, class Packed>
void pack_symmetric(const Sym& m, Packed&& out) {
  const Index d = m.rows();
  Index e = 0;
  for (Index a = 0; a < d; ++a)
    for (Index b = a; b < d; ++b) out(e++) = m(a, b);
}

template <class Packed, class Sym>
void unpack_symmetric(const Packed& p, Sym& out) {
  const Index d = out.rows();
  Index e = 0;
  for (Index a = 0; a < d; ++a)
    for (Index b = a; b < d; ++b) {
      out(a, b) = p(e);
      out(b, a) = p(e);
      ++e;
    }
}

// Coefficients c such that c . packed(M) = u^T M u (off-diagonal entries count twice).
template <class U, class Out>
void packed_outer(const U& u, Out&& out) {
  const Index d = u.size();
  Index e = 0;
  for (Index a = 0; a < d; ++a)
    for (Index b = a; b < d; ++b) out(e++) = (a == b ? 1.0 : 2.0) * u(a) * u(b);
}

}  // namespace latentgeo
