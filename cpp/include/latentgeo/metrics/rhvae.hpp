// The RHVAE metric of Chadebec et al.:
//   G^{-1}(z) = s * sum_k M_k exp(-|z - c_k|^2 / T^2) + lambda I,   G = (G^{-1})^{-1}.
//
// Blocking. Points are taken in blocks of 128 and centroids in chunks of 256; for one block the
// kernel walks over the chunks, computes the block x chunk weights (exp) and accumulates the
// packed symmetric matrices with a matrix product against the chunk of packed M_k, which stays
// in cache for all points of the block. Working memory is O(block x chunk) whatever K (never
// N x K), and the block stays large for any K. The products are microgemm.hpp's register tiles,
// which read the M_k in place: the geodesic solver calls the kernel with few points at a time.
//
// Gradients of the quadratic form q = v^T G v never form dG:
//   dq/dv = 2 G v,   dq/dz_j = -u^T (dG^{-1}/dz_j) u  with u = G v,
//   dG^{-1}/dz_j = -(2 s / T^2) sum_k w_k (z_j - c_kj) M_k.
// For d >= 4 a second pass over the chunks contracts u u^T with each M_k (weights recomputed, or
// kept when the block's weights fit in 2 MB); for d <= 3 the first pass also accumulates
// s sum_k w_k (c_kj - cbar_j) M_k, which costs less than a second pass. Coordinates are taken
// relative to the mean of the centroids cbar so that z_j A - B_j does not cancel: this centring is
// the kernel's one cancellation guard, used by every quantity below.
//
// The same sums serve the connection (connection/connection_models.hpp):
//   second derivatives  d_k d_m G^{-1} = (4 / T^4) S_km - (2 / T^2) delta_km A,
//     S_km = s sum_c w_c e_ck e_cm M_c = zt_k zt_m A - zt_k B_m - zt_m B_k + C_km   (e_c = z - c,
//     zt = z - cbar, C_km = s sum_c w_c (c_k - cbar_k)(c_m - cbar_m) M_c), accumulated on request;
//   the geodesic flow in Hamiltonian form, zdot = G^{-1} p and pdot = -1/2 p^T dG^{-1} p, which is
//   half the z-gradient of the quadratic form p^T G^{-1} p: the gradient passes above with u = p;
//   its Jacobian (log map) from the same passes plus the second moments sum_c r_c e_cj e_cm of the
//   second pass's r_c = w_c p^T M_c p (O(K d^2) per point instead of the O(K d^4) of C).
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "latentgeo/core/common.hpp"
#include "latentgeo/simd/fastexp.hpp"
#include "latentgeo/simd/microgemm.hpp"

namespace latentgeo {

class RHVAEKernel {
  static constexpr Index kBlock = 128;                   // points per block
  static constexpr Index kChunk = 256;                   // centroids per chunk (a multiple of the lanes)
  static constexpr Index kFusedMaxDim = 3;               // one-pass gradient up to this d
  static constexpr Index kKeptWeights = Index(1) << 18;  // doubles of weights kept for the second pass

 public:
  // jet() has analytic derivatives of G up to this order.
  static constexpr int kJetOrder = 2;

  // centroids: K x d. m_packed: K x d(d+1)/2, the packed M_k = L_k L_k^T.
  // scale is s (1 for pythae's sum, 1/K for AutoEncoderToolkit's mean).
  RHVAEKernel(const RowMatrix& centroids, const RowMatrix& m_packed, double temperature, double regularization,
              double scale)
      : centroids_t_(by_chunks(centroids.transpose())),
        inv_t2_(1.0 / (temperature * temperature)),
        lambda_(regularization),
        scale_(scale),
        d_(centroids.cols()),
        k_(centroids.rows()),
        p_(packed_size(centroids.cols())) {
    if (d_ < 1) throw std::invalid_argument("centroids: expected at least one column");
    if (m_packed.rows() != k_ || m_packed.cols() != p_)
      throw std::invalid_argument("M: expected packed shape (K, d(d+1)/2)");
    if (!(temperature > 0.0)) throw std::invalid_argument("temperature: must be > 0");
    // Below ~1.5e-154, 1/T^2 overflows: every weight, even a centroid's own, would be lost.
    if (!std::isfinite(inv_t2_)) throw std::invalid_argument("temperature: 1/T^2 overflows (T too small)");
    if (!(regularization >= 0.0)) throw std::invalid_argument("regularization: must be >= 0");
    if (!(scale > 0.0) || !std::isfinite(scale)) throw std::invalid_argument("scale: must be finite and > 0");
    centre_ = k_ > 0 ? RowVector(centroids.colwise().mean()) : RowVector::Zero(d_);
    const RowMatrix centred = centroids.rowwise() - centre_;
    centred_t_ = by_chunks(centred.transpose());
    fused_ = d_ <= kFusedMaxDim;
    if (fused_) {
      // Rows e: M_ke; rows (1 + j) p + e: (c_kj - cbar_j) M_ke, each contiguous over k.
      RowMatrix coef((d_ + 1) * p_, k_);
      coef.topRows(p_) = m_packed.transpose();
      for (Index j = 0; j < d_; ++j)
        coef.middleRows((1 + j) * p_, p_) = m_packed.transpose() * centred.col(j).asDiagonal();
      coef_t_ = by_chunks(coef);
    }
    // Padded with zeros to whole SIMD vectors (rows beyond K, columns beyond p or d + 1): the
    // products of the second pass (any d), of the d >= 4 sums and of the second moments C.
    const Index kp = gemm::round_up(k_, gemm::kLanes);
    pp_ = gemm::round_up(p_, gemm::kLanes);
    jp_ = gemm::round_up(d_ + 1, gemm::kLanes);
    m_padded_ = RowMatrix::Zero(kp, pp_);
    m_padded_.topLeftCorner(k_, p_) = m_packed;
    m_t_ = by_chunks(m_packed.transpose());
    caug_ = RowMatrix::Zero(kp, jp_);  // [c - cbar, 1]: one product gives sum_k r_k (c_k - cbar) and sum_k r_k
    caug_.topLeftCorner(k_, d_) = centred;
    caug_.col(d_).head(k_).setOnes();
    keep_weights_ = !fused_ && kBlock * kp <= kKeptWeights;
  }

  Index dim() const { return d_; }
  Index n_centroids() const { return k_; }

  // out: N x d*d, G^{-1} row-major per point.
  void inverse(const ConstRowMatrixRef& z, RowMatrixRef out, int n_threads) const {
    for_blocks(z.rows(), n_threads, [&](Workspace& ws, Index n0, Index nb) {
      accumulate(z, n0, nb, ws, 0);
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
      accumulate(z, n0, nb, ws, 0);
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
      accumulate(z, n0, nb, ws, 1);
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
      accumulate(z, n0, nb, ws, 1);
      for (Index b = 0; b < nb; ++b) {
        const Index n = n0 + b;
        unpack_inverse(ws, b);
        ws.llt.compute(ws.ginv);
        if (!cholesky_regular(ws.llt)) {
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

  // q_n = v_n^T G(z_n) v_n and, when dqdz/dqdv are non-empty, dq/dz and dq/dv = 2 G v.
  void quadratic_form(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, VectorRef q, RowMatrixRef dqdz,
                      RowMatrixRef dqdv, int n_threads) const {
    Eigen::Map<RowMatrix> q_matrix(q.data(), q.size(), 1);
    quadratic_forms(z, v, q_matrix, dqdz, dqdv, n_threads);
  }

  // m = v.cols() / d vectors per point (v: N x m d): q(n, i) = v_i^T G(z_n) v_i (q: N x m), and
  // when dqdz/dqdv are non-empty dqdz(n) = sum_i dq(n, i)/dz (N x d) and dqdv(n, i) = 2 G v_i
  // (N x m d). G is factorised once per point whatever m.
  void quadratic_forms(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, RowMatrixRef q, RowMatrixRef dqdz,
                       RowMatrixRef dqdv, int n_threads) const {
    const bool want_grad = dqdz.rows() > 0;
    const Index m = v.cols() / std::max<Index>(d_, 1);
    for_blocks(z.rows(), n_threads, [&](Workspace& ws, Index n0, Index nb) {
      accumulate(z, n0, nb, ws, want_grad && fused_ ? 1 : 0);
      if (want_grad) ws.uu.topRows(nb).setZero();
      for (Index b = 0; b < nb; ++b) {
        factorise(ws, b, z, n0 + b);
        for (Index i = 0; i < m; ++i) {
          ws.u = ws.llt.matrixL().solve(v.block(n0 + b, i * d_, 1, d_).transpose());
          q(n0 + b, i) = ws.u.squaredNorm();
          if (!want_grad) continue;
          ws.llt.matrixU().solveInPlace(ws.u);  // u = G v
          dqdv.block(n0 + b, i * d_, 1, d_) = 2.0 * ws.u.transpose();
          packed_outer(ws.u, ws.packed);
          ws.uu.row(b) += ws.packed.transpose();  // the z-gradient is linear in u u^T: sum over i
        }
      }
      if (!want_grad) return;
      if (fused_)
        fused_gradient(z, n0, nb, ws, dqdz);
      else
        second_pass_gradient(z, n0, nb, ws, dqdz);
    });
  }

  // The connection's jet: G (N x d^2), with order >= 1 dG (N x d^3, [a, b, k] = d_k G_ab), with
  // order 2 d2G (N x d^4, [a, b, k, m] = d_k d_m G_ab); outputs beyond `order` may be empty. A point
  // where G^{-1} is singular gets ok = 0 and zero rows instead of an exception.
  void jet(const ConstRowMatrixRef& z, int order, RowMatrixRef g, RowMatrixRef dg, RowMatrixRef d2g,
           std::vector<char>& ok, int n_threads) const {
    ok.assign(static_cast<std::size_t>(z.rows()), 1);
    const Index d = d_;
    for_blocks(z.rows(), n_threads, [&](Workspace& ws, Index n0, Index nb) {
      accumulate(z, n0, nb, ws, order);
      for (Index b = 0; b < nb; ++b) {
        const Index n = n0 + b;
        unpack_inverse(ws, b);
        ws.llt.compute(ws.ginv);
        if (!cholesky_regular(ws.llt)) {
          ok[static_cast<std::size_t>(n)] = 0;
          g.row(n).setZero();
          if (order >= 1) dg.row(n).setZero();
          if (order >= 2) d2g.row(n).setZero();
          continue;
        }
        invert(ws);
        write_square(ws.g, g, n);
        if (order < 1) continue;
        for (Index k = 0; k < d; ++k) {
          inverse_partial(z, ws, b, n, k);
          ws.dginv[static_cast<std::size_t>(k)] = ws.dm;
          ws.dgk[static_cast<std::size_t>(k)] = -ws.g * ws.dm * ws.g;
          for (Index a = 0; a < d; ++a)
            for (Index c = 0; c < d; ++c) dg(n, (a * d + c) * d + k) = ws.dgk[static_cast<std::size_t>(k)](a, c);
        }
        if (order < 2) continue;
        second_derivatives(z, ws, b, n, d2g);
      }
    });
  }

  // The geodesic flow in Hamiltonian form at (z, p): zdot = G^{-1} p and pdot = -1/2 p^T dG^{-1} p,
  // ok = 0 where G^{-1} is not positive definite (no factorisation of G otherwise).
  void hamiltonian(const ConstRowMatrixRef& z, const ConstRowMatrixRef& p, RowMatrixRef zdot, RowMatrixRef pdot,
                   std::vector<char>& ok, int n_threads) const {
    for_blocks(z.rows(), n_threads, [&](Workspace& ws, Index n0, Index nb) {
      if (fused_) {
        accumulate(z, n0, nb, ws, 1);
        flow_velocities(p, n0, nb, ws, zdot, ok);
        fused_gradient(z, n0, nb, ws, pdot);
      } else {
        one_pass_flow(z, p, n0, nb, ws);
        flow_velocities(p, n0, nb, ws, zdot, ok);
        gradient_from_sums(z, n0, nb, ws, pdot);
      }
      pdot.middleRows(n0, nb) *= 0.5;  // pdot = -1/2 p^T dG^{-1} p = 1/2 d(p^T G^{-1} p)/dz
    });
  }

  // The Hamiltonian flow with its Jacobian (the variational equations of the log map): zdot and
  // pdot as in hamiltonian(), and per point (jac: N x 4 d^2) the d x d blocks, row-major, in order
  //   d zdot/dz = dG^{-1}/dz p,  d zdot/dp = G^{-1},  d pdot/dz,  d pdot/dp = -(d zdot/dz)^T,
  //   d pdot_j/dz_m = (1 / T^2) sum_c r_c delta_jm - (2 / T^4) sum_c r_c e_cj e_cm,  r_c = s w_c p^T M_c p.
  void hamiltonian_jacobian(const ConstRowMatrixRef& z, const ConstRowMatrixRef& p, RowMatrixRef zdot,
                            RowMatrixRef pdot, RowMatrixRef jac, std::vector<char>& ok, int n_threads) const {
    const Index d = d_, dd = d * d;
    for_blocks(z.rows(), n_threads, [&](Workspace& ws, Index n0, Index nb) {
      if (fused_) {
        accumulate(z, n0, nb, ws, 1);
        flow_velocities(p, n0, nb, ws, zdot, ok);
        second_pass(z, n0, nb, ws, true);
      } else {
        one_pass_flow(z, p, n0, nb, ws, true);
        flow_velocities(p, n0, nb, ws, zdot, ok);
      }
      for (Index b = 0; b < nb; ++b) {
        const Index n = n0 + b;
        ws.centred = z.row(n) - centre_;
        const double total = scale_ * ws.rc(b, d);  // s sum r
        Index pair = 0;
        Eigen::Map<RowMatrix> dpdz(jac.row(n).data() + 2 * dd, d, d), dzdz(jac.row(n).data(), d, d);
        for (Index j = 0; j < d; ++j) {
          pdot(n, j) = scale_ * inv_t2_ * (ws.centred(j) * ws.rc(b, d) - ws.rc(b, j));
          for (Index m = j; m < d; ++m, ++pair) {
            const double spread = ws.centred(j) * ws.centred(m) * ws.rc(b, d) - ws.centred(j) * ws.rc(b, m) -
                                  ws.centred(m) * ws.rc(b, j) + ws.rcc(b, pair);
            dpdz(j, m) = dpdz(m, j) = -2.0 * scale_ * inv_t2_ * inv_t2_ * spread + (j == m ? inv_t2_ * total : 0.0);
          }
        }
        for (Index m = 0; m < d; ++m) {
          inverse_partial(z, ws, b, n, m);
          dzdz.col(m) = ws.dm * p.row(n).transpose();
        }
        unpack_inverse(ws, b);
        Eigen::Map<RowMatrix>(jac.row(n).data() + dd, d, d) = ws.ginv;
        Eigen::Map<RowMatrix>(jac.row(n).data() + 3 * dd, d, d) = -dzdz.transpose();
      }
    });
  }

 private:
  struct Workspace {
    RowMatrix weights, kept, scratch, acc, acc_deriv, acc_second, uu, rc, rcc;
    Eigen::MatrixXd ginv, g, dm, identity, a0, d2ginv, second;
    std::vector<Eigen::MatrixXd> dginv, dgk;  // jet: dG^{-1}/dz_k and dG/dz_k of one point
    Vector u, packed;
    RowVector centred;
    Eigen::LLT<Eigen::MatrixXd> llt;
  };

  // A (rows x K) matrix stored chunk by chunk: chunk c is the contiguous rows x kChunk block at
  // row c * rows (zeros beyond K), so that a chunk is read as one stream (rows of length K would
  // put each row of a chunk on another page).
  static RowMatrix by_chunks(const RowMatrix& a) {
    const Index rows = a.rows(), chunks = block_count(a.cols(), kChunk);
    RowMatrix out = RowMatrix::Zero(chunks * rows, kChunk);
    for (Index c = 0; c < chunks; ++c) {
      const Index k0 = c * kChunk, kc = std::min(kChunk, a.cols() - k0);
      out.block(c * rows, 0, rows, kc) = a.middleCols(k0, kc);
    }
    return out;
  }

  // The chunk of centroids k0.. of a by_chunks matrix with `rows` rows (row stride kChunk).
  static const double* chunk_rows(const RowMatrix& chunks, Index rows, Index k0) {
    return chunks.data() + (k0 / kChunk) * rows * kChunk;
  }

  // Sizes the workspace for this kernel; a no-op when it already fits.
  void prepare(Workspace& ws) const {
    ws.weights.resize(kBlock, kChunk);
    if (keep_weights_) ws.kept.resize(kBlock, m_padded_.rows());
    ws.scratch.resize(kBlock, kChunk);
    ws.uu.resize(kBlock, p_);
    ws.rc.resize(kBlock, jp_);
    ws.ginv.resize(d_, d_);
    ws.g.resize(d_, d_);
    ws.dm.resize(d_, d_);
    ws.a0.resize(d_, d_);
    ws.d2ginv.resize(d_, d_);
    ws.second.resize(d_, d_);
    if (ws.identity.rows() != d_) ws.identity = Eigen::MatrixXd::Identity(d_, d_);
    if (static_cast<Index>(ws.dginv.size()) != d_ || (d_ > 0 && ws.dginv.front().rows() != d_)) {
      ws.dginv.assign(static_cast<std::size_t>(d_), Eigen::MatrixXd(d_, d_));
      ws.dgk.assign(static_cast<std::size_t>(d_), Eigen::MatrixXd(d_, d_));
    }
    ws.u.resize(d_);
    ws.packed.resize(p_);
    ws.centred.resize(d_);
  }

  // Runs body(workspace, first point, number of points) over blocks of points. Each thread keeps
  // its workspace between calls (thread_local), so the many small calls of a geodesic solver do
  // not allocate. Blocks do not depend on the thread count, so neither do the results.
  template <class Body>
  void for_blocks(Index n, int n_threads, Body&& body) const {
    const Index blocks = block_count(n, kBlock);
    // ~1e5 weights per thread before a parallel region pays off.
    const Index grain = std::max<Index>(1, 100000 / (kBlock * std::max<Index>(k_, 1)));
    parallel_for(
        blocks, n_threads,
        [&](Index blk) {
          thread_local Workspace ws;
          prepare(ws);
          const Index n0 = blk * kBlock;
          body(ws, n0, std::min(kBlock, n - n0));
        },
        grain);
  }

  // The weights exp(-|z_b - c_k|^2 / T^2) of the block's points for the centroids k0..k0+kc into
  // the chunk buffer (or the kept weights), which is returned; `width` >= kc columns, the ones
  // beyond kc set to 0 (padding for the vectorised products).
  Eigen::Block<RowMatrix> chunk_weights(const ConstRowMatrixRef& z, Index n0, Index nb, Index k0, Index kc,
                                        Workspace& ws, Index width) const {
    auto w = keep_weights_ ? ws.kept.block(0, k0, nb, width) : ws.weights.block(0, 0, nb, width);
    using gemm::kLanes;
    using gemm::Lanes;
    const double* c = chunk_rows(centroids_t_, d_, k0);
    const Index stride = kChunk;
    for (Index b = 0; b < nb; ++b) {
      double* row = &w(b, 0);
      Index k = 0;
      for (; k + kLanes <= kc; k += kLanes) {  // squared distances of a vector of centroids, summed over j
        Lanes sum = Lanes::Zero();
        for (Index j = 0; j < d_; ++j) sum += (Eigen::Map<const Lanes>(c + j * stride + k) - z(n0 + b, j)).square();
        Eigen::Map<Lanes>(row + k) = sum;
      }
      for (; k < kc; ++k) {
        double sum = 0.0;
        for (Index j = 0; j < d_; ++j) sum += (c[j * stride + k] - z(n0 + b, j)) * (c[j * stride + k] - z(n0 + b, j));
        row[k] = sum;
      }
      // Far from every centroid the weights must be exactly 0 (not a clamped 1e-308),
      // or G^{-1} = lambda I = 0 would pass for positive definite: scaled_exp_inplace does so.
      scaled_exp_inplace(row, kc, -inv_t2_);
      std::fill(row + kc, row + width, 0.0);
    }
    return w;
  }

  // Columns of the chunk's weights and products: whole SIMD vectors on the d >= 4 path.
  Index padded_chunk(Index kc) const { return fused_ ? kc : gemm::round_up(kc, gemm::kLanes); }

  // Packed columns of ws.acc (p, padded to whole vectors for d >= 4); the derivative sums of
  // coordinate j are the columns j * packed_width() + e of ws.acc_deriv.
  Index packed_width() const { return fused_ ? p_ : pp_; }

  // C (rows x C.cols()) += W B with W (rows x depth) row-major and B = b (depth x C.cols(), ldb).
  template <class W, class C>
  static void multiply_add(const W& w, Index rows, Index depth, const double* b, Index ldb, C& c, Index col0 = 0,
                           Index cols = -1) {
    gemm::multiply_add(rows, cols < 0 ? c.cols() : cols, depth, w.data(), 1, w.outerStride(), b, ldb, c.data() + col0,
                       c.outerStride());
  }

  // The packed sums s * sum_k w_bk M_k of the block (lambda I is added later) into ws.acc; with
  // level >= 1 s * sum_k w_bk (c_kj - cbar_j) M_k into ws.acc_deriv; with level 2 the second
  // moments C_jm = s * sum_k w_bk (c_kj - cbar_j)(c_km - cbar_m) M_k (pairs j <= m, pp_ columns
  // each) into ws.acc_second.
  void accumulate(const ConstRowMatrixRef& z, Index n0, Index nb, Workspace& ws, int level) const {
    const bool deriv = level >= 1, second = level >= 2;
    const Index width = packed_width();
    ws.acc.setZero(nb, width);
    if (deriv) ws.acc_deriv.setZero(nb, d_ * width);
    if (second) ws.acc_second.setZero(nb, packed_size(d_) * pp_);
    for (Index k0 = 0; k0 < k_; k0 += kChunk) {
      const Index kc = std::min(kChunk, k_ - k0), kcp = padded_chunk(kc);
      const auto w = chunk_weights(z, n0, nb, k0, kc, ws, kcp);
      const double* m = m_padded_.data() + k0 * pp_;
      if (second) {
        const double* cc = chunk_rows(centred_t_, d_, k0);
        auto scaled = ws.scratch.topLeftCorner(nb, kcp);
        Index pair = 0;
        for (Index j = 0; j < d_; ++j)
          for (Index l = j; l < d_; ++l, ++pair) {
            const auto cj = Eigen::Map<const RowVector>(cc + j * kChunk, kcp).array();
            const auto cl = Eigen::Map<const RowVector>(cc + l * kChunk, kcp).array();
            scaled = w.array().rowwise() * (cj * cl);
            multiply_add(scaled, nb, kcp, m, pp_, ws.acc_second, pair * pp_, pp_);
          }
      }
      if (fused_) {
        accumulate_small(w, k0, kc, ws, deriv);
        continue;
      }
      multiply_add(w, nb, kcp, m, pp_, ws.acc);
      for (Index j = 0; deriv && j < d_; ++j) {
        auto scaled = ws.scratch.topLeftCorner(nb, kcp);
        scaled = w * caug_.col(j).segment(k0, kcp).asDiagonal();
        multiply_add(scaled, nb, kcp, m, pp_, ws.acc_deriv, j * pp_, pp_);
      }
    }
    ws.acc *= scale_;
    if (deriv) ws.acc_deriv *= scale_;
    if (second) ws.acc_second *= scale_;
  }

  // Small d: the p (or (d + 1) p with `deriv`) weighted sums of coef_t_ per point, 8 centroids at
  // a time in 8-lane accumulators (a GEMM with so few columns runs far below its peak).
  void accumulate_small(const Eigen::Block<RowMatrix>& w, Index k0, Index kc, Workspace& ws, bool deriv) const {
    switch (deriv ? (d_ + 1) * p_ : p_) {
      case 1:
        return accumulate_lanes<1>(w, k0, kc, ws, deriv);
      case 2:
        return accumulate_lanes<2>(w, k0, kc, ws, deriv);
      case 3:
        return accumulate_lanes<3>(w, k0, kc, ws, deriv);
      case 6:
        return accumulate_lanes<6>(w, k0, kc, ws, deriv);
      case 9:
        return accumulate_lanes<9>(w, k0, kc, ws, deriv);
      default:
        return accumulate_lanes<24>(w, k0, kc, ws, deriv);
    }
  }

  template <int P>
  void accumulate_lanes(const Eigen::Block<RowMatrix>& w, Index k0, Index kc, Workspace& ws, bool deriv) const {
    using Lanes = Eigen::Array<double, 8, 1>;
    const double* coef = chunk_rows(coef_t_, (d_ + 1) * p_, k0);
    const Index stride = kChunk;
    for (Index b = 0; b < w.rows(); ++b) {
      const double* wb = &w(b, 0);
      Lanes sums[P];
      for (auto& s : sums) s.setZero();
      Index k = 0;
      for (; k + 8 <= kc; k += 8) {
        const Lanes wk = Eigen::Map<const Lanes>(wb + k);
        for (int e = 0; e < P; ++e) sums[e] += wk * Eigen::Map<const Lanes>(coef + e * stride + k);
      }
      for (int e = 0; e < P; ++e) {
        double total = sums[e].sum();
        for (Index t = k; t < kc; ++t) total += wb[t] * coef[e * stride + t];
        if (e < p_)
          ws.acc(b, e) += total;
        else if (deriv)
          ws.acc_deriv(b, e - p_) += total;
      }
    }
  }

  // d <= 3: dq/dz_j = (2 / T^2) (zbar_j uu . A - uu . B_j) from the first pass's sums
  // A = s sum w M and B_j = s sum w (c_j - cbar_j) M, with uu the packed sum of u u^T.
  void fused_gradient(const ConstRowMatrixRef& z, Index n0, Index nb, Workspace& ws, RowMatrixRef dqdz) const {
    for (Index b = 0; b < nb; ++b) {
      const double ua = ws.uu.row(b).dot(ws.acc.row(b));
      for (Index j = 0; j < d_; ++j)
        dqdz(n0 + b, j) =
            2.0 * inv_t2_ *
            ((z(n0 + b, j) - centre_(j)) * ua - ws.uu.row(b).dot(ws.acc_deriv.row(b).segment(j * p_, p_)));
    }
  }

  // The second pass over the chunks: r_bk = w_bk uu_b . M_k, then ws.rc = [sum_k r_bk (c_k - cbar),
  // sum_k r_bk] (without s), and with `moments` ws.rcc(b, pair j <= m) = sum_k r_bk (c_kj - cbar_j)
  // (c_km - cbar_m); the weights recomputed unless they were kept.
  void second_pass(const ConstRowMatrixRef& z, Index n0, Index nb, Workspace& ws, bool moments) const {
    ws.rc.setZero();
    if (moments) ws.rcc.setZero(nb, packed_size(d_));
    for (Index k0 = 0; k0 < k_; k0 += kChunk) {
      const Index kc = std::min(kChunk, k_ - k0), kcp = gemm::round_up(kc, gemm::kLanes);
      const auto w = keep_weights_ ? ws.kept.block(0, k0, nb, kcp) : chunk_weights(z, n0, nb, k0, kc, ws, kcp);
      auto r = ws.scratch.topLeftCorner(nb, kcp);
      r.setZero();
      multiply_add(ws.uu, nb, p_, chunk_rows(m_t_, p_, k0), kChunk, r);
      r.array() *= w.array();
      multiply_add(r, nb, kcp, caug_.data() + k0 * jp_, jp_, ws.rc);
      if (!moments) continue;
      const double* cc = chunk_rows(centred_t_, d_, k0);
      Index pair = 0;
      for (Index j = 0; j < d_; ++j) {
        const auto cj = Eigen::Map<const RowVector>(cc + j * kChunk, kc).array();
        for (Index l = j; l < d_; ++l, ++pair) {
          const auto cl = Eigen::Map<const RowVector>(cc + l * kChunk, kc).array();
          ws.rcc.col(pair) += (r.leftCols(kc).array().rowwise() * (cj * cl)).rowwise().sum().matrix();
        }
      }
    }
  }

  // d >= 4: dq/dz_j = (2 s / T^2) (zbar_j sum_k r_bk - sum_k r_bk cbar_kj) from the second pass.
  void second_pass_gradient(const ConstRowMatrixRef& z, Index n0, Index nb, Workspace& ws, RowMatrixRef dqdz) const {
    second_pass(z, n0, nb, ws, false);
    gradient_from_sums(z, n0, nb, ws, dqdz);
  }

  // The geodesic flow's sums in one pass over the chunks, each chunk's weights and M read once per
  // point: ws.acc (as accumulate at level 0) and ws.rc (as second_pass), with uu = packed p p^T
  // known before G^{-1}; with `jacobian` also ws.acc_deriv (accumulate at level 1) and the moments
  // ws.rcc (second_pass with moments), for the variational equations. The integrators hand over a
  // few trajectories per call, where the blocked products of the two passes run far below their
  // rate (d = 8, K = 400: 29 us a point against 4 for the flow).
  void one_pass_flow(const ConstRowMatrixRef& z, const ConstRowMatrixRef& p, Index n0, Index nb, Workspace& ws,
                     bool jacobian = false) const {
    for (Index b = 0; b < nb; ++b) {
      packed_outer(p.row(n0 + b), ws.packed);
      ws.uu.row(b) = ws.packed.transpose();
    }
    const Index width = packed_width();
    ws.acc.setZero(nb, width);
    ws.rc.setZero();
    if (jacobian) {
      ws.acc_deriv.setZero(nb, d_ * width);
      ws.rcc.setZero(nb, packed_size(d_));
    }
    for (Index k0 = 0; k0 < k_; k0 += kChunk) {
      const Index kc = std::min(kChunk, k_ - k0);
      const auto w = chunk_weights(z, n0, nb, k0, kc, ws, padded_chunk(kc));
      const double* mt = chunk_rows(m_t_, p_, k0);
      const double* cc = chunk_rows(centred_t_, d_, k0);
      const auto coordinate = [&](Index j) { return Eigen::Map<const RowVector>(cc + j * kChunk, kc).array(); };
      for (Index b = 0; b < nb; ++b) {
        const auto wb = w.row(b).head(kc).array();
        auto r = ws.scratch.row(b).head(kc).array();
        r.setZero();
        for (Index e = 0; e < p_; ++e) {
          const auto me = Eigen::Map<const RowVector>(mt + e * kChunk, kc).array();
          ws.acc(b, e) += (wb * me).sum();  // expressions, not temporaries: nothing allocates per entry
          for (Index j = 0; jacobian && j < d_; ++j) ws.acc_deriv(b, j * width + e) += (wb * me * coordinate(j)).sum();
          r += ws.uu(b, e) * me;
        }
        r *= wb;
        for (Index j = 0; j < d_; ++j) ws.rc(b, j) += (r * coordinate(j)).sum();
        ws.rc(b, d_) += r.sum();
        Index pair = 0;
        for (Index j = 0; jacobian && j < d_; ++j)
          for (Index l = j; l < d_; ++l, ++pair) ws.rcc(b, pair) += (r * coordinate(j) * coordinate(l)).sum();
      }
    }
    ws.acc *= scale_;
    if (jacobian) ws.acc_deriv *= scale_;
  }

  // dq/dz = (2 s / T^2) (sum_k r_k (z - cbar) - sum_k r_k (c_k - cbar)) from ws.rc.
  void gradient_from_sums(const ConstRowMatrixRef& z, Index n0, Index nb, Workspace& ws, RowMatrixRef dqdz) const {
    const double factor = 2.0 * scale_ * inv_t2_;
    for (Index b = 0; b < nb; ++b) {
      ws.centred = z.row(n0 + b) - centre_;
      dqdz.row(n0 + b) = factor * (ws.rc(b, d_) * ws.centred - ws.rc.block(b, 0, 1, d_));
    }
  }

  // The flow's velocities zdot = G^{-1} p of the block (with ok), and uu = packed p p^T for the
  // gradient passes.
  void flow_velocities(const ConstRowMatrixRef& p, Index n0, Index nb, Workspace& ws, RowMatrixRef zdot,
                       std::vector<char>& ok) const {
    for (Index b = 0; b < nb; ++b) {
      const Index n = n0 + b;
      unpack_inverse(ws, b);
      ws.llt.compute(ws.ginv);
      ok[static_cast<std::size_t>(n)] = cholesky_regular(ws.llt) ? 1 : 0;
      zdot.row(n).noalias() = p.row(n) * ws.ginv;  // G^{-1} symmetric
      packed_outer(p.row(n), ws.packed);
      ws.uu.row(b) = ws.packed.transpose();
    }
  }

  // d_k d_m G at the block's point b into d2g (row `point`), from ws.dginv / ws.dgk / ws.g (jet):
  //   d_m d_k G = -d_m G d_k G^{-1} G - G d_k d_m G^{-1} G - G d_k G^{-1} d_m G.
  void second_derivatives(const ConstRowMatrixRef& z, Workspace& ws, Index b, Index point, RowMatrixRef& d2g) const {
    const Index d = d_, width = packed_width();
    ws.centred = z.row(point) - centre_;
    unpack_symmetric(ws.acc.row(b), ws.a0);  // s sum w M (no lambda)
    Index pair = 0;
    for (Index k = 0; k < d; ++k)
      for (Index m = k; m < d; ++m, ++pair) {
        // S_km = zt_k zt_m A - zt_k B_m - zt_m B_k + C_km, packed.
        ws.packed = ws.centred(k) * ws.centred(m) * ws.acc.row(b).head(p_).transpose() -
                    ws.centred(k) * ws.acc_deriv.block(b, m * width, 1, p_).transpose() -
                    ws.centred(m) * ws.acc_deriv.block(b, k * width, 1, p_).transpose() +
                    ws.acc_second.block(b, pair * pp_, 1, p_).transpose();
        unpack_symmetric(ws.packed, ws.d2ginv);
        ws.d2ginv *= 4.0 * inv_t2_ * inv_t2_;
        if (k == m) ws.d2ginv -= 2.0 * inv_t2_ * ws.a0;
        const auto& dginv_k = ws.dginv[static_cast<std::size_t>(k)];
        const auto& dg_m = ws.dgk[static_cast<std::size_t>(m)];
        ws.second = -dg_m * dginv_k * ws.g - ws.g * ws.d2ginv * ws.g - ws.g * dginv_k * dg_m;
        for (Index a = 0; a < d; ++a)
          for (Index c = 0; c < d; ++c) {
            // symmetric in (a, c) and in (k, m): both orders from the symmetrised value
            const double v = 0.5 * (ws.second(a, c) + ws.second(c, a));
            d2g(point, ((a * d + c) * d + k) * d + m) = v;
            d2g(point, ((a * d + c) * d + m) * d + k) = v;
          }
      }
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
    if (!cholesky_regular(ws.llt))
      throw MetricDomainError("metric: G^{-1} is singular or not positive definite at point " + std::to_string(point) +
                              ", z = " + format_point(z.row(point)) + " (set regularization > 0)");
  }

  void invert(Workspace& ws) const { ws.g = ws.llt.solve(ws.identity); }

  // ws.dm = dG^{-1}/dz_k at the block's point b.
  void inverse_partial(const ConstRowMatrixRef& z, Workspace& ws, Index b, Index point, Index k) const {
    ws.packed = -2.0 * inv_t2_ *
                ((z(point, k) - centre_(k)) * ws.acc.row(b).transpose() -
                 ws.acc_deriv.block(b, k * packed_width(), 1, p_).transpose());
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

  RowMatrix centroids_t_;  // d x K by chunks (by_chunks), rows contiguous for the vectorised distances
  RowMatrix coef_t_;       // d <= 3: (d + 1) p x K by chunks, see the constructor
  RowMatrix m_padded_;     // the packed M_k, Kp x pp (padded with zeros)
  RowMatrix m_t_;          // its transpose, p x K by chunks
  RowMatrix caug_;         // Kp x jp, [c - cbar, 1, 0...]
  RowMatrix centred_t_;    // (c - cbar)^T, d x K by chunks (second moments)
  RowVector centre_;       // cbar, the mean of the centroids
  double inv_t2_, lambda_, scale_;
  Index d_, k_, p_, pp_ = 0, jp_ = 0;
  bool fused_ = false, keep_weights_ = false;
};

}  // namespace latentgeo
