// Curve velocities, the quadrature of length and energy, and the Hermite interpolant of the
// solvers' discrete curves with its measured length and energy.
//
// Curves are batched: B curves of N points each are stored as one (B*N) x d row-major
// matrix, curve after curve. Times t (N) are shared by all curves.
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "latentgeo/core/common.hpp"

namespace latentgeo {

enum class Rule { trapezoid, simpson, aetk };
enum class Integral { length, energy };

// Curves of n points per thread worth starting a parallel region for (~20k points).
inline Index grain_for(Index points_per_curve) {
  return std::max<Index>(1, 20000 / std::max<Index>(points_per_curve, 1));
}

// (ahead - behind) / step: forward differences pass (gamma(t+e), gamma(t), e),
// central differences (gamma(t+e), gamma(t-e), 2e).
inline void finite_difference(const ConstRowMatrixRef& ahead, const ConstRowMatrixRef& behind, double step,
                              RowMatrixRef out) {
  out = (ahead - behind) / step;
}

// Second-order differences on a possibly non-uniform grid: three-point central
// formula inside, three-point one-sided formulas at both ends; N = 2 falls back to
// the chord slope. Writes the velocities of B curves.
inline void discrete_velocity(const ConstRowMatrixRef& points, const ConstVectorRef& t, RowMatrixRef out,
                              int n_threads) {
  const Index n = t.size();
  const Index curves = points.rows() / n;
  parallel_for(
      curves, n_threads,
      [&](Index c) {
        auto x = points.middleRows(c * n, n);
        auto v = out.middleRows(c * n, n);
        if (n == 2) {
          v.row(0) = (x.row(1) - x.row(0)) / (t(1) - t(0));
          v.row(1) = v.row(0);
          return;
        }
        for (Index i = 1; i + 1 < n; ++i) {
          const double h1 = t(i) - t(i - 1), h2 = t(i + 1) - t(i);
          v.row(i) = (-h2 / (h1 * (h1 + h2))) * x.row(i - 1) + ((h2 - h1) / (h1 * h2)) * x.row(i) +
                     (h1 / (h2 * (h1 + h2))) * x.row(i + 1);
        }
        {
          const double h1 = t(1) - t(0), h2 = t(2) - t(1);
          v.row(0) = (-(2 * h1 + h2) / (h1 * (h1 + h2))) * x.row(0) + ((h1 + h2) / (h1 * h2)) * x.row(1) -
                     (h1 / (h2 * (h1 + h2))) * x.row(2);
        }
        {
          const double h1 = t(n - 2) - t(n - 3), h2 = t(n - 1) - t(n - 2);
          v.row(n - 1) = ((2 * h2 + h1) / (h2 * (h1 + h2))) * x.row(n - 1) - ((h1 + h2) / (h1 * h2)) * x.row(n - 2) +
                         (h2 / (h1 * (h1 + h2))) * x.row(n - 3);
        }
      },
      grain_for(n));
}

// Quadrature weights w such that integral f dt ~ sum_i w_i f(t_i).
//   trapezoid: any increasing grid, N >= 2.
//   simpson:   composite Simpson on pairs of (possibly unequal) intervals, odd N >= 3.
//   aetk:      1/N for every point (AutoEncoderToolkit.jl's rule; it ignores t).
inline Vector quadrature_weights(const ConstVectorRef& t, Rule rule) {
  const Index n = t.size();
  Vector w = Vector::Zero(n);
  if (rule == Rule::aetk) {
    w.setConstant(1.0 / static_cast<double>(n));
    return w;
  }
  if (rule == Rule::trapezoid) {
    for (Index i = 0; i + 1 < n; ++i) {
      const double h = t(i + 1) - t(i);
      w(i) += 0.5 * h;
      w(i + 1) += 0.5 * h;
    }
    return w;
  }
  if (n < 3 || n % 2 == 0) throw std::invalid_argument("t: rule='simpson' needs an odd number (>= 3) of times");
  for (Index i = 0; i + 2 < n; i += 2) {
    const double h0 = t(i + 1) - t(i), h1 = t(i + 2) - t(i + 1), s = (h0 + h1) / 6.0;
    w(i) += s * (2.0 - h1 / h0);
    w(i + 1) += s * (h0 + h1) * (h0 + h1) / (h0 * h1);
    w(i + 2) += s * (2.0 - h0 / h1);
  }
  return w;
}

// Integrates q = v^T G v over each of the B curves:
//   length: sum_i w_i sqrt(q_i),   energy: factor * sum_i w_i q_i.
// With grad_q non-empty also writes dI/dq per point (zero where q = 0 for the length,
// whose square root has no derivative there).
inline void integrate(const ConstVectorRef& q, const ConstVectorRef& weights, Integral integral, double energy_factor,
                      VectorRef values, VectorRef grad_q, int n_threads) {
  const Index n = weights.size();
  const Index curves = q.size() / n;
  const bool want_grad = grad_q.size() > 0;
  parallel_for(
      curves, n_threads,
      [&](Index c) {
        double total = 0.0;
        for (Index i = 0; i < n; ++i) {
          const double qi = q(c * n + i);
          if (integral == Integral::length) {
            const double root = std::sqrt(std::max(qi, 0.0));
            total += weights(i) * root;
            if (want_grad) grad_q(c * n + i) = root > 0.0 ? 0.5 * weights(i) / root : 0.0;
          } else {
            total += weights(i) * qi;
            if (want_grad) grad_q(c * n + i) = energy_factor * weights(i);
          }
        }
        values(c) = integral == Integral::energy ? energy_factor * total : total;
      },
      grain_for(n));
}

// Chain rule of the fused routines: g_z = (dI/dq) dq/dz and g_v = (dI/dq) dq/dv, row by row.
inline void chain_quadratic_form(const ConstVectorRef& grad_q, RowMatrixRef dqdz, RowMatrixRef dqdv) {
  dqdz.array().colwise() *= grad_q.array();
  dqdv.array().colwise() *= grad_q.array();
}

// Discrete curves of uniform nodes: their C^1 cubic Hermite interpolant, resampling, and the
// measured length and energy.

// The last MetricDomainError met by an evaluation (none when `message` is empty).
struct MetricFailure {
  std::string message;
  bool non_finite = false;

  bool any() const { return !message.empty(); }
  void record(const MetricDomainError& e) {
    message = e.what();
    non_finite = e.non_finite();
  }
  void clear() { message.clear(); }
};

namespace detail {

/// Tangents d/dt (t in [0, 1]) at uniform nodes by fourth-order differences (central inside,
/// one-sided five-point at the two first and two last nodes).
/// @param x  ((n + 1) x d) nodes, n >= 4 segments.
/// @param m  output, resized to ((n + 1) x d).
inline void hermite_tangents(const RowMatrix& x, RowMatrix& m) {
  const Index n = x.rows() - 1;
  const double s = static_cast<double>(n) / 12.0;
  m.resize(x.rows(), x.cols());
  for (Index i = 2; i + 2 <= n; ++i)
    m.row(i) = s * (x.row(i - 2) - 8.0 * x.row(i - 1) + 8.0 * x.row(i + 1) - x.row(i + 2));
  m.row(0) = s * (-25.0 * x.row(0) + 48.0 * x.row(1) - 36.0 * x.row(2) + 16.0 * x.row(3) - 3.0 * x.row(4));
  m.row(1) = s * (-3.0 * x.row(0) - 10.0 * x.row(1) + 18.0 * x.row(2) - 6.0 * x.row(3) + x.row(4));
  m.row(n) =
      -s * (-25.0 * x.row(n) + 48.0 * x.row(n - 1) - 36.0 * x.row(n - 2) + 16.0 * x.row(n - 3) - 3.0 * x.row(n - 4));
  m.row(n - 1) = -s * (-3.0 * x.row(n) - 10.0 * x.row(n - 1) + 18.0 * x.row(n - 2) - 6.0 * x.row(n - 3) + x.row(n - 4));
}

/// Position and velocity of the cubic Hermite interpolant at local s in [0, 1] of segment i.
/// @param x, m  ((n + 1) x d) nodes and their tangents (hermite_tangents).
/// @param h     the segment's length in t (1 / n).
/// @param p, v  outputs, (1 x d) rows: the position and d/dt.
template <class P, class V>
void hermite_eval(const RowMatrix& x, const RowMatrix& m, Index i, double s, double h, P&& p, V&& v) {
  const double s2 = s * s, s3 = s2 * s;
  const double h00 = 2 * s3 - 3 * s2 + 1, h10 = s3 - 2 * s2 + s, h01 = -2 * s3 + 3 * s2, h11 = s3 - s2;
  const double d00 = 6 * s2 - 6 * s, d10 = 3 * s2 - 4 * s + 1, d01 = -6 * s2 + 6 * s, d11 = 3 * s2 - 2 * s;
  p = h00 * x.row(i) + h10 * h * m.row(i) + h01 * x.row(i + 1) + h11 * h * m.row(i + 1);
  v = (d00 / h) * x.row(i) + d10 * m.row(i) + (d01 / h) * x.row(i + 1) + d11 * m.row(i + 1);
}

/// The same curve on n_new + 1 uniform times: the cubic Hermite interpolant when the curve is
/// smooth (>= 5 nodes), piecewise-linear otherwise or when `linear`.
/// @param x  ((n + 1) x d) nodes, n >= 1.
/// @return   ((n_new + 1) x d) nodes with the same ends.
inline RowMatrix resample(const RowMatrix& x, Index n_new, bool linear) {
  const Index n = x.rows() - 1;
  RowMatrix out(n_new + 1, x.cols());
  if (n == n_new) return x;
  RowMatrix m;
  const bool cubic = !linear && n >= 4;
  if (cubic) hermite_tangents(x, m);
  RowVector v(x.cols());
  for (Index k = 0; k <= n_new; ++k) {
    const double t = static_cast<double>(k) / static_cast<double>(n_new) * static_cast<double>(n);
    const Index i = std::min<Index>(static_cast<Index>(t), n - 1);
    const double s = t - static_cast<double>(i);
    if (cubic)
      hermite_eval(x, m, i, s, 1.0 / static_cast<double>(n), out.row(k), v);
    else
      out.row(k) = (1.0 - s) * x.row(i) + s * x.row(i + 1);
  }
  out.row(0) = x.row(0);
  out.row(n_new) = x.row(n);
  return out;
}

/// 3-point Gauss-Legendre nodes and weights on [0, 1].
constexpr double kGaussS[3] = {0.5 - 0.3872983346207417, 0.5, 0.5 + 0.3872983346207417};
constexpr double kGaussW[3] = {5.0 / 18.0, 8.0 / 18.0, 5.0 / 18.0};

}  // namespace detail

/// Length and energy of the cubic Hermite interpolant of the nodes, or of the polyline when
/// `linear` (exact velocities of the straight segments), by 3-point Gauss-Legendre per segment.
/// @param x  ((n + 1) x d) nodes at uniform times on [0, 1]; n >= 4 unless `linear`.
/// @param length, energy  outputs: integral of sqrt(v^T G v) dt and of v^T G v dt.
/// Throws what the kernel throws (MetricDomainError where the metric is not defined).
template <class Kernel>
void measure_curve(const Kernel& kernel, const RowMatrix& x, bool linear, double& length, double& energy) {
  const Index n = x.rows() - 1, d = x.cols();
  const double h = 1.0 / static_cast<double>(n);
  RowMatrix m, z(3 * n, d), v(3 * n, d), empty(0, d);
  Vector q(3 * n);
  if (!linear) detail::hermite_tangents(x, m);
  for (Index i = 0; i < n; ++i)
    for (int g = 0; g < 3; ++g) {
      const Index r = 3 * i + g;
      if (linear) {
        z.row(r) = x.row(i) + detail::kGaussS[g] * (x.row(i + 1) - x.row(i));
        v.row(r) = (x.row(i + 1) - x.row(i)) / h;
      } else {
        detail::hermite_eval(x, m, i, detail::kGaussS[g], h, z.row(r), v.row(r));
      }
    }
  kernel.quadratic_form(z, v, q, empty, empty, 1);
  length = energy = 0.0;
  for (Index i = 0; i < n; ++i)
    for (int g = 0; g < 3; ++g) {
      const double qi = q(3 * i + g);
      length += h * detail::kGaussW[g] * std::sqrt(std::max(qi, 0.0));
      energy += h * detail::kGaussW[g] * qi;
    }
}

/// measure_curve, or false (NaN length and energy, the failure recorded in `failure`) where the
/// metric is not defined on the curve (MetricDomainError); other exceptions propagate.
template <class Kernel>
bool try_measure_curve(const Kernel& kernel, const RowMatrix& x, bool linear, double& length, double& energy,
                       MetricFailure& failure) {
  try {
    measure_curve(kernel, x, linear, length, energy);
    return true;
  } catch (const MetricDomainError& e) {
    failure.record(e);
    length = energy = std::numeric_limits<double>::quiet_NaN();
    return false;
  }
}

}  // namespace latentgeo
