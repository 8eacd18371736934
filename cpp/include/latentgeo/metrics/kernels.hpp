// Metric kernels seen by the solvers, and the generic routines built on a kernel's quadratic form.
//
// A metric kernel has
//   Index dim() const
//   void quadratic_form(z, v, q, dqdz, dqdv, n_threads) const
// with z, v (N x d) points and vectors, q (N) = v^T G(z) v, and, when dqdz has rows, the gradients
// dqdz = dq/dz (N x d) and dqdv = dq/dv = 2 G(z) v (N x d). A kernel may add a faster
// metric_tensors(z, g), metric(z, g, logdet, n_threads) or quadratic_forms (several vectors per
// point), which the routines below use when present. The pullback metric G = J^T J of a decoder e
// may add decoded_energy(nodes, grad): the energy of the decoded polyline (see decoded_energy).
#pragma once

#include <cmath>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "latentgeo/core/common.hpp"

namespace latentgeo {

/// The constant metric G(z) = A: q = v^T A v, dq/dz = 0, dq/dv = 2 A v.
class ConstantKernel {
 public:
  /// @param a  (d x d) symmetric positive definite matrix A; throws std::invalid_argument if not square.
  explicit ConstantKernel(const RowMatrix& a) : a_(a) {
    if (a.rows() != a.cols() || a.rows() == 0) throw std::invalid_argument("A: expected a square matrix");
  }
  static constexpr int kJetOrder = 2;  // exact: dG = d2G = 0
  Index dim() const { return a_.rows(); }
  const RowMatrix& matrix() const { return a_; }
  /// The connection's jet (RHVAEKernel::jet): G = A at every point, zero derivatives.
  void jet(const ConstRowMatrixRef& z, int order, RowMatrixRef g, RowMatrixRef dg, RowMatrixRef d2g,
           std::vector<char>& ok, int /*n_threads*/) const {
    ok.assign(static_cast<std::size_t>(z.rows()), 1);
    for (Index r = 0; r < z.rows(); ++r) g.row(r) = Eigen::Map<const RowVector>(a_.data(), a_.size());
    if (order >= 1) dg.setZero();
    if (order >= 2) d2g.setZero();
  }
  /// @param z     (N x d) points (unused: G is constant).
  /// @param v     (N x d) vectors.
  /// @param q     (N) output v^T A v.
  /// @param dqdz  (N x d) output zeros, or (0 x d) for no gradients.
  /// @param dqdv  (N x d) output 2 A v when dqdz has rows.
  void quadratic_form(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, VectorRef q, RowMatrixRef dqdz,
                      RowMatrixRef dqdv, int /*n_threads*/) const {
    RowMatrix av = v * a_;  // A symmetric
    q = (av.array() * v.array()).rowwise().sum().matrix();
    if (dqdz.rows() > 0) {
      dqdz.setZero();
      dqdv = 2.0 * av;
    }
  }

 private:
  RowMatrix a_;
};

namespace detail {

// Kernels with the connection's jet(z, order, G, dG, d2G, ok, n_threads) (RHVAEKernel::jet).
template <class K, class = void>
struct has_jet : std::false_type {};
template <class K>
struct has_jet<K,
               std::void_t<decltype(std::declval<const K&>().jet(
                   std::declval<const ConstRowMatrixRef&>(), 0, std::declval<RowMatrixRef>(),
                   std::declval<RowMatrixRef>(), std::declval<RowMatrixRef>(), std::declval<std::vector<char>&>(), 1))>>
    : std::true_type {};

// Kernels with the geodesic flow in Hamiltonian form (RHVAEKernel::hamiltonian).
template <class K, class = void>
struct kernel_has_hamiltonian : std::false_type {};
template <class K>
struct kernel_has_hamiltonian<
    K, std::void_t<decltype(std::declval<const K&>().hamiltonian(
           std::declval<const ConstRowMatrixRef&>(), std::declval<const ConstRowMatrixRef&>(),
           std::declval<RowMatrixRef>(), std::declval<RowMatrixRef>(), std::declval<std::vector<char>&>(), 1))>>
    : std::true_type {};

// ... and its Jacobian (RHVAEKernel::hamiltonian_jacobian).
template <class K, class = void>
struct kernel_has_hamiltonian_jacobian : std::false_type {};
template <class K>
struct kernel_has_hamiltonian_jacobian<
    K, std::void_t<decltype(std::declval<const K&>().hamiltonian_jacobian(
           std::declval<const ConstRowMatrixRef&>(), std::declval<const ConstRowMatrixRef&>(),
           std::declval<RowMatrixRef>(), std::declval<RowMatrixRef>(), std::declval<RowMatrixRef>(),
           std::declval<std::vector<char>&>(), 1))>> : std::true_type {};

// Kernels with the samplers' volume_jet(z, logdet, dlogdet, ginv, dginv, n_threads).
template <class K, class = void>
struct has_volume_jet : std::false_type {};
template <class K>
struct has_volume_jet<
    K, std::void_t<decltype(std::declval<const K&>().volume_jet(
           std::declval<const ConstRowMatrixRef&>(), std::declval<VectorRef>(), std::declval<RowMatrixRef>(),
           std::declval<RowMatrixRef>(), std::declval<RowMatrixRef>(), 1))>> : std::true_type {};

template <class K, class = void>
struct jet_order : std::integral_constant<int, -1> {};
template <class K>
struct jet_order<K, std::void_t<decltype(K::kJetOrder)>> : std::integral_constant<int, K::kJetOrder> {};

}  // namespace detail

/// factor * G of another kernel (a ScaledMetric seen by the solver). Holds a reference: `base`
/// must outlive it. Its quadratic_form, quadratic_forms and metric_tensors have the shapes of the
/// free functions below.
///
/// The one place where a constant factor c enters the native solvers: every quantity follows from
/// c G, e.g. Christoffel symbols and the exp/log maps do not change, the scalar curvature scales
/// by 1 / c (from G^{-1}), log det by d log c.
template <class Kernel>
class ScaledKernel {
 public:
  static constexpr int kJetOrder = detail::jet_order<Kernel>::value;
  ScaledKernel(const Kernel& base, double factor) : base_(base), factor_(factor) {
    if (!(factor > 0.0) || !std::isfinite(factor)) throw std::invalid_argument("scale: must be finite and > 0");
  }
  Index dim() const { return base_.dim(); }
  const Kernel& base() const { return base_; }
  double factor() const { return factor_; }

  /// c G, c dG, c d2G.
  template <class K = Kernel, std::enable_if_t<detail::has_jet<K>::value, int> = 0>
  void jet(const ConstRowMatrixRef& z, int order, RowMatrixRef g, RowMatrixRef dg, RowMatrixRef d2g,
           std::vector<char>& ok, int n_threads) const {
    base_.jet(z, order, g, dg, d2g, ok, n_threads);
    if (factor_ == 1.0) return;
    g *= factor_;
    if (order >= 1) dg *= factor_;
    if (order >= 2) d2g *= factor_;
  }
  /// H = p^T (c G)^{-1} p / 2 = H_base / c: both derivatives divided by c.
  template <class K = Kernel, std::enable_if_t<detail::kernel_has_hamiltonian<K>::value, int> = 0>
  void hamiltonian(const ConstRowMatrixRef& z, const ConstRowMatrixRef& p, RowMatrixRef zdot, RowMatrixRef pdot,
                   std::vector<char>& ok, int n_threads) const {
    base_.hamiltonian(z, p, zdot, pdot, ok, n_threads);
    if (factor_ == 1.0) return;
    zdot /= factor_;
    pdot /= factor_;
  }
  template <class K = Kernel, std::enable_if_t<detail::kernel_has_hamiltonian_jacobian<K>::value, int> = 0>
  void hamiltonian_jacobian(const ConstRowMatrixRef& z, const ConstRowMatrixRef& p, RowMatrixRef zdot,
                            RowMatrixRef pdot, RowMatrixRef jac, std::vector<char>& ok, int n_threads) const {
    base_.hamiltonian_jacobian(z, p, zdot, pdot, jac, ok, n_threads);
    if (factor_ == 1.0) return;
    zdot /= factor_;
    pdot /= factor_;
    jac /= factor_;
  }
  /// log det (c G) = log det G + d log c; its gradient unchanged; (c G)^{-1} and its derivative / c.
  template <class K = Kernel, std::enable_if_t<detail::has_volume_jet<K>::value, int> = 0>
  void volume_jet(const ConstRowMatrixRef& z, VectorRef logdet, RowMatrixRef dlogdet, RowMatrixRef ginv,
                  RowMatrixRef dginv, int n_threads) const {
    base_.volume_jet(z, logdet, dlogdet, ginv, dginv, n_threads);
    if (factor_ == 1.0) return;
    logdet.array() += static_cast<double>(dim()) * std::log(factor_);
    ginv /= factor_;
    dginv /= factor_;
  }
  void quadratic_form(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, VectorRef q, RowMatrixRef dqdz,
                      RowMatrixRef dqdv, int n_threads) const {
    base_.quadratic_form(z, v, q, dqdz, dqdv, n_threads);
    if (factor_ == 1.0) return;
    q *= factor_;
    if (dqdz.rows() > 0) {
      dqdz *= factor_;
      dqdv *= factor_;
    }
  }
  void metric_tensors(const ConstRowMatrixRef& z, RowMatrix& g) const;
  double decoded_energy(const ConstRowMatrixRef& nodes, RowMatrix& grad) const;
  void quadratic_forms(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, RowMatrixRef q, RowMatrixRef dqdz,
                       RowMatrixRef dqdv, int n_threads) const;

 private:
  const Kernel& base_;
  double factor_;
};

namespace detail {

template <class K, class = void>
struct has_metric_tensors : std::false_type {};
template <class K>
struct has_metric_tensors<K, std::void_t<decltype(std::declval<const K&>().metric_tensors(
                                 std::declval<const ConstRowMatrixRef&>(), std::declval<RowMatrix&>()))>>
    : std::true_type {};

// Kernels with RHVAEKernel's metric(z, G, logdet, n_threads).
template <class K, class = void>
struct has_metric : std::false_type {};
template <class K>
struct has_metric<
    K, std::void_t<decltype(std::declval<const K&>().metric(
           std::declval<const ConstRowMatrixRef&>(), std::declval<RowMatrixRef>(), std::declval<VectorRef>(), 1))>>
    : std::true_type {};

// Kernels with RHVAEKernel's quadratic_forms (several vectors per point).
template <class K, class = void>
struct has_quadratic_forms : std::false_type {};
template <class K>
struct has_quadratic_forms<
    K, std::void_t<decltype(std::declval<const K&>().quadratic_forms(
           std::declval<const ConstRowMatrixRef&>(), std::declval<const ConstRowMatrixRef&>(),
           std::declval<RowMatrixRef>(), std::declval<RowMatrixRef>(), std::declval<RowMatrixRef>(), 1))>>
    : std::true_type {};

// Kernels of a decoder's pullback metric with decoded_energy(nodes, grad).
template <class K, class = void>
struct has_decoded_energy : std::false_type {};
template <class K>
struct has_decoded_energy<K, std::void_t<decltype(std::declval<const K&>().decoded_energy(
                                 std::declval<const ConstRowMatrixRef&>(), std::declval<RowMatrix&>()))>>
    : std::true_type {};

}  // namespace detail

/// Quadratic forms of m = v.cols() / d vectors per point.
/// @param z     (N x d) points.
/// @param v     (N x m d) vectors v_i of each point, side by side.
/// @param q     (N x m) output q(n, i) = v_i^T G(z_n) v_i.
/// @param dqdz  (N x d) output sum_i dq(n, i)/dz, or (0 x d) for no gradients.
/// @param dqdv  (N x m d) output dq(n, i)/dv_i = 2 G v_i when dqdz has rows.
/// Natively when the kernel has quadratic_forms (G once per point), otherwise one quadratic_form
/// call over the (point, vector) pairs whose vector is not zero (a zero vector adds nothing to q or
/// its gradients).
template <class Kernel>
void quadratic_forms(const Kernel& k, const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, RowMatrixRef q,
                     RowMatrixRef dqdz, RowMatrixRef dqdv, int n_threads) {
  const Index n = z.rows(), d = z.cols(), m = v.cols() / d;
  const bool grad = dqdz.rows() > 0;
  if constexpr (detail::has_quadratic_forms<Kernel>::value) {
    k.quadratic_forms(z, v, q, dqdz, dqdv, n_threads);
  } else if (m == 1) {
    Eigen::Map<Vector> q_vector(q.data(), n);
    k.quadratic_form(z, v, q_vector, dqdz, dqdv, n_threads);
  } else {
    std::vector<std::pair<Index, Index>> used;  // (point, vector)
    for (Index r = 0; r < n; ++r)
      for (Index i = 0; i < m; ++i)
        if ((v.block(r, i * d, 1, d).array() != 0.0).any()) used.emplace_back(r, i);
    const Index u = static_cast<Index>(used.size());
    RowMatrix zs(u, d), vs(u, d), dz(grad ? u : 0, d), dv(grad ? u : 0, d);
    Vector qs(u);
    for (Index t = 0; t < u; ++t) {
      zs.row(t) = z.row(used[t].first);
      vs.row(t) = v.block(used[t].first, used[t].second * d, 1, d);
    }
    k.quadratic_form(zs, vs, qs, dz, dv, n_threads);
    q.setZero();
    if (grad) {
      dqdz.setZero();
      dqdv.setZero();
    }
    for (Index t = 0; t < u; ++t) {
      const auto [r, i] = used[t];
      q(r, i) = qs(t);
      if (!grad) continue;
      dqdz.row(r) += dz.row(t);
      dqdv.block(r, i * d, 1, d) = dv.row(t);
    }
  }
}

template <class Kernel>
void ScaledKernel<Kernel>::quadratic_forms(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, RowMatrixRef q,
                                           RowMatrixRef dqdz, RowMatrixRef dqdv, int n_threads) const {
  latentgeo::quadratic_forms(base_, z, v, q, dqdz, dqdv, n_threads);
  if (factor_ == 1.0) return;
  q *= factor_;
  if (dqdz.rows() > 0) {
    dqdz *= factor_;
    dqdv *= factor_;
  }
}

/// The metric tensors at the rows of z.
/// @param z  (N x d) points.
/// @param g  output, resized to (N x d d): G(z_n) row-major in row n.
/// Through the kernel's own metric routine when it has one, otherwise from d quadratic forms per
/// point (dq/dv = 2 G e_a).
template <class Kernel>
void metric_tensors(const Kernel& k, const ConstRowMatrixRef& z, RowMatrix& g) {
  const Index n = z.rows(), d = z.cols();
  g.resize(n, d * d);
  if constexpr (detail::has_metric_tensors<Kernel>::value) {
    k.metric_tensors(z, g);
  } else if constexpr (detail::has_metric<Kernel>::value) {
    Vector no_logdet(0);
    k.metric(z, g, no_logdet, 1);
  } else {
    RowMatrix zz(n * d, d), v = RowMatrix::Zero(n * d, d), dz(n * d, d), dv(n * d, d);
    Vector q(n * d);
    for (Index i = 0; i < n; ++i)
      for (Index a = 0; a < d; ++a) {
        zz.row(i * d + a) = z.row(i);
        v(i * d + a, a) = 1.0;
      }
    k.quadratic_form(zz, v, q, dz, dv, 1);
    for (Index i = 0; i < n; ++i)
      for (Index a = 0; a < d; ++a)
        for (Index b = 0; b < d; ++b) g(i, a * d + b) = 0.5 * dv(i * d + b, a);  // column b of G, row a
  }
}

template <class Kernel>
void ScaledKernel<Kernel>::metric_tensors(const ConstRowMatrixRef& z, RowMatrix& g) const {
  latentgeo::metric_tensors(base_, z, g);
  g *= factor_;
}

/// The energy of the decoded polyline of a pullback metric G = J^T J (J the Jacobian of the
/// decoder e): E = n sum_i |e(x_{i+1}) - e(x_i)|^2 over the n segments of the nodes.
/// @param nodes  (n + 1 x d) nodes x_0..x_n.
/// @param grad   output, resized to (n + 1 x d): dE/dx_j.
/// Throws std::invalid_argument for a kernel without a decoder.
template <class Kernel>
double decoded_energy(const Kernel& k, const ConstRowMatrixRef& nodes, RowMatrix& grad) {
  if constexpr (detail::has_decoded_energy<Kernel>::value) {
    return k.decoded_energy(nodes, grad);
  } else {
    (void)k, (void)nodes, (void)grad;
    throw std::invalid_argument("quadrature: 'decoded' needs the pullback metric of a decoder");
  }
}

template <class Kernel>
double ScaledKernel<Kernel>::decoded_energy(const ConstRowMatrixRef& nodes, RowMatrix& grad) const {
  const double e = latentgeo::decoded_energy(base_, nodes, grad);
  grad *= factor_;
  return factor_ * e;
}

}  // namespace latentgeo
