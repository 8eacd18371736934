// The RHVAE metric of Chadebec et al.:
//   G^{-1}(z) = s * sum_k M_k exp(-|z - c_k|^2 / T^2) + lambda I,   G = (G^{-1})^{-1}.
//
// Points are processed in blocks. For one block of B points the kernel computes the
// B x K weights once (never an N x K array), accumulates the packed symmetric
// matrices with one GEMM and factorises G^{-1} per point with a Cholesky (LLT).
#pragma once

#include "latentgeo/common.hpp"
#include "latentgeo/fastexp.hpp"

#include <cmath>
#include <limits>
#include <vector>

namespace latentgeo {

class RHVAEKernel {
  static constexpr Index kChunk = 256;  // centroids per chunk of weights

 public:
  // centroids: K x d. m_packed: K x d(d+1)/2, the packed M_k = L_k L_k^T.
  // scale is s (1 for pythae's sum, 1/K for AutoEncoderToolkit's mean).
  RHVAEKernel(const RowMatrix& centroids, const RowMatrix& m_packed, double temperature,
              double regularization, double scale)
      : centroids_t_(centroids.transpose()),
        m_packed_(m_packed),
        inv_t2_(1.0 / (temperature * temperature)),
        lambda_(regularization),
        scale_(scale),
        d_(centroids.cols()),
        k_(centroids.rows()),
        p_(packed_size(centroids.cols())) {
    if (m_packed.rows() != k_ || m_packed.cols() != p_)
      throw std::invalid_argument("M: expected packed shape (K, d(d+1)/2)");
    if (!(temperature > 0.0)) throw std::invalid_argument("temperature: must be > 0");
    // Below ~1.5e-154, 1/T^2 overflows: every weight, even a centroid's own, would be lost.
    if (!std::isfinite(inv_t2_)) throw std::invalid_argument("temperature: 1/T^2 overflows (T too small)");
    if (!(regularization >= 0.0)) throw std::invalid_argument("regularization: must be >= 0");
    // c_kj * M_k for the derivative accumulation, laid out [k, j * p + e].
    cm_.resize(k_, d_ * p_);
    for (Index k = 0; k < k_; ++k)
      for (Index j = 0; j < d_; ++j) cm_.block(k, j * p_, 1, p_) = centroids(k, j) * m_packed.row(k);
    centroids_ = centroids;
    // Up to 64 points a block (GEMM efficiency), weights of at most 2^17 doubles (1 MB).
    block_ = std::max<Index>(1, std::min<Index>(64, (Index(1) << 17) / std::max<Index>(k_, 1)));
  }

  Index dim() const { return d_; }
  Index n_centroids() const { return k_; }

  // out: N x d*d, G^{-1} row-major per point.
  void inverse(const ConstRowMatrixRef& z, RowMatrixRef out, int n_threads) const {
    for_blocks(z.rows(), n_threads, [&](Workspace& ws, Index n0, Index nb) {
      accumulate(z, n0, nb, ws, false);
      for (Index b = 0; b < nb; ++b) {
        unpack_inverse(ws, b);
        write_square(ws.ginv, out, n0 + b);
      }
    });
  }

  // G (N x d*d, may be empty) and log det G (N, may be empty).
  void metric(const ConstRowMatrixRef& z, RowMatrixRef g_out, VectorRef logdet_out, int n_threads) const {
    const bool want_g = g_out.rows() > 0, want_logdet = logdet_out.size() > 0;
    for_blocks(z.rows(), n_threads, [&](Workspace& ws, Index n0, Index nb) {
      accumulate(z, n0, nb, ws, false);
      for (Index b = 0; b < nb; ++b) {
        factorise(ws, b, z, n0 + b);
        if (want_logdet) logdet_out(n0 + b) = -2.0 * ws.llt.matrixLLT().diagonal().array().log().sum();
        if (want_g) {
          invert(ws);
          write_square(ws.g, g_out, n0 + b);
        }
      }
    });
  }

  // out: N x d^3 with layout [a, b, k] = d(G or G^{-1})_ab / dz_k.
  void derivative(const ConstRowMatrixRef& z, RowMatrixRef out, bool of_inverse, int n_threads) const {
    for_blocks(z.rows(), n_threads, [&](Workspace& ws, Index n0, Index nb) {
      accumulate(z, n0, nb, ws, true);
      for (Index b = 0; b < nb; ++b) {
        if (!of_inverse) {
          factorise(ws, b, z, n0 + b);
          invert(ws);
        }
        for (Index k = 0; k < d_; ++k) {
          inverse_partial(z, ws, b, n0 + b, k);
          if (!of_inverse) ws.dm = -(ws.g * ws.dm * ws.g).eval();
          for (Index a = 0; a < d_; ++a)
            for (Index c = 0; c < d_; ++c) out(n0 + b, (a * d_ + c) * d_ + k) = ws.dm(a, c);
        }
      }
    });
  }

  // The volume jet of the samplers, in one pass over the centroids: log det G (N) and its gradient
  // (N x d), d_k log det G = -tr(G dG^{-1}/dz_k), and when ginv/dginv are non-empty G^{-1}
  // (N x d^2) and dG^{-1}/dz (N x d^3, layout [a, b, k]). A point where G^{-1} is singular gets
  // NaN everywhere instead of an exception: for a sampler it is simply outside the domain.
  void volume_jet(const ConstRowMatrixRef& z, VectorRef logdet, RowMatrixRef dlogdet, RowMatrixRef ginv,
                  RowMatrixRef dginv, int n_threads) const {
    const bool want_inverse = ginv.rows() > 0;
    for_blocks(z.rows(), n_threads, [&](Workspace& ws, Index n0, Index nb) {
      accumulate(z, n0, nb, ws, true);
      for (Index b = 0; b < nb; ++b) {
        const Index n = n0 + b;
        unpack_inverse(ws, b);
        ws.llt.compute(ws.ginv);
        if (ws.llt.info() != Eigen::Success || !(ws.llt.matrixLLT().diagonal().minCoeff() > 1e-150)) {
          mark_undefined(n, logdet, dlogdet, ginv, dginv);
          continue;
        }
        logdet(n) = -2.0 * ws.llt.matrixLLT().diagonal().array().log().sum();
        if (want_inverse) write_square(ws.ginv, ginv, n);
        invert(ws);
        for (Index k = 0; k < d_; ++k) {
          inverse_partial(z, ws, b, n, k);
          dlogdet(n, k) = -(ws.g.array() * ws.dm.array()).sum();  // G and dm symmetric
          if (want_inverse)
            for (Index a = 0; a < d_; ++a)
              for (Index c = 0; c < d_; ++c) dginv(n, (a * d_ + c) * d_ + k) = ws.dm(a, c);
        }
      }
    });
  }

  // q_n = v_n^T G(z_n) v_n and, when dqdz/dqdv are non-empty, the gradients
  //   dq/dv = 2 G v,   dq/dz_j = -u^T (dG^{-1}/dz_j) u with u = G v,
  // computed with a second pass over the block's weights, never forming dG.
  void quadratic_form(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, VectorRef q, RowMatrixRef dqdz,
                      RowMatrixRef dqdv, int n_threads) const {
    const bool want_grad = dqdz.rows() > 0;
    for_blocks(z.rows(), n_threads, [&](Workspace& ws, Index n0, Index nb) {
      accumulate(z, n0, nb, ws, false);
      for (Index b = 0; b < nb; ++b) {
        factorise(ws, b, z, n0 + b);
        ws.u = ws.llt.matrixL().solve(v.row(n0 + b).transpose());
        q(n0 + b) = ws.u.squaredNorm();
        if (!want_grad) continue;
        ws.llt.matrixU().solveInPlace(ws.u);  // u = G v
        dqdv.row(n0 + b) = 2.0 * ws.u.transpose();
        packed_outer(ws.u, ws.uu.row(b));
      }
      if (!want_grad) return;
      // r_bk = w_bk * u_b^T M_k u_b, then dq/dz_j = (2 s / T^2) (z_j sum_k r_bk - sum_k r_bk c_kj).
      ws.rc.setZero(nb, d_);
      ws.rsum.setZero(nb);
      for (Index k0 = 0; k0 < k_; k0 += kChunk) {
        const Index kc = std::min(kChunk, k_ - k0);
        auto r = ws.scratch.topLeftCorner(nb, kc);
        r.noalias() = ws.uu.topRows(nb) * m_packed_.middleRows(k0, kc).transpose();
        r.array() *= ws.weights.block(0, k0, nb, kc).array();
        ws.rc.noalias() += r * centroids_.middleRows(k0, kc);
        ws.rsum += r.rowwise().sum();
      }
      const double factor = 2.0 * scale_ * inv_t2_;
      for (Index b = 0; b < nb; ++b) dqdz.row(n0 + b) = factor * (ws.rsum(b) * z.row(n0 + b) - ws.rc.row(b));
    });
  }

 private:
  struct Workspace {
    RowMatrix weights, scratch, acc, acc_deriv, uu, rc;
    Eigen::MatrixXd ginv, g, dm, identity;
    Vector u, packed, rsum;
    Eigen::LLT<Eigen::MatrixXd> llt;
  };

  // Sizes the workspace for this kernel; a no-op when it already fits.
  void prepare(Workspace& ws) const {
    ws.weights.resize(block_, k_);
    ws.scratch.resize(block_, kChunk);
    ws.uu.resize(block_, p_);
    ws.rc.resize(block_, d_);
    ws.ginv.resize(d_, d_);
    ws.g.resize(d_, d_);
    ws.dm.resize(d_, d_);
    if (ws.identity.rows() != d_) ws.identity = Eigen::MatrixXd::Identity(d_, d_);
    ws.u.resize(d_);
    ws.packed.resize(p_);
  }

  // Runs body(workspace, first point, number of points) over blocks of points. Each
  // thread keeps its workspace between calls (thread_local), so the many small calls of
  // a geodesic solver do not allocate block x K weights every time.
  template <class Body>
  void for_blocks(Index n, int n_threads, Body&& body) const {
    const Index blocks = block_count(n, block_);
    // ~1e5 weights per thread before a parallel region pays off.
    const Index grain = std::max<Index>(1, 100000 / (block_ * std::max<Index>(k_, 1)));
    parallel_for(blocks, n_threads, [&](Index blk) {
      thread_local Workspace ws;
      prepare(ws);
      const Index n0 = blk * block_;
      body(ws, n0, std::min(block_, n - n0));
    }, grain);
  }

  // Weights of the block's points and the packed sums s * sum_k w_bk M_k (lambda I is added later),
  // and with `deriv` also s * sum_k w_bk c_kj M_k. Centroids are taken in chunks so that the
  // GEMM reads each chunk of weights from cache right after the exp wrote it.
  void accumulate(const ConstRowMatrixRef& z, Index n0, Index nb, Workspace& ws, bool deriv) const {
    ws.acc.setZero(nb, p_);
    if (deriv) ws.acc_deriv.setZero(nb, d_ * p_);
    for (Index k0 = 0; k0 < k_; k0 += kChunk) {
      const Index kc = std::min(kChunk, k_ - k0);
      auto w = ws.weights.block(0, k0, nb, kc);
      for (Index b = 0; b < nb; ++b) {
        auto row = w.row(b).array();
        row.setZero();
        for (Index j = 0; j < d_; ++j) row += (centroids_t_.row(j).segment(k0, kc).array() - z(n0 + b, j)).square();
        // Far from every centroid the weights must be exactly 0 (not a clamped 1e-308),
        // or G^{-1} = lambda I = 0 would pass for positive definite: scaled_exp_inplace does so.
        scaled_exp_inplace(&w(b, 0), kc, -inv_t2_);
      }
      ws.acc.noalias() += w * m_packed_.middleRows(k0, kc);
      if (deriv) ws.acc_deriv.noalias() += w * cm_.middleRows(k0, kc);
    }
    ws.acc *= scale_;
    if (deriv) ws.acc_deriv *= scale_;
  }

  // G^{-1} of the block's point b: the weighted sum plus lambda I.
  void unpack_inverse(Workspace& ws, Index b) const {
    unpack_symmetric(ws.acc.row(b), ws.ginv);
    ws.ginv.diagonal().array() += lambda_;
  }

  void factorise(Workspace& ws, Index b, const ConstRowMatrixRef& z, Index point) const {
    unpack_inverse(ws, b);
    ws.llt.compute(ws.ginv);
    // G = (L L^T)^{-1} overflows once a diagonal entry of L falls below ~1e-154.
    if (ws.llt.info() != Eigen::Success || !(ws.llt.matrixLLT().diagonal().minCoeff() > 1e-150))
      throw MetricDomainError("metric: G^{-1} is singular or not positive definite at point " + std::to_string(point) +
                              ", z = " + format_point(z.row(point)) + " (set regularization > 0)");
  }

  void invert(Workspace& ws) const { ws.g = ws.llt.solve(ws.identity); }

  // ws.dm = dG^{-1}/dz_k at the block's point b.
  void inverse_partial(const ConstRowMatrixRef& z, Workspace& ws, Index b, Index point, Index k) const {
    ws.packed = -2.0 * inv_t2_ *
                (z(point, k) * ws.acc.row(b).transpose() - ws.acc_deriv.block(b, k * p_, 1, p_).transpose());
    unpack_symmetric(ws.packed, ws.dm);
  }

  static void mark_undefined(Index n, VectorRef& logdet, RowMatrixRef& dlogdet, RowMatrixRef& ginv,
                             RowMatrixRef& dginv) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    logdet(n) = nan;
    dlogdet.row(n).setConstant(nan);
    if (ginv.rows() > 0) ginv.row(n).setConstant(nan);
    if (dginv.rows() > 0) dginv.row(n).setConstant(nan);
  }

  static void write_square(const Eigen::MatrixXd& m, RowMatrixRef& out, Index row) {
    const Index d = m.rows();
    for (Index a = 0; a < d; ++a)
      for (Index c = 0; c < d; ++c) out(row, a * d + c) = m(a, c);
  }

  RowMatrix centroids_t_;  // d x K, rows contiguous for the vectorised distances
  RowMatrix centroids_;    // K x d
  RowMatrix m_packed_;     // K x p
  RowMatrix cm_;           // K x (d p)
  double inv_t2_, lambda_, scale_;
  Index d_, k_, p_, block_;
};

}  // namespace latentgeo
