// Shared types and the OpenMP helpers of the latentgeo kernels.
#pragma once

#ifndef EIGEN_DONT_PARALLELIZE
#define EIGEN_DONT_PARALLELIZE
#endif

#include <Eigen/Dense>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>

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

// Runs body(i) for i in [0, n) on up to n_threads threads. `grain` is the number of
// items worth one thread: small jobs stay on the calling thread, where a parallel
// region would cost more than it saves. An exception thrown by body is caught inside
// the parallel region (an exception must never leave it) and the first one is
// rethrown on the calling thread. Each i is computed the same way whatever the
// number of threads, so results do not depend on it.
template <class Body>
void parallel_for(Index n, int n_threads, Body&& body, Index grain = 1) {
  std::exception_ptr error;
  std::mutex error_mutex;
  const Index useful = std::max<Index>(1, n / std::max<Index>(grain, 1));
  const int threads = static_cast<int>(std::min<Index>(resolve_threads(n_threads), useful));
  if (threads <= 1) {  // no parallel region (and no nested team inside a caller's region)
    for (Index i = 0; i < n; ++i) body(i);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
#endif
  for (Index i = 0; i < n; ++i) {
    try {
      body(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
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
