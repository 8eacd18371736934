// The Levi-Civita connection of a metric at batches of points: G, the Christoffel symbols and their
// derivatives, from the metric kernels.
//
// A connection model has
//   Index dim() const;
//   void evaluate(const ConstRowMatrixRef& z, Order order, LocalGeometry& out) const;
// which fills, for the N rows of z, G (order >= metric), Gamma (order >= christoffel) and dGamma
// (order second), with ok = 0 at points where G is not finite or not positive definite (outside the
// metric's domain); evaluate never throws for such points. A model may also offer the geodesic flow
// in Hamiltonian form (see RHVAEModel::hamiltonian).
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

#include "latentgeo/common.hpp"
#include "latentgeo/fastexp.hpp"
#include "latentgeo/kernels.hpp"

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
// (the same threshold as the RHVAE kernel: a Cholesky diagonal below 1e-150 counts as singular).
template <class G>
bool invert_spd(const G& g, Eigen::MatrixXd& ginv) {
  if (!g.allFinite()) return false;
  Eigen::LLT<Eigen::MatrixXd> llt(g);
  if (llt.info() != Eigen::Success || !(llt.matrixLLT().diagonal().minCoeff() > 1e-150)) return false;
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

// G(z) = A: no Christoffel symbols, no curvature.
class ConstantModel {
 public:
  explicit ConstantModel(const RowMatrix& a) : a_(a) {}
  Index dim() const { return a_.rows(); }
  void evaluate(const ConstRowMatrixRef& z, Order order, LocalGeometry& out) const {
    const Index n = z.rows(), d = dim();
    out.resize(n, d, order);
    for (Index r = 0; r < n; ++r) out.g.row(r) = Eigen::Map<const RowVector>(a_.data(), d * d);
    out.gamma.setZero();
    out.dgamma.setZero();
  }

 private:
  RowMatrix a_;
};

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

// Kernels with metric(z, G, n_threads) and derivative(z, dG, n_threads), e.g. the pullback kernel.
template <class Kernel>
class KernelSource {
 public:
  explicit KernelSource(const Kernel& kernel) : k_(kernel) {}
  Index dim() const { return k_.dim(); }
  void operator()(const ConstRowMatrixRef& z, bool want_derivative, RowMatrix& g, RowMatrix& dg,
                  std::vector<char>&) const {
    const Index n = z.rows(), d = dim();
    g.resize(n, d * d);
    k_.metric(z, g, 1);
    if (!want_derivative) return;
    dg.resize(n, d * d * d);
    k_.derivative(z, dg, 1);
  }

 private:
  const Kernel& k_;
};

// The RHVAE metric with analytic first and second derivatives, evaluated in one pass over the
// centroids per block of points:
//   G^{-1}(z)      = s sum_c w_c M_c + lambda I,    w_c = exp(-|z - c|^2 / T^2),  e_c = z - c,
//   d_k G^{-1}     = -(2 s / T^2) sum_c w_c e_ck M_c,
//   d_k d_m G^{-1} = s sum_c w_c (4 e_ck e_cm / T^4 - 2 delta_km / T^2) M_c,
// then dG = -G dG^{-1} G and d_m d_k G = -d_m G d_k G^{-1} G - G d_k d_m G^{-1} G - G d_k G^{-1} d_m G.
// The sums are weighted by e_c = z - c directly (not z sum w M - sum w c M), free of cancellation far
// from the origin. The parameters are those of RHVAEKernel (centroids K x d, packed M_k K x d(d+1)/2).
class RHVAEModel {
  static constexpr Index kChunk = 256;  // centroids per chunk
  static constexpr Index kBlock = 16;   // points per block

 public:
  RHVAEModel(const RowMatrix& centroids, const RowMatrix& m_packed, double temperature, double regularization,
             double scale)
      : c_(centroids),
        ct_(centroids.transpose()),
        m_(m_packed),
        mt_(m_packed.transpose()),
        inv_t2_(1.0 / (temperature * temperature)),
        lambda_(regularization),
        s_(scale),
        d_(centroids.cols()),
        p_(packed_size(centroids.cols())) {
    if (m_packed.rows() != centroids.rows() || m_packed.cols() != p_)
      throw std::invalid_argument("m_packed: expected packed shape (K, d(d+1)/2)");
    if (!(temperature > 0.0)) throw std::invalid_argument("temperature: must be > 0");
    if (!(regularization >= 0.0)) throw std::invalid_argument("regularization: must be >= 0");
    if (!(scale > 0.0)) throw std::invalid_argument("scale: must be > 0");
  }

  Index dim() const { return d_; }
  Index n_centroids() const { return c_.rows(); }

  void evaluate(const ConstRowMatrixRef& z, Order order, LocalGeometry& out) const {
    const Index n = z.rows();
    out.resize(n, d_, order);
    thread_local Sums sums;  // kept between the many small calls of an integrator (no allocations)
    sums.prepare(d_);
    for (Index n0 = 0; n0 < n; n0 += kBlock) {
      const Index nb = std::min(kBlock, n - n0);
      accumulate(z, n0, nb, order, sums);
      for (Index b = 0; b < nb; ++b) finish_point(sums, b, n0 + b, order, out);
    }
  }

  // The geodesic flow in Hamiltonian form at (z, p): zdot = G^{-1} p and
  // pdot = -1/2 p^T dG^{-1} p = (s / T^2) sum_c w_c (p^T M_c p) e_c, with ok = 0 where G^{-1} is not
  // positive definite. One fused pass over the centroids per point (the hot loop of exp_map: a few
  // vectorised sweeps over the transposed centroids and M_c), no factorisation of G.
  template <class P, class Zdot, class Pdot>
  void hamiltonian(const ConstRowMatrixRef& z, const P& p, Zdot&& zdot, Pdot&& pdot, std::vector<char>& ok) const {
    const Index kk = c_.rows();
    Eigen::Array<double, 1, Eigen::Dynamic> w(kChunk), r(kChunk);  // rows, like the centroid rows they combine with
    Eigen::ArrayXd pp(p_), acc(p_), force(d_);
    Eigen::MatrixXd ginv(d_, d_);
    for (Index n = 0; n < z.rows(); ++n) {
      packed_outer(p.row(n), pp);
      acc.setZero();
      force.setZero();
      for (Index k0 = 0; k0 < kk; k0 += kChunk) {
        const Index kc = std::min(kChunk, kk - k0);
        auto wc = w.head(kc);
        auto rc = r.head(kc);
        weights(z.row(n), k0, kc, wc);
        rc.setZero();
        for (Index e = 0; e < p_; ++e) {
          const auto me = mt_.row(e).segment(k0, kc).array();
          acc(e) += (wc * me).sum();
          rc += pp(e) * me;  // p^T M_c p
        }
        rc *= wc;
        for (Index j = 0; j < d_; ++j) force(j) += (rc * (z(n, j) - ct_.row(j).segment(k0, kc).array())).sum();
      }
      inverse_from(acc, ginv);
      Eigen::LLT<Eigen::MatrixXd> llt(ginv);
      ok[static_cast<std::size_t>(n)] = llt.info() == Eigen::Success && llt.matrixLLT().diagonal().minCoeff() > 1e-150;
      zdot.row(n) = (ginv * p.row(n).transpose()).transpose();
      pdot.row(n) = (s_ * inv_t2_) * force.matrix().transpose();
    }
  }

  // The Hamiltonian flow with its Jacobian, for the variational equations of the log map: zdot and
  // pdot as in hamiltonian(), and per point the d x d blocks (row-major, in this order)
  //   d zdot/dz = dG^{-1}/dz p,  d zdot/dp = G^{-1},  d pdot/dz,  d pdot/dp = -(d zdot/dz)^T
  // from the per-centroid scalars w_c, q_c = p^T M_c p and the vectors e_c, M_c p; O(K d^2) per
  // point instead of the O(K d^4) of the full second derivatives.
  void hamiltonian_jacobian(const ConstRowMatrixRef& z, const RowMatrix& p, RowMatrix& zdot, RowMatrix& pdot,
                            RowMatrix& jac, std::vector<char>& ok) const {
    const Index kk = c_.rows(), d = d_, dd = d * d;
    using RowArray = Eigen::Array<double, 1, Eigen::Dynamic>;
    RowArray w(kChunk), q(kChunk), wq(kChunk);
    Eigen::Array<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> e(d, kChunk), mp(d, kChunk);
    Eigen::ArrayXd pp(p_), acc(p_), force(d);
    Eigen::MatrixXd ginv(d, d), moment(d, d), spread(d, d);  // sum w e_m (M p)_a, sum w q e_j e_m
    jac.resize(z.rows(), 4 * dd);
    for (Index n = 0; n < z.rows(); ++n) {
      packed_outer(p.row(n), pp);
      acc.setZero();
      force.setZero();
      moment.setZero();
      spread.setZero();
      double total = 0.0;  // sum w q
      for (Index k0 = 0; k0 < kk; k0 += kChunk) {
        const Index kc = std::min(kChunk, kk - k0);
        auto wc = w.head(kc), qc = q.head(kc), wqc = wq.head(kc);
        weights(z.row(n), k0, kc, wc);
        for (Index j = 0; j < d; ++j) e.row(j).head(kc) = z(n, j) - ct_.row(j).segment(k0, kc).array();
        qc.setZero();
        mp.leftCols(kc).setZero();
        Index entry = 0;
        for (Index a = 0; a < d; ++a)
          for (Index b = a; b < d; ++b, ++entry) {
            const auto me = mt_.row(entry).segment(k0, kc).array();
            acc(entry) += (wc * me).sum();
            qc += pp(entry) * me;
            mp.row(a).head(kc) += p(n, b) * me;
            if (b != a) mp.row(b).head(kc) += p(n, a) * me;
          }
        wqc = wc * qc;
        total += wqc.sum();
        for (Index j = 0; j < d; ++j) {
          force(j) += (wqc * e.row(j).head(kc)).sum();
          for (Index m = 0; m < d; ++m) moment(j, m) += (wc * e.row(m).head(kc) * mp.row(j).head(kc)).sum();
          for (Index m = j; m < d; ++m) spread(j, m) += (wqc * e.row(j).head(kc) * e.row(m).head(kc)).sum();
        }
      }
      spread.triangularView<Eigen::StrictlyLower>() = spread.transpose();
      inverse_from(acc, ginv);
      Eigen::LLT<Eigen::MatrixXd> llt(ginv);
      ok[static_cast<std::size_t>(n)] = llt.info() == Eigen::Success && llt.matrixLLT().diagonal().minCoeff() > 1e-150;
      zdot.row(n) = (ginv * p.row(n).transpose()).transpose();
      pdot.row(n) = (s_ * inv_t2_) * force.matrix().transpose();
      const Eigen::MatrixXd dzdz = -2.0 * s_ * inv_t2_ * moment;
      Eigen::MatrixXd dpdz = -2.0 * s_ * inv_t2_ * inv_t2_ * spread;
      dpdz.diagonal().array() += s_ * inv_t2_ * total;
      detail::MapMatrix(jac.row(n).data(), d, d) = dzdz;
      detail::MapMatrix(jac.row(n).data() + dd, d, d) = ginv;
      detail::MapMatrix(jac.row(n).data() + 2 * dd, d, d) = dpdz;
      detail::MapMatrix(jac.row(n).data() + 3 * dd, d, d) = -dzdz.transpose();
    }
  }

 private:
  struct Sums {
    RowMatrix w, e, scaled, acc0, acc1, acc2;
    // per-point scratch of finish_point
    Eigen::MatrixXd ginv, g, d2ginv, a0, second;
    std::vector<Eigen::MatrixXd> dginv, dgk;
    std::vector<double> dg, d2g;

    void prepare(Index d) {
      if (static_cast<Index>(dginv.size()) == d && ginv.rows() == d) return;
      for (auto* m : {&ginv, &g, &d2ginv, &a0, &second}) m->resize(d, d);
      dginv.assign(static_cast<std::size_t>(d), Eigen::MatrixXd(d, d));
      dgk.assign(static_cast<std::size_t>(d), Eigen::MatrixXd(d, d));
      dg.resize(static_cast<std::size_t>(d * d * d));
      d2g.resize(static_cast<std::size_t>(d * d * d * d));
    }
  };

  // Over chunks of centroids: acc0 = sum w M (nb x p); with order >= christoffel acc1 (nb x d p,
  // block k = sum w e_k M); with order second acc2 (nb x d(d+1)/2 p, pair (k <= m) = sum w e_k e_m M).
  void accumulate(const ConstRowMatrixRef& z, Index n0, Index nb, Order order, Sums& s) const {
    const Index kk = c_.rows(), pairs = packed_size(d_);
    s.acc0.setZero(nb, p_);
    if (order >= Order::christoffel) s.acc1.setZero(nb, d_ * p_);
    if (order >= Order::second) s.acc2.setZero(nb, pairs * p_);
    for (Index k0 = 0; k0 < kk; k0 += kChunk) {
      const Index kc = std::min(kChunk, kk - k0);
      const auto mchunk = m_.middleRows(k0, kc);
      s.w.resize(nb, kc);
      s.e.resize(nb * d_, kc);  // row b * d + j: e_cj of point b
      for (Index b = 0; b < nb; ++b) {
        weights(z.row(n0 + b), k0, kc, s.w.row(b).array());
        for (Index j = 0; j < d_; ++j) s.e.row(b * d_ + j).array() = z(n0 + b, j) - ct_.row(j).segment(k0, kc).array();
      }
      s.acc0.noalias() += s.w * mchunk;
      if (order < Order::christoffel) continue;
      s.scaled.resize(nb, kc);
      for (Index k = 0; k < d_; ++k) {
        for (Index b = 0; b < nb; ++b) s.scaled.row(b) = s.w.row(b).cwiseProduct(s.e.row(b * d_ + k));
        s.acc1.middleCols(k * p_, p_).noalias() += s.scaled * mchunk;
      }
      if (order < Order::second) continue;
      Index pair = 0;
      for (Index k = 0; k < d_; ++k)
        for (Index m = k; m < d_; ++m, ++pair) {
          for (Index b = 0; b < nb; ++b)
            s.scaled.row(b) = s.w.row(b).cwiseProduct(s.e.row(b * d_ + k)).cwiseProduct(s.e.row(b * d_ + m));
          s.acc2.middleCols(pair * p_, p_).noalias() += s.scaled * mchunk;
        }
    }
  }

  // w_c = exp(-|z - c|^2 / T^2) for the centroids k0 .. k0 + kc - 1 (a row of kc weights).
  template <class Z, class W>
  void weights(const Z& z, Index k0, Index kc, W&& w) const {
    w.setZero();
    for (Index j = 0; j < d_; ++j) w += (z(j) - ct_.row(j).segment(k0, kc).array()).square();
    scaled_exp_inplace(w.data(), kc, -inv_t2_);
  }

  // G^{-1} = s unpack(sum w M) + lambda I.
  template <class Packed>
  void inverse_from(const Packed& acc, Eigen::MatrixXd& ginv) const {
    ginv.resize(d_, d_);
    unpack_symmetric(acc, ginv);
    ginv *= s_;
    ginv.diagonal().array() += lambda_;
  }

  void finish_point(Sums& s, Index b, Index row, Order order, LocalGeometry& out) const {
    const Index d = d_;
    auto& ginv = s.ginv;
    auto& g = s.g;
    inverse_from(s.acc0.row(b), ginv);
    if (!detail::invert_spd(ginv, g)) {
      out.clear(row);
      return;
    }
    detail::MapMatrix(out.g.row(row).data(), d, d) = g;
    if (order == Order::metric) return;
    // dG_k = -G dG^{-1}_k G, stored [a, b, k].
    auto& dginv = s.dginv;
    auto& dgk = s.dgk;
    auto& dg = s.dg;
    for (Index k = 0; k < d; ++k) {
      unpack_symmetric(s.acc1.row(b).segment(k * p_, p_), dginv[k]);
      dginv[k] *= -2.0 * s_ * inv_t2_;
      dgk[k] = -g * dginv[k] * g;
      for (Index a = 0; a < d; ++a)
        for (Index c = 0; c < d; ++c) dg[(a * d + c) * d + k] = dgk[k](a, c);
    }
    detail::christoffel_from(ginv, dg.data(), d, out.gamma.row(row).data());
    if (order == Order::christoffel) return;
    auto& d2g = s.d2g;
    auto& d2ginv = s.d2ginv;
    auto& a0 = s.a0;
    auto& second = s.second;
    unpack_symmetric(s.acc0.row(b), a0);
    Index pair = 0;
    for (Index k = 0; k < d; ++k)
      for (Index m = k; m < d; ++m, ++pair) {
        unpack_symmetric(s.acc2.row(b).segment(pair * p_, p_), d2ginv);
        d2ginv *= 4.0 * s_ * inv_t2_ * inv_t2_;
        if (k == m) d2ginv -= 2.0 * s_ * inv_t2_ * a0;
        second = -dgk[m] * dginv[k] * g - g * d2ginv * g - g * dginv[k] * dgk[m];
        for (Index a = 0; a < d; ++a)
          for (Index c = 0; c < d; ++c) {
            // d_k d_m G is symmetric in (a, c) and in (k, m): fill both orders.
            const double v = 0.5 * (second(a, c) + second(c, a));
            d2g[((a * d + c) * d + k) * d + m] = v;
            d2g[((a * d + c) * d + m) * d + k] = v;
          }
      }
    detail::christoffel_derivative_from(ginv, dg.data(), d2g.data(), d, out.dgamma.row(row).data());
  }

  RowMatrix c_, ct_, m_, mt_;  // centroids K x d and d x K, packed M_c K x p and p x K
  double inv_t2_, lambda_, s_;
  Index d_, p_;
};

}  // namespace latentgeo
