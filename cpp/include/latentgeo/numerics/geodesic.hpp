// Discrete geodesics between pairs of points, for any metric kernel (see kernels.hpp) with
//   void quadratic_form(z, v, q, dqdz, dqdv, n_threads) const   (q = v^T G(z) v and its gradients)
//   Index dim() const
//
// A curve on [0, 1] is n + 1 nodes x_0..x_n (n segments, h = 1/n) with pinned ends. The solver
// minimises the discrete energy with Simpson's rule on each segment (the default)
//   E(x) = (n/6) sum_i D_i^T (G(x_i) + 4 G(m_i) + G(x_{i+1})) D_i,
//   D_i = x_{i+1} - x_i,   m_i = (x_i + x_{i+1}) / 2,
// or the midpoint rule E(x) = n sum_i D_i^T G(m_i) D_i (Quadrature::midpoint), with the analytic
// gradient from the kernel's fused quadratic form, or, for the pullback metric G = J^T J of a
// decoder e (Quadrature::decoded), the energy of the decoded polyline
//   E(x) = n sum_i |e(x_{i+1}) - e(x_i)|^2
// whose gradient needs one decoder pass and its reverse (no second derivatives; a pair whose
// measured curve has far more energy than its decoded polyline is solved again with Simpson's
// energy, see kSkipExcess), by L-BFGS whose initial
// inverse Hessian is the block-tridiagonal "metric Laplacian" (the Hessian of the midpoint energy
// with G frozen):
//   P = tridiag(-2n G_{j-1}, 2n (G_{j-1} + G_j), -2n G_j),
// which makes the iteration count nearly independent of n. Levels of nodes are refined
// coarse to fine (8 -> 16 -> 32 ... segments, each level starting from the cubic Hermite
// interpolation of the previous one) until the estimated error of the measured length is below
// length_tol relative and the nodes moved by less than sqrt(length_tol) |end - start| away from
// the previous level's curve (see level_converged), or a fixed final node count is reached.
//
// The reported length and energy are measured on the C^1 cubic Hermite interpolant of the nodes
// (tangents by fourth-order differences) with 3-point Gauss-Legendre per segment (curves.hpp):
// they are the length of an actual curve, not the optimiser's objective.
#pragma once

#include <array>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "latentgeo/core/common.hpp"
#include "latentgeo/metrics/kernels.hpp"
#include "latentgeo/numerics/curves.hpp"
#include "latentgeo/numerics/lbfgs.hpp"

namespace latentgeo {

// The first four codes are the optimiser's (LbfgsStatus), the others the solver's.
enum class GeodesicStatus : int {
  converged = 0,
  max_iter = 1,
  line_search_failed = 2,
  non_finite = 3,
  max_nodes = 4,        // every level converged but the length's estimated error stayed above length_tol
  singular_metric = 5,  // the metric is singular or not positive definite on the curve (MetricDomainError)
  metric_error = 6,     // the metric raised another error (message and error of the solution)
};

// The statuses' names, index = code; Python's latentgeo.results.STATUS is built from this table.
inline constexpr std::array<const char*, 7> kGeodesicStatusNames = {
    "converged", "max_iter", "line_search_failed", "non_finite", "max_nodes", "singular_metric", "metric_error"};
static_assert(static_cast<int>(GeodesicStatus::metric_error) + 1 == kGeodesicStatusNames.size());
static_assert(static_cast<int>(LbfgsStatus::non_finite) == static_cast<int>(GeodesicStatus::non_finite));

// The discrete energy that a level minimises (see the top of this file).
enum class Quadrature : int { simpson = 0, midpoint = 1, decoded = 2 };
inline constexpr std::array<const char*, 3> kQuadratureNames = {"simpson", "midpoint", "decoded"};

// The inverse-Hessian guess of L-BFGS. `metric`: the block-tridiagonal "metric Laplacian" of G
// at the segment midpoints (d x d blocks, a Cholesky each: O(n d^3), and G itself costs a decoder
// d Jacobian-vector products per point). `chord`: the same operator with each G_i replaced by the
// scalar g_i = D_i^T G(m_i) D_i / |D_i|^2 (the metric along the segment: one quadratic form per
// segment) times I, a scalar tridiagonal solve shared by the d coordinates: O(n d). `automatic`:
// chord for decoders' pullback metrics of more than kChordDim dimensions, else metric.
enum class Preconditioner : int { automatic = 0, metric = 1, chord = 2 };
inline constexpr std::array<const char*, 3> kPreconditionerNames = {"auto", "metric", "chord"};
inline constexpr Index kChordDim = 64;

// The largest ratio of successive length changes that the refinement's error estimate assumes:
// fourth order for smooth metrics, first order where G jumps (level_converged).
inline constexpr double kSmoothRatio = 16.0;
inline constexpr double kJumpRatio = 2.0;

// The solver's options. Their defaults are latentgeo.geodesics' defaults: the Python package reads
// them from a default-constructed GeodesicOptions.
struct GeodesicOptions {
  Index n_segments = 0;                    // > 0: fixed final number of segments; 0: adaptive
  Index min_segments = 8;                  // segments of the first level (without an initial curve)
  Index max_segments = 2048;               // adaptive refinement stops here
  double length_tol = 1e-8;                // adaptive: the length's estimated relative error (nodes: its square root)
  std::optional<double> ftol;              // per level: relative energy change of the last step; unset: length_tol
  std::optional<double> gtol;              // per level: decrement relative to the energy; unset: 0.01 length_tol
  int max_iter = LbfgsOptions{}.max_iter;  // L-BFGS iterations per level
  int history = LbfgsOptions{}.history;    // stored curvature pairs
  Quadrature quadrature = Quadrature::simpson;  // the energy per segment
  double max_ratio = kSmoothRatio;              // the error estimate's largest ratio of successive length changes: 16
                                                // (fourth order) for smooth metrics, 2 (first order) where G jumps
  Index pairs_per_call = 64;                    // metrics without a C++ kernel: pairs whose evaluations share one call
  Preconditioner preconditioner = Preconditioner::automatic;  // L-BFGS's initial inverse Hessian (see Preconditioner)
};

// The optimiser's options of every level. Unless set, ftol and gtol follow length_tol: a level's
// length error is about decrement / 4, and its nodes, off by about sqrt(decrement), stay well
// inside the sqrt(length_tol) that the levels allow.
inline LbfgsOptions lbfgs_options(const GeodesicOptions& o) {
  LbfgsOptions l;
  l.ftol = o.ftol.value_or(o.length_tol);
  l.gtol = o.gtol.value_or(0.01 * o.length_tol);
  l.max_iter = o.max_iter;
  l.history = o.history;
  return l;
}

// Throws std::invalid_argument for an option out of range, naming the argument of
// latentgeo.geodesics it comes from (nodes = segments + 1).
inline void validate(const GeodesicOptions& o) {
  const auto require = [](bool ok, const char* message) {
    if (!ok) throw std::invalid_argument(message);
  };
  const auto positive = [](const std::optional<double>& x) { return !x || *x > 0.0; };  // NaN fails
  require(o.n_segments == 0 || o.n_segments >= 4, "n_nodes: must be >= 5");
  require(o.min_segments >= 4 && o.max_segments >= o.min_segments,
          "min_nodes, max_nodes: need 5 <= min_nodes <= max_nodes");
  require(o.length_tol > 0.0, "tol: must be > 0");
  require(positive(o.ftol), "ftol: must be > 0");
  require(positive(o.gtol), "gtol: must be > 0");
  require(o.max_iter >= 1, "max_iter: must be >= 1");
  require(o.history >= 1, "history: must be >= 1");
  require(o.pairs_per_call >= 1, "pairs_per_call: must be >= 1");
  require(o.max_ratio >= kJumpRatio && o.max_ratio <= kSmoothRatio, "max_ratio: must be in [2, 16]");
}

// The work of one refinement level, for profiling the solver.
struct GeodesicLevel {
  Index segments = 0;
  int n_iter = 0, n_evaluations = 0;  // accepted steps; energy evaluations (1 + line-search trials)
  Index kernel_points = 0;            // points at which the metric was evaluated (energy, preconditioner, length)
  double kernel_seconds = 0.0;        // time spent in the metric kernel
  double length = std::numeric_limits<double>::quiet_NaN();  // measured at the end of the level (adaptive)
};

struct GeodesicSolution {
  RowMatrix nodes;  // (n + 1) x d; after a failure, the last curve reached (or the initial one)
  double length = 0.0, energy = 0.0, straight_length = 0.0;  // NaN when no curve could be measured
  int n_iter = 0, n_evaluations = 0, n_levels = 0;
  GeodesicStatus status = GeodesicStatus::converged;
  std::vector<GeodesicLevel> levels;
  std::string message;       // why the metric failed (singular_metric, non_finite from an error, metric_error)
  std::exception_ptr error;  // metric_error: the exception the metric raised
};

// The status of a pair that stopped on a failure of the metric (or on a NaN/Inf energy without one).
inline GeodesicStatus failure_status(const MetricFailure& f) {
  return f.any() && !f.non_finite ? GeodesicStatus::singular_metric : GeodesicStatus::non_finite;
}

namespace detail {

// Seconds taken by f().
template <class F>
double seconds_of(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The largest move of the nodes `after` away from the curve through `before` (same times, n >= 4
// segments): the component normal to the curve's tangent, so that nodes sliding along the curve
// (a reparametrisation, which the energy barely feels) do not count.
inline double normal_move(const RowMatrix& before, const RowMatrix& after) {
  RowMatrix tangents;
  hermite_tangents(before, tangents);
  double largest = 0.0;
  for (Index i = 0; i < before.rows(); ++i) {
    const RowVector move = after.row(i) - before.row(i);
    const double speed = tangents.row(i).norm();
    const RowVector normal =
        speed > 0.0 ? RowVector(move - move.dot(tangents.row(i)) / (speed * speed) * tangents.row(i)) : move;
    largest = std::max(largest, normal.norm());
  }
  return largest;
}

}  // namespace detail

// The discrete energy (Simpson's or the midpoint rule) of one pair as a function of the free nodes
// x_1..x_{n-1}, with its block-tridiagonal preconditioner; the problem type of Lbfgs.
template <class Kernel>
class DiscreteGeodesicProblem {
 public:
  DiscreteGeodesicProblem(const Kernel& kernel, const RowVector& start, const RowVector& end, Quadrature quadrature,
                          bool chord_preconditioner = false)
      : k_(kernel), start_(start), end_(end), d_(start.size()), quadrature_(quadrature), chord_(chord_preconditioner) {}

  // A new level of n segments. With `reuse`, the preconditioner of the next refresh is built
  // from the previous level's G interpolated linearly in t (no kernel call): the curve moves
  // little between levels and P only has to be a good approximation.
  void set_segments(Index n, bool reuse) {
    reuse = reuse && n_ > 1 && static_cast<Index>(gmat_.size()) == n_;
    std::vector<Eigen::MatrixXd> fresh(n, Eigen::MatrixXd::Zero(d_, d_));  // zero until a refresh succeeds
    if (reuse)
      for (Index i = 0; i < n; ++i) {
        const double u = (static_cast<double>(i) + 0.5) * static_cast<double>(n_) / static_cast<double>(n) - 0.5;
        const Index j = std::min<Index>(std::max<Index>(static_cast<Index>(std::floor(u)), 0), n_ - 2);
        const double w = std::min(std::max(u - static_cast<double>(j), 0.0), 1.0);
        fresh[i] = (1.0 - w) * gmat_[j] + w * gmat_[j + 1];
      }
    gmat_.swap(fresh);
    interpolated_ = reuse;
    n_ = n;
    nodes_.resize(n + 1, d_);
    nodes_.row(0) = start_;
    nodes_.row(n) = end_;
    const bool simpson = quadrature_ == Quadrature::simpson;
    const Index rows = simpson ? 2 * n + 1 : n, vectors = simpson ? 2 : 1;
    points_.resize(rows, d_);
    deltas_.setZero(rows, vectors * d_);
    dqdz_.resize(rows, d_);
    dqdv_.resize(rows, vectors * d_);
    q_.resize(rows, vectors);
    schur_.assign(n > 1 ? n - 1 : 0, Eigen::LLT<Eigen::MatrixXd>());
    coupling_.assign(n > 1 ? n - 1 : 0, Eigen::MatrixXd(d_, d_));
  }

  Index segments() const { return n_; }
  Index free_size() const { return (n_ - 1) * d_; }

  // Free vector <-> nodes (row-major interior rows).
  void to_free(const RowMatrix& nodes, Vector& x) const {
    x.resize(free_size());
    for (Index j = 1; j < n_; ++j) x.segment((j - 1) * d_, d_) = nodes.row(j).transpose();
  }
  const RowMatrix& nodes(const Vector& x) {
    for (Index j = 1; j < n_; ++j) nodes_.row(j) = x.segment((j - 1) * d_, d_).transpose();
    return nodes_;
  }

  // A point where the metric is not defined (MetricDomainError) counts as an infinite energy, so
  // that the line search backtracks from it; the failure is kept for the pair's status.
  double value_and_gradient(const Vector& x, Vector& g) {
    failure_.clear();
    try {
      return quadrature_ == Quadrature::decoded ? decoded_energy_of(x, g) : quadrature_energy(x, g);
    } catch (const MetricDomainError& e) {
      failure_.record(e);
      g.setConstant(free_size(), std::numeric_limits<double>::quiet_NaN());
      return std::numeric_limits<double>::infinity();
    }
  }

  // The failure of the last evaluation.
  const MetricFailure& failure() const { return failure_; }

  // Metric evaluations so far (points, seconds), for the level statistics.
  Index kernel_points() const { return kernel_points_; }
  double kernel_seconds() const { return kernel_seconds_; }

  // Simpson's or the midpoint energy from one fused quadratic-form call.
  double quadrature_energy(const Vector& x, Vector& g) {
    geometry(x);
    kernel_seconds_ += detail::seconds_of([&] { quadratic_forms(k_, points_, deltas_, q_, dqdz_, dqdv_, 1); });
    kernel_points_ += points_.rows();
    return quadrature_ == Quadrature::simpson ? simpson_energy(g) : midpoint_energy(g);
  }

  // The decoded polyline's energy: the kernel returns it with its gradient at every node.
  double decoded_energy_of(const Vector& x, Vector& g) {
    nodes(x);
    double e = 0.0;
    kernel_seconds_ += detail::seconds_of([&] { e = decoded_energy(k_, nodes_, node_grad_); });
    kernel_points_ += n_ + 1;
    g.resize(free_size());
    for (Index j = 1; j < n_; ++j) g.segment((j - 1) * d_, d_) = node_grad_.row(j).transpose();
    return e;
  }

  // E = n sum_i D_i^T G(m_i) D_i: one quadratic form per segment (rows of points_ = midpoints).
  double midpoint_energy(Vector& g) const {
    const double nn = static_cast<double>(n_);
    g.resize(free_size());
    for (Index j = 1; j < n_; ++j)
      g.segment((j - 1) * d_, d_) =
          nn * (0.5 * (dqdz_.row(j - 1) + dqdz_.row(j)) + dqdv_.row(j - 1) - dqdv_.row(j)).transpose();
    return nn * q_.sum();
  }

  // E = (n/6) sum_i D_i^T (G(x_i) + 4 G(m_i) + G(x_{i+1})) D_i. Rows of points_: the n midpoints
  // (vectors D_i and 0), then the n + 1 nodes x_j (vectors D_{j-1} and D_j, 0 beyond the ends), so
  // that G is evaluated once per node for its two segments. Sampling G at the nodes too stops
  // coarse polylines from hopping over regions of large G that a midpoint never sees (pullback
  // metrics with saturated units).
  double simpson_energy(Vector& g) const {
    const double nn = static_cast<double>(n_) / 6.0;
    const auto mid_z = dqdz_.topRows(n_), node_z = dqdz_.bottomRows(n_ + 1);
    // d(segment i)/dD_i: its midpoint, its left end (second vector), its right end (first vector).
    const RowMatrix dv =
        4.0 * dqdv_.topLeftCorner(n_, d_) + dqdv_.block(n_, d_, n_, d_) + dqdv_.block(n_ + 1, 0, n_, d_);
    g.resize(free_size());
    for (Index j = 1; j < n_; ++j)
      g.segment((j - 1) * d_, d_) =
          nn * (dv.row(j - 1) - dv.row(j) + 2.0 * (mid_z.row(j - 1) + mid_z.row(j)) + node_z.row(j)).transpose();
    return nn * (4.0 * q_.col(0).head(n_).sum() + q_.bottomRows(n_ + 1).sum());
  }

  // G at the segment midpoints of x (or the interpolated G of a new level, once), then the
  // block LDL^T (block Thomas) factorisation of P.
  void refresh(const Vector& x) {
    if (chord_) return refresh_chord(x);
    bool ok = true;
    if (interpolated_) {
      interpolated_ = false;
    } else {
      geometry(x);
      try {
        kernel_seconds_ += detail::seconds_of([&] { metric_tensors(k_, points_.topRows(n_), gflat_); });
        kernel_points_ += n_;
        ok = gflat_.allFinite();
      } catch (const MetricDomainError&) {  // the fallback preconditioner below
        ok = false;
      }
      for (Index i = 0; i < n_ && ok; ++i) {
        for (Index a = 0; a < d_; ++a)
          for (Index b = 0; b < d_; ++b) gmat_[i](a, b) = 0.5 * (gflat_(i, a * d_ + b) + gflat_(i, b * d_ + a));
      }
    }
    const double two_n = 2.0 * static_cast<double>(n_);
    Eigen::MatrixXd s(d_, d_);
    for (Index j = 0; ok && j + 1 < n_; ++j) {  // free node j + 1 couples segments j and j + 1
      s = two_n * (gmat_[j] + gmat_[j + 1]);
      if (j > 0) s.noalias() += two_n * gmat_[j] * coupling_[j - 1];  // -L_{j-1} C_{j-1}, L_{j-1} = -2n G_j
      schur_[j].compute(s);
      ok = schur_[j].info() == Eigen::Success;
      if (ok && j + 2 < n_) coupling_[j] = schur_[j].solve(-two_n * gmat_[j + 1]);
    }
    precond_ok_ = ok;
    if (!ok) {  // fall back to a scaled identity from the diagonal of G
      double tr = 0.0;
      for (Index i = 0; i < n_; ++i) tr += gmat_[i].trace();
      fallback_ = (std::isfinite(tr) && tr > 0.0) ? 1.0 / (4.0 * static_cast<double>(n_) * tr / (n_ * d_)) : 1.0;
    }
  }

  // The chord preconditioner's scalars g_i (see Preconditioner) and the Thomas factorisation of
  // the scalar tridiagonal T (diagonal 2n(g_j + g_{j+1}), off-diagonal -2n g_{j+1}).
  void refresh_chord(const Vector& x) {
    interpolated_ = false;
    geometry(x);
    const RowMatrix mids = points_.topRows(n_), chords = deltas_.topLeftCorner(n_, d_);
    RowMatrix q(n_, 1), none(0, d_);
    bool ok = true;
    try {
      kernel_seconds_ += detail::seconds_of([&] { quadratic_forms(k_, mids, chords, q, none, none, 1); });
      kernel_points_ += n_;
    } catch (const MetricDomainError&) {
      ok = false;
    }
    chord_weight_.setZero(n_);
    for (Index i = 0; i < n_ && ok; ++i) {
      const double len2 = chords.row(i).squaredNorm();
      chord_weight_(i) = len2 > 0.0 ? q(i, 0) / len2 : 0.0;
      ok = std::isfinite(chord_weight_(i)) && chord_weight_(i) > 0.0;
    }
    const double two_n = 2.0 * static_cast<double>(n_);
    const Index m = n_ - 1;
    chord_pivot_.resize(std::max<Index>(m, 0));
    for (Index j = 0; ok && j < m; ++j) {  // free node j + 1 couples segments j and j + 1
      const double off = two_n * chord_weight_(j);
      chord_pivot_(j) =
          two_n * (chord_weight_(j) + chord_weight_(j + 1)) - (j > 0 ? off * off / chord_pivot_(j - 1) : 0.0);
      ok = chord_pivot_(j) > 0.0;
    }
    precond_ok_ = ok;
    if (!ok) {  // a scaled identity from the usable scalars, as refresh's fallback
      double sum = 0.0;
      Index count = 0;
      for (Index i = 0; i < chord_weight_.size(); ++i)
        if (std::isfinite(chord_weight_(i)) && chord_weight_(i) > 0.0) sum += chord_weight_(i), ++count;
      fallback_ = count > 0 ? 1.0 / (4.0 * static_cast<double>(n_) * sum / static_cast<double>(count)) : 1.0;
    }
  }

  void apply_h0(const Vector& g, Vector& r) {
    r.resize(g.size());
    if (!precond_ok_) {
      r = fallback_ * g;
      return;
    }
    if (chord_) return apply_chord(g, r);
    const double two_n = 2.0 * static_cast<double>(n_);
    const Index m = n_ - 1;
    for (Index j = 0; j < m; ++j) {
      Vector rhs = g.segment(j * d_, d_);
      if (j > 0) rhs.noalias() += two_n * gmat_[j] * r.segment((j - 1) * d_, d_);
      r.segment(j * d_, d_) = schur_[j].solve(rhs);
    }
    for (Index j = m - 2; j >= 0; --j) r.segment(j * d_, d_) -= coupling_[j] * r.segment((j + 1) * d_, d_);
  }

 private:
  // r = T^{-1} g for every coordinate at once (rows of the free vector's n - 1 nodes).
  void apply_chord(const Vector& g, Vector& r) const {
    const double two_n = 2.0 * static_cast<double>(n_);
    const Index m = n_ - 1;
    for (Index j = 0; j < m; ++j) {
      auto rj = r.segment(j * d_, d_);
      rj = g.segment(j * d_, d_);
      if (j > 0) rj += (two_n * chord_weight_(j) / chord_pivot_(j - 1)) * r.segment((j - 1) * d_, d_);
    }
    for (Index j = m - 1; j >= 0; --j) {
      auto rj = r.segment(j * d_, d_);
      if (j + 1 < m) rj += (two_n * chord_weight_(j + 1)) * r.segment((j + 1) * d_, d_);
      rj /= chord_pivot_(j);
    }
  }

  // The evaluation points (midpoints; with Simpson also the nodes) and the segment vectors D_i
  // that go with them (see simpson_energy; the zero blocks of deltas_ stay zero).
  void geometry(const Vector& x) {
    nodes(x);
    for (Index i = 0; i < n_; ++i) {
      deltas_.block(i, 0, 1, d_) = nodes_.row(i + 1) - nodes_.row(i);
      points_.row(i) = 0.5 * (nodes_.row(i + 1) + nodes_.row(i));
    }
    if (quadrature_ != Quadrature::simpson) return;  // the midpoints only
    points_.bottomRows(n_ + 1) = nodes_;
    deltas_.block(n_ + 1, 0, n_, d_) = deltas_.topLeftCorner(n_, d_);  // node j + 1: D_j is its left segment
    deltas_.block(n_, d_, n_, d_) = deltas_.topLeftCorner(n_, d_);     // node j: D_j is its right segment
  }

  const Kernel& k_;
  RowVector start_, end_;
  Index d_, n_ = 0;
  RowMatrix nodes_, points_, deltas_, dqdz_, dqdv_, gflat_, q_, node_grad_;
  Quadrature quadrature_;
  Index kernel_points_ = 0;
  double kernel_seconds_ = 0.0;
  std::vector<Eigen::MatrixXd> gmat_, coupling_;
  std::vector<Eigen::LLT<Eigen::MatrixXd>> schur_;
  bool precond_ok_ = false, interpolated_ = false, chord_ = false;
  Vector chord_weight_, chord_pivot_;
  double fallback_ = 1.0;
  MetricFailure failure_;
};

// Segments of the levels: doubling from `first` up to the fixed `n_segments` (which ends the
// list), or up to max_segments when adaptive.
inline std::vector<Index> geodesic_levels(Index first, const GeodesicOptions& o) {
  std::vector<Index> levels;
  const Index last = o.n_segments > 0 ? o.n_segments : o.max_segments;
  Index n = std::min(first, last);
  for (; n < last; n *= 2) levels.push_back(n);
  levels.push_back(last);
  return levels;
}

// Whether a level ends the refinement. The length: Richardson's estimate of its error, the change
// from the previous level divided by (ratio - 1), with ratio the observed ratio of successive
// changes taken in [2, max_ratio] (16 for smooth metrics, whose length converges like h^4 once
// the levels resolve the curve; 2 where G jumps, as across a ReLU decoder's hyperplanes, where
// the changes are erratic and a small one says little about the error), is
// at most length_tol relative. Until a ratio is observed the change itself is the estimate: coarse
// levels can be far from the asymptotic rate (an RHVAE with T = 0.4 has pairs whose length
// changes by 2e-5 from 8 to 16 segments while both are 2e-4 off). The nodes, which
// converge only like h^2: they moved away from the previous level's curve (normal_move) by at most
// sqrt(length_tol) |end - start|.
inline bool level_converged(double length, double change, double previous_change, double node_move, double span,
                            double length_tol, double max_ratio = kSmoothRatio) {
  const double ratio = std::isfinite(previous_change) && change > 0.0
                           ? std::min(std::max(previous_change / change, kJumpRatio), max_ratio)
                           : kJumpRatio;
  return change <= (ratio - 1.0) * length_tol * length && node_move <= std::sqrt(length_tol) * span;
}

namespace detail {

// Length of the straight segment, measured like the result; infinite where the metric is not
// defined on it.
template <class Kernel>
double straight_length(const Kernel& kernel, const RowVector& start, const RowVector& end) {
  RowMatrix line(2, start.size());
  line.row(0) = start;
  line.row(1) = end;
  double length, energy;
  MetricFailure ignored;
  return try_measure_curve(kernel, resample(line, 16, true), true, length, energy, ignored)
             ? length
             : std::numeric_limits<double>::infinity();
}

// One level of n segments from the nodes `start_curve`; the counters go into sol.
template <class Kernel>
LbfgsResult solve_level(DiscreteGeodesicProblem<Kernel>& problem, Lbfgs<DiscreteGeodesicProblem<Kernel>>& lbfgs,
                        const RowMatrix& start_curve, bool reuse, Vector& x, GeodesicSolution& sol) {
  problem.set_segments(start_curve.rows() - 1, reuse);
  problem.to_free(start_curve, x);
  const LbfgsResult r = lbfgs.minimize(x);
  sol.n_iter += r.n_iter;
  sol.n_evaluations += r.n_evaluations;
  return r;
}

// A decoded polyline whose curve, measured on G, has much more energy than the polyline says
// that its chords skip what lies between the nodes: a decoder that maps distant points close
// together (saturated units) lets nodes wander where the chords are short but the curve between
// them is not. The excess (measured / polyline energy - 1) of a resolved curve is O(h^2): a
// quarter per level (1e-3 to 2e-3 at the end on conv and MLP decoders; up to 0.06 on the first
// level of long curves across a ReLU decoder). The pair is taken to skip when the excess is above
// kSkipExcess and did not halve since the previous level, or is above 1 on the first level
// (hopping curves on a random tanh MLP: 0.1 growing to 1.6 with the levels, or 4 at once).
inline constexpr double kSkipExcess = 0.1;

// See kSkipExcess; `previous` is the previous level's excess (NaN on the first), updated.
inline bool chords_skip(const GeodesicOptions& o, const GeodesicSolution& sol, double polyline_energy,
                        double& previous) {
  if (o.quadrature != Quadrature::decoded) return false;
  const double excess = sol.energy / polyline_energy - 1.0;
  const bool skip = std::isnan(previous) ? excess > 1.0 : excess > kSkipExcess && excess > 0.5 * previous;
  previous = excess;
  return skip;
}

// Whether a pair's L-BFGS starts from the chord preconditioner (see Preconditioner).
template <class Kernel>
bool uses_chord_preconditioner(const GeodesicOptions& o, Index d) {
  if (o.preconditioner != Preconditioner::automatic) return o.preconditioner == Preconditioner::chord;
  return detail::has_decoded_energy<Kernel>::value && d > kChordDim;
}

// The levels of one pair with the options' energy; false when the decoded polyline was found not
// to represent its curve (see kSkipExcess). May throw what the kernel throws besides
// MetricDomainError.
template <class Kernel>
bool solve_levels(const Kernel& kernel, const RowVector& start, const RowVector& end, const RowMatrix& init,
                  const GeodesicOptions& o, GeodesicSolution& sol) {
  const Index d = start.size();
  const bool has_init = init.rows() >= 2;
  const Index first = has_init ? std::max<Index>(init.rows() - 1, 4) : o.min_segments;
  const std::vector<Index> levels = geodesic_levels(first, o);
  if (start == end) {  // distance 0: a constant curve on the first (or the fixed) level
    sol.nodes = start.replicate((o.n_segments > 0 ? o.n_segments : first) + 1, 1);
    return true;
  }
  RowMatrix nodes;
  if (has_init) {
    nodes = init;
  } else {
    nodes.resize(2, d);
    nodes.row(0) = start;
    nodes.row(1) = end;
  }
  sol.nodes = resample(nodes, levels[0], true);  // the curve reported if the first level fails
  sol.straight_length = straight_length(kernel, start, end);
  DiscreteGeodesicProblem<Kernel> problem(kernel, start, end, o.quadrature, uses_chord_preconditioner<Kernel>(o, d));
  Lbfgs<DiscreteGeodesicProblem<Kernel>> lbfgs(problem, lbfgs_options(o));
  Vector x;
  double previous = std::numeric_limits<double>::quiet_NaN(), previous_change = previous;
  bool refined = o.n_segments > 0, solved = false;
  bool measured = false;                                        // sol.length/energy belong to `nodes`
  double objective = std::numeric_limits<double>::quiet_NaN();  // the last level's minimised energy
  double excess = objective;  // of the measured over the decoded polyline's energy (chords_skip)
  LbfgsStatus status = LbfgsStatus::converged;
  MetricFailure failure;
  for (std::size_t l = 0; l < levels.size(); ++l) {
    GeodesicLevel level;
    level.segments = levels[l];
    level.kernel_points = -problem.kernel_points();
    level.kernel_seconds = -problem.kernel_seconds();
    // The first level starts from the initial curve as a polyline, the others from the cubic
    // interpolant of the previous level, or from its polyline (whose new nodes were all
    // evaluated already) when the interpolant leaves the region where the metric is defined.
    RowMatrix interpolated = resample(nodes, levels[l], l == 0);
    LbfgsResult r = solve_level(problem, lbfgs, interpolated, l > 0, x, sol);
    if (r.status == LbfgsStatus::non_finite && l > 0) {
      interpolated = resample(nodes, levels[l], true);
      r = solve_level(problem, lbfgs, interpolated, true, x, sol);
    }
    level.n_iter = r.n_iter;
    level.n_evaluations = r.n_evaluations;
    objective = r.f;
    level.kernel_points += problem.kernel_points();
    level.kernel_seconds += problem.kernel_seconds();
    ++sol.n_levels;
    status = r.status;
    measured = false;
    if (status == LbfgsStatus::non_finite) {
      failure = problem.failure();
      sol.levels.push_back(level);
      break;
    }
    nodes = problem.nodes(x);
    solved = true;
    if (o.n_segments == 0) {  // adaptive: measure every level (a fixed node count only at the end)
      bool ok = false;
      level.kernel_seconds +=
          detail::seconds_of([&] { ok = try_measure_curve(kernel, nodes, false, sol.length, sol.energy, failure); });
      level.kernel_points += 3 * levels[l];
      level.length = sol.length;
      measured = ok;
    }
    sol.levels.push_back(level);
    if (o.n_segments == 0 && !measured) break;  // the curve crosses a point where the metric fails
    if (!measured) continue;
    if (chords_skip(o, sol, r.f, excess)) return false;
    const double change = std::abs(sol.length - previous);
    const double node_move = normal_move(interpolated, nodes);
    if (status == LbfgsStatus::converged && level_converged(sol.length, change, previous_change, node_move,
                                                            (end - start).norm(), o.length_tol, o.max_ratio)) {
      refined = true;
      break;
    }
    previous_change = change;
    previous = sol.length;
  }
  if (!measured) sol.length = sol.energy = std::numeric_limits<double>::quiet_NaN();
  if (solved) {
    sol.nodes = nodes;
    if (!measured && try_measure_curve(kernel, nodes, false, sol.length, sol.energy, failure) &&
        chords_skip(o, sol, objective, excess))
      return false;
  }
  sol.status = static_cast<GeodesicStatus>(static_cast<int>(status));
  if (status == LbfgsStatus::converged && !refined) sol.status = GeodesicStatus::max_nodes;
  if (failure.any() || status == LbfgsStatus::non_finite || !std::isfinite(sol.length) || !std::isfinite(sol.energy)) {
    sol.status = failure_status(failure);
    sol.message = failure.message;
  }
  return true;
}

// The body of solve_geodesic. A pair whose decoded polyline does not represent its curve is
// solved again from the start with Simpson's energy; its counters and levels include both.
template <class Kernel>
void solve_pair(const Kernel& kernel, const RowVector& start, const RowVector& end, const RowMatrix& init,
                const GeodesicOptions& o, GeodesicSolution& sol) {
  if (solve_levels(kernel, start, end, init, o, sol)) return;
  GeodesicOptions simpson = o;
  simpson.quadrature = Quadrature::simpson;
  GeodesicSolution again;
  solve_levels(kernel, start, end, init, simpson, again);
  again.n_iter += sol.n_iter;
  again.n_evaluations += sol.n_evaluations;
  again.n_levels += sol.n_levels;
  again.levels.insert(again.levels.begin(), sol.levels.begin(), sol.levels.end());
  sol = std::move(again);
}

}  // namespace detail

// One pair. `init` (>= 2 rows, ends equal to start/end) is an optional initial curve on uniform
// times; without it (0 rows) the straight line. Never throws for a failure of the metric: a
// point where it is not defined (MetricDomainError) is an infinite energy for the optimiser
// and, on the curve itself, the status singular_metric or non_finite; any other error of the
// metric gives metric_error with its message and exception. Cancelled and bad_alloc propagate.
template <class Kernel>
GeodesicSolution solve_geodesic(const Kernel& kernel, const RowVector& start, const RowVector& end,
                                const RowMatrix& init, const GeodesicOptions& o) {
  GeodesicSolution sol;
  try {
    detail::solve_pair(kernel, start, end, init, o, sol);
  } catch (const Cancelled&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (...) {
    sol.status = GeodesicStatus::metric_error;
    sol.length = sol.energy = std::numeric_limits<double>::quiet_NaN();
    sol.error = std::current_exception();
    try {
      throw;
    } catch (const std::exception& e) {
      sol.message = e.what();
    } catch (...) {
      sol.message = "unknown error";
    }
  }
  return sol;
}

// B pairs (rows of starts/ends) in parallel over pairs, each pair single-threaded; the result does
// not depend on n_threads. `init` is empty or (B * n0) x d (n0 nodes per pair).
template <class Kernel>
std::vector<GeodesicSolution> solve_geodesics(const Kernel& kernel, const ConstRowMatrixRef& starts,
                                              const ConstRowMatrixRef& ends, const ConstRowMatrixRef& init, Index n0,
                                              const GeodesicOptions& o, int n_threads) {
  const Index b = starts.rows();
  std::vector<GeodesicSolution> out(static_cast<std::size_t>(b));
  parallel_for(b, n_threads, [&](Index i) {
    RowMatrix start_init = n0 > 0 ? RowMatrix(init.middleRows(i * n0, n0)) : RowMatrix(0, starts.cols());
    out[static_cast<std::size_t>(i)] = solve_geodesic(kernel, starts.row(i), ends.row(i), start_init, o);
  });
  return out;
}

}  // namespace latentgeo
