// The Levi-Civita connection of a metric at batches of points: G, the Christoffel symbols and their
// derivatives, from the metric kernels.
//
// A connection model has
//   Index dim() const;
//   void evaluate(const ConstRowMatrixRef& z, Order order, LocalGeometry& out) const;
// which fills, for the N rows of z, G (order >= metric), Gamma (order >= christoffel) and dGamma
// (order second), with ok = 0 at points where G is not finite or not positive definite (outside the
// metric's domain); evaluate never throws for such points. A model may also offer the geodesic flow
// in Hamiltonian form (see KernelModel::hamiltonian).
//
// Layouts (row-major per point): G [a, b]; Gamma [k, i, j] = Gamma^k_ij; dGamma [k, i, j, m] =
// d_m Gamma^k_ij; dG [a, b, c] = d_c G_ab; d2G [a, b, c, e] = d_c d_e G_ab.
//
// Second derivatives: analytic for the RHVAE (closed-form second derivatives of the weights) and the
// constant metric; for the others (pullback, Python metrics) fourth-order central differences of the
// analytic Christoffel symbols,
//   d_m Gamma ~ (Gamma(z - 2h e_m) - 8 Gamma(z - h e_m) + 8 Gamma(z + h e_m) - Gamma(z + 2h e_m)) / (12 h),
// h = fd_step * max(1, |z_m|): truncation h^4 |d^5 Gamma| / 30 plus rounding ~ eps |Gamma| / h, i.e. a
// relative error ~1e-11 for fd_step = 1e-3 when Gamma itself is exact to rounding (an error delta in
// Gamma, e.g. from numerically differentiated G, becomes ~1.5 delta / h).
#pragma once

#include <cmath>
#include <vector>

#include "latentgeo/core/common.hpp"
#include "latentgeo/metrics/kernels.hpp"

namespace latentgeo {

enum class Order : int { metric = 0, christoffel = 1, second = 2 };

struct LocalGeometry {
  RowMatrix g;           // N x d^2
  RowMatrix gamma;       // N x d^3 (order >= christoffel)
  RowMatrix dgamma;      // N x d^4 (order second)
  std::vector<char> ok;  // 1 inside the domain

  void resize(Index n, Index d, Order order) {
    g.resize(n, d * d);
    gamma.resize(order >= Order::christoffel ? n : 0, d * d * d);
    dgamma.resize(order >= Order::second ? n : 0, d * d * d * d);
    ok.assign(static_cast<std::size_t>(n), 1);
  }
  // Zeros for a point outside the domain (callers test ok first; zeros keep the arithmetic finite).
  void clear(Index row) {
    ok[static_cast<std::size_t>(row)] = 0;
    g.row(row).setZero();
    if (gamma.rows() > row) gamma.row(row).setZero();
    if (dgamma.rows() > row) dgamma.row(row).setZero();
  }
};

namespace detail {

using MapMatrix = Eigen::Map<Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
using ConstMapMatrix = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

// G^{-1} of a symmetric positive definite G; false when G is not finite or not positive definite
// (the threshold of every kernel: a Cholesky pivot at or below kSingularPivot counts as singular).
template <class G>
bool invert_spd(const G& g, Eigen::MatrixXd& ginv) {
  if (!g.allFinite()) return false;
  Eigen::LLT<Eigen::MatrixXd> llt(g);
  if (!cholesky_regular(llt)) return false;
  ginv = llt.solve(Eigen::MatrixXd::Identity(g.rows(), g.cols()));
  return ginv.allFinite();
}

// T (d x d^2), T(l, i d + j) = d_i G_lj + d_j G_li - d_l G_ij: Gamma = 1/2 G^{-1} T.
inline Eigen::MatrixXd lowered_christoffel(const double* dg, Index d) {
  Eigen::MatrixXd t(d, d * d);
  for (Index l = 0; l < d; ++l)
    for (Index i = 0; i < d; ++i)
      for (Index j = 0; j < d; ++j)
        t(l, i * d + j) = dg[(l * d + j) * d + i] + dg[(l * d + i) * d + j] - dg[(i * d + j) * d + l];
  return t;
}

// Gamma^k_ij = 1/2 G^{kl} (d_i G_lj + d_j G_li - d_l G_ij) at one point.
inline void christoffel_from(const Eigen::MatrixXd& ginv, const double* dg, Index d, double* gamma) {
  MapMatrix(gamma, d, d * d) = 0.5 * ginv * lowered_christoffel(dg, d);
}

// d_m Gamma^k_ij = 1/2 (d_m G^{-1} T + G^{-1} d_m T)(k, ij) with d_m G^{-1} = -G^{-1} d_m G G^{-1}.
inline void christoffel_derivative_from(const Eigen::MatrixXd& ginv, const double* dg, const double* d2g, Index d,
                                        double* dgamma) {
  const Eigen::MatrixXd t = lowered_christoffel(dg, d);
  Eigen::MatrixXd dgm(d, d), dt(d, d * d), out(d, d * d);
  auto d2 = [&](Index a, Index b, Index c, Index e) { return d2g[((a * d + b) * d + c) * d + e]; };
  for (Index m = 0; m < d; ++m) {
    for (Index a = 0; a < d; ++a)
      for (Index b = 0; b < d; ++b) dgm(a, b) = dg[(a * d + b) * d + m];
    for (Index l = 0; l < d; ++l)
      for (Index i = 0; i < d; ++i)
        for (Index j = 0; j < d; ++j) dt(l, i * d + j) = d2(l, j, i, m) + d2(l, i, j, m) - d2(i, j, l, m);
    out.noalias() = -0.5 * (ginv * dgm * ginv) * t;
    out.noalias() += 0.5 * ginv * dt;
    for (Index k = 0; k < d; ++k)
      for (Index ij = 0; ij < d * d; ++ij) dgamma[(k * d * d + ij) * d + m] = out(k, ij);
  }
}

// Ricci tensor R_sn = R^r_srn of R^r_smn = d_m Gamma^r_ns - d_n Gamma^r_ms + Gamma^r_ml Gamma^l_ns
// - Gamma^r_nl Gamma^l_ms (symmetrised against rounding); returns the scalar curvature G^{sn} R_sn.
inline double ricci_from(const Eigen::MatrixXd& ginv, const double* gamma, const double* dgamma, Index d,
                         double* ricci) {
  auto gam = [&](Index k, Index i, Index j) { return gamma[(k * d + i) * d + j]; };
  auto dgam = [&](Index k, Index i, Index j, Index m) { return dgamma[((k * d + i) * d + j) * d + m]; };
  Eigen::VectorXd trace(d);  // Gamma^r_rl
  for (Index l = 0; l < d; ++l) {
    trace(l) = 0.0;
    for (Index r = 0; r < d; ++r) trace(l) += gam(r, r, l);
  }
  Eigen::MatrixXd ric(d, d);
  for (Index s = 0; s < d; ++s)
    for (Index n = 0; n < d; ++n) {
      double v = 0.0;
      for (Index r = 0; r < d; ++r) {
        v += dgam(r, n, s, r) - dgam(r, r, s, n);
        for (Index l = 0; l < d; ++l) v -= gam(r, n, l) * gam(l, r, s);
      }
      for (Index l = 0; l < d; ++l) v += trace(l) * gam(l, n, s);
      ric(s, n) = v;
    }
  ric = (0.5 * (ric + ric.transpose())).eval();
  MapMatrix(ricci, d, d) = ric;
  return (ginv.array() * ric.array()).sum();
}

// G from rows (N x d^2); points whose G is not finite and SPD are cleared.
inline void metric_from_rows(const RowMatrix& g, Index d, LocalGeometry& out) {
  Eigen::MatrixXd ginv;
  for (Index r = 0; r < g.rows(); ++r) {
    out.g.row(r) = g.row(r);
    if (!out.ok[static_cast<std::size_t>(r)] || !invert_spd(ConstMapMatrix(g.row(r).data(), d, d), ginv)) out.clear(r);
  }
}

// Gamma and G from G and dG rows (N x d^2, N x d^3); points whose G is not SPD are cleared.
inline void christoffel_from_rows(const RowMatrix& g, const RowMatrix& dg, Index d, LocalGeometry& out) {
  const Index n = g.rows();
  Eigen::MatrixXd ginv;
  for (Index r = 0; r < n; ++r) {
    out.g.row(r) = g.row(r);
    if (!out.ok[static_cast<std::size_t>(r)] || !invert_spd(ConstMapMatrix(g.row(r).data(), d, d), ginv) ||
        !dg.row(r).allFinite()) {
      out.clear(r);
      continue;
    }
    christoffel_from(ginv, dg.row(r).data(), d, out.gamma.row(r).data());
  }
}

// G, Gamma and dGamma from G, dG and d2G rows (N x d^2, d^3, d^4); points whose G is not SPD are cleared.
inline void second_order_from_rows(const RowMatrix& g, const RowMatrix& dg, const RowMatrix& d2g, Index d,
                                   LocalGeometry& out) {
  Eigen::MatrixXd ginv;
  for (Index r = 0; r < g.rows(); ++r) {
    out.g.row(r) = g.row(r);
    if (!out.ok[static_cast<std::size_t>(r)] || !invert_spd(ConstMapMatrix(g.row(r).data(), d, d), ginv) ||
        !dg.row(r).allFinite() || !d2g.row(r).allFinite()) {
      out.clear(r);
      continue;
    }
    christoffel_from(ginv, dg.row(r).data(), d, out.gamma.row(r).data());
    christoffel_derivative_from(ginv, dg.row(r).data(), d2g.row(r).data(), d, out.dgamma.row(r).data());
  }
}

}  // namespace detail

// Second order by fourth-order central differences of the Christoffel symbols of `first_order`,
// a callable (points, LocalGeometry&) evaluating at order christoffel (see the header comment).
template <class FirstOrder>
void christoffel_derivative_fd(FirstOrder&& first_order, const ConstRowMatrixRef& z, double fd_step,
                               LocalGeometry& out) {
  const Index n = z.rows(), d = z.cols(), d3 = d * d * d;
  static constexpr double kOffsets[4] = {-2.0, -1.0, 1.0, 2.0};
  static constexpr double kWeights[4] = {1.0, -8.0, 8.0, -1.0};
  RowMatrix shifted(4 * d * n, d);
  for (Index m = 0; m < d; ++m)
    for (int s = 0; s < 4; ++s)
      for (Index r = 0; r < n; ++r) {
        auto row = shifted.row((m * 4 + s) * n + r);
        row = z.row(r);
        row(m) += kOffsets[s] * fd_step * std::max(1.0, std::abs(z(r, m)));
      }
  LocalGeometry around;
  around.resize(shifted.rows(), d, Order::christoffel);
  first_order(shifted, around);
  out.dgamma.setZero(n, d3 * d);
  for (Index r = 0; r < n; ++r) {
    if (!out.ok[static_cast<std::size_t>(r)]) continue;
    for (Index m = 0; m < d; ++m) {
      const double h = fd_step * std::max(1.0, std::abs(z(r, m)));
      for (int s = 0; s < 4; ++s) {
        const Index row = (m * 4 + s) * n + r;
        if (!around.ok[static_cast<std::size_t>(row)]) {
          out.clear(r);
          break;
        }
        for (Index e = 0; e < d3; ++e) out.dgamma(r, e * d + m) += kWeights[s] / (12.0 * h) * around.gamma(row, e);
      }
      if (!out.ok[static_cast<std::size_t>(r)]) break;
    }
  }
}

// A model built on a source of G and dG at batches of points,
//   Index dim() const;
//   void operator()(const ConstRowMatrixRef& z, bool want_derivative, RowMatrix& g, RowMatrix& dg,
//                   std::vector<char>& ok) const;   // G (N x d^2), dG (N x d^3) when asked, ok
// (the pullback kernel, Python metrics): Gamma from G and dG, second order by central differences
// of Gamma.
template <class Source>
class MetricSourceModel {
 public:
  MetricSourceModel(Source source, double fd_step) : source_(std::move(source)), fd_step_(fd_step) {}
  Index dim() const { return source_.dim(); }
  void evaluate(const ConstRowMatrixRef& z, Order order, LocalGeometry& out) const {
    const Index n = z.rows(), d = dim();
    out.resize(n, d, order);
    RowMatrix g, dg;
    source_(z, order >= Order::christoffel, g, dg, out.ok);
    if (order == Order::metric) {
      detail::metric_from_rows(g, d, out);
      return;
    }
    detail::christoffel_from_rows(g, dg, d, out);
    if (order == Order::second)
      christoffel_derivative_fd(
          [&](const RowMatrix& pts, LocalGeometry& geo) { evaluate(pts, Order::christoffel, geo); }, z, fd_step_, out);
  }

 private:
  Source source_;
  double fd_step_;
};

// The connection model of a native metric kernel (RHVAEKernel, ConstantKernel, PullbackKernel, or
// a ScaledKernel of one): G, Gamma and dGamma from the kernel's jet (kernels.hpp), analytic up to
// the kernel's kJetOrder and beyond it by central differences of Gamma; the kernel's Hamiltonian
// flow (and its Jacobian) when it has one. Holds a reference: the kernel must outlive it.
template <class Kernel>
class KernelModel {
  static_assert(detail::has_jet<Kernel>::value, "KernelModel: the kernel needs jet()");

 public:
  KernelModel(const Kernel& kernel, double fd_step) : k_(kernel), fd_step_(fd_step) {}
  Index dim() const { return k_.dim(); }

  void evaluate(const ConstRowMatrixRef& z, Order order, LocalGeometry& out) const {
    const Index n = z.rows(), d = dim();
    const int analytic = std::min(static_cast<int>(order), detail::jet_order<Kernel>::value);
    out.resize(n, d, order);
    thread_local RowMatrix g, dg, d2g;  // kept between the many small calls of an integrator
    g.resize(n, d * d);
    dg.resize(analytic >= 1 ? n : 0, d * d * d);
    d2g.resize(analytic >= 2 ? n : 0, d * d * d * d);
    std::vector<char> ok;
    k_.jet(z, analytic, g, dg, d2g, ok, 1);
    out.ok = ok;
    if (order == Order::metric) {
      detail::metric_from_rows(g, d, out);
      return;
    }
    if (analytic >= 2) {
      detail::second_order_from_rows(g, dg, d2g, d, out);
      return;
    }
    detail::christoffel_from_rows(g, dg, d, out);
    if (order == Order::second)
      christoffel_derivative_fd(
          [&](const RowMatrix& pts, LocalGeometry& geo) { evaluate(pts, Order::christoffel, geo); }, z, fd_step_, out);
  }

  // The geodesic flow in Hamiltonian form (see RHVAEKernel::hamiltonian), for kernels with one.
  template <class K = Kernel, std::enable_if_t<detail::kernel_has_hamiltonian<K>::value, int> = 0>
  void hamiltonian(const ConstRowMatrixRef& z, const ConstRowMatrixRef& p, RowMatrixRef zdot, RowMatrixRef pdot,
                   std::vector<char>& ok) const {
    k_.hamiltonian(z, p, zdot, pdot, ok, 1);
  }

  // ... with its Jacobian (jac resized to N x 4 d^2).
  template <class K = Kernel, std::enable_if_t<detail::kernel_has_hamiltonian_jacobian<K>::value, int> = 0>
  void hamiltonian_jacobian(const ConstRowMatrixRef& z, const RowMatrix& p, RowMatrix& zdot, RowMatrix& pdot,
                            RowMatrix& jac, std::vector<char>& ok) const {
    const Index d = dim();
    jac.resize(z.rows(), 4 * d * d);
    k_.hamiltonian_jacobian(z, p, zdot, pdot, jac, ok, 1);
  }

 private:
  const Kernel& k_;
  double fd_step_;
};

}  // namespace latentgeo
