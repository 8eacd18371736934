// Curve velocities and the quadrature of length and energy.
//
// Curves are batched: B curves of N points each are stored as one (B*N) x d row-major
// matrix, curve after curve. Times t (N) are shared by all curves.
#pragma once

#include <cmath>

#include "latentgeo/common.hpp"

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

}  // namespace latentgeo
