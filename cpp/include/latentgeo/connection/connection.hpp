// The operations of the Levi-Civita connection, for any connection model (connection_models.hpp):
// Christoffel symbols, curvature, the exponential map (geodesic shooting), the logarithmic map
// (damped Newton shooting with the Jacobian from the variational equations) and parallel transport
// along geodesics and along given curves. The ODEs are integrated by the batched adaptive
// Dormand-Prince 5(4) of ode.hpp, trajectories in parallel.
//
// Flows (state per trajectory):
//   GeodesicFlow       (z, v):           z' = v,  v' = -Gamma(v, v)
//   HamiltonianFlow    (z, p), p = G v:  z' = G^{-1} p,  p' = -1/2 p^T dG^{-1} p  (models with hamiltonian())
//   VariationalFlow    (z, v, Jz, Jv):   the geodesic with its Jacobi fields Jz = dz/dv0, Jv = dv/dv0,
//                                        Jz' = Jv,  Jv' = A_z Jz + A_v Jv,
//                                        A_z(k, m) = -d_m Gamma^k_ij v^i v^j,  A_v(k, m) = -2 Gamma^k_mj v^j
//   HamiltonianVariationalFlow (z, p, Phi_z, Phi_p): the same in Hamiltonian form, Phi = d(z, p)/dp0
//   TransportFlow      (z, v, w_1..w_V): the geodesic and w_a' = -Gamma(v, w_a)
//   CurveTransportFlow (w_1..w_V):       w_a' = -Gamma(gamma(t))(gamma'(t), w_a) along a given curve
#pragma once

#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "latentgeo/connection/connection_models.hpp"
#include "latentgeo/numerics/curves.hpp"
#include "latentgeo/numerics/ode.hpp"

namespace latentgeo {

// Per-trajectory (exp, transport) and per-pair (log) outcomes; the first four are OdeStatus.
enum class ConnectionStatus : int {
  converged = 0,
  max_steps = 1,
  domain_exit = 2,
  step_underflow = 3,
  singular_jacobian = 4,  // shooting: the endpoint map's Jacobian is singular (a conjugate point)
  no_progress = 5,        // shooting: damped Newton steps stopped reducing the residual
  max_iter = 6,           // shooting: max_iter Newton iterations without reaching tol
};

inline const char* connection_status_name(int s) {
  switch (s) {
    case 0:
      return "converged";
    case 1:
      return "max_steps";
    case 2:
      return "domain_exit";
    case 3:
      return "step_underflow";
    case 4:
      return "singular_jacobian";
    case 5:
      return "no_progress";
    case 6:
      return "max_iter";
    default:
      return "unknown";
  }
}
inline constexpr int kConnectionStatusCount = 7;

// The options of every connection operation; the defaults exist here only.
struct ConnectionOptions {
  double rtol = 1e-10;          // integrators: relative tolerance of each step
  Index max_steps = 20000;      // integrators: accepted + rejected steps per trajectory
  double tol = 1e-10;           // log map: stop when |exp(z0, v) - z1| <= tol * max(|z0|, |z1|, |z1 - z0|) (max norms)
  Index max_iter = 20;          // log map: Newton iterations per pair
  double jacobian_rtol = 1e-6;  // log map: tolerance of the variational equations (the Jacobian steers only)
  double fd_step = 1e-3;        // finite-difference second derivatives: step / max(1, |z_m|)
  Index block = 4;              // trajectories advanced in lockstep (the Python callback: the whole batch)

  OdeOptions ode() const {
    OdeOptions o;
    o.rtol = rtol;
    o.max_steps = max_steps;
    o.block = block;
    return o;
  }
};

namespace detail {

template <class M, class = void>
struct has_hamiltonian_jacobian : std::false_type {};
template <class M>
struct has_hamiltonian_jacobian<
    M, std::void_t<decltype(std::declval<const M&>().hamiltonian_jacobian(
           std::declval<const ConstRowMatrixRef&>(), std::declval<const RowMatrix&>(), std::declval<RowMatrix&>(),
           std::declval<RowMatrix&>(), std::declval<RowMatrix&>(), std::declval<std::vector<char>&>()))>>
    : std::true_type {};

template <class M, class = void>
struct has_hamiltonian : std::false_type {};
template <class M>
struct has_hamiltonian<
    M, std::void_t<decltype(std::declval<const M&>().hamiltonian(
           std::declval<const ConstRowMatrixRef&>(), std::declval<const RowMatrix&>(), std::declval<RowMatrix&>(),
           std::declval<RowMatrix&>(), std::declval<std::vector<char>&>()))>> : std::true_type {};

// out_k = -Gamma^k_ij v^i w^j at one point.
template <class V, class W, class Out>
void minus_christoffel(const double* gamma, Index d, const V& v, const W& w, Out&& out) {
  for (Index k = 0; k < d; ++k) {
    double sum = 0.0;
    for (Index i = 0; i < d; ++i) {
      const double* row = gamma + (k * d + i) * d;
      double inner = 0.0;
      for (Index j = 0; j < d; ++j) inner += row[j] * w(j);
      sum += v(i) * inner;
    }
    out(k) = -sum;
  }
}

constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace detail

// The model at the rows of z, in blocks of `block` points evaluated in parallel (one block, one
// call, for a Python model).
template <class Model>
LocalGeometry evaluate_points(const Model& model, const ConstRowMatrixRef& z, Order order, int n_threads, Index block) {
  const Index n = z.rows(), d = model.dim();
  LocalGeometry out;
  out.resize(n, d, order);
  parallel_for(block_count(n, block), n_threads, [&](Index b) {
    const Index first = b * block, m = std::min(block, n - first);
    LocalGeometry part;
    model.evaluate(z.middleRows(first, m), order, part);
    out.g.middleRows(first, m) = part.g;
    if (order >= Order::christoffel) out.gamma.middleRows(first, m) = part.gamma;
    if (order >= Order::second) out.dgamma.middleRows(first, m) = part.dgamma;
    for (Index r = 0; r < m; ++r) out.ok[static_cast<std::size_t>(first + r)] = part.ok[static_cast<std::size_t>(r)];
  });
  return out;
}

// ------------------------------------------------------------------------------------------------
// Flows
// ------------------------------------------------------------------------------------------------
namespace detail {

// What every flow on a model holds: the model, its dimension and the state's size; none of them
// has breaks in time.
template <class Model>
class ModelFlow {
 public:
  Index size() const { return size_; }
  Index controlled() const { return controlled_; }  // leading state entries under error control
  double next_break(Index, double) const { return kInf; }

 protected:
  ModelFlow(const Model& m, Index size, Index controlled) : m_(m), d_(m.dim()), size_(size), controlled_(controlled) {}
  const Model& m_;
  Index d_, size_, controlled_;
};

// The size of (z, v, Jz, Jv); only (z, v) is error-controlled: the Jacobian only steers Newton.
inline Index variational_size(Index d) { return 2 * d + 2 * d * d; }

}  // namespace detail

template <class Model>
class HamiltonianFlow : public detail::ModelFlow<Model> {
  using Base = detail::ModelFlow<Model>;
  using Base::d_;
  using Base::m_;

 public:
  explicit HamiltonianFlow(const Model& m) : Base(m, 2 * m.dim(), 2 * m.dim()) {}
  void rhs(const std::vector<Index>&, const Vector&, const RowMatrix& y, RowMatrix& dy, std::vector<char>& ok) const {
    RowMatrix zdot(y.rows(), d_), pdot(y.rows(), d_);
    m_.hamiltonian(y.leftCols(d_), RowMatrix(y.rightCols(d_)), zdot, pdot, ok);
    dy.leftCols(d_) = zdot;
    dy.rightCols(d_) = pdot;
  }
};

template <class Model>
class VariationalFlow : public detail::ModelFlow<Model> {
  using Base = detail::ModelFlow<Model>;
  using Base::d_;
  using Base::m_;

 public:
  explicit VariationalFlow(const Model& m) : Base(m, detail::variational_size(m.dim()), 2 * m.dim()) {}
  void rhs(const std::vector<Index>&, const Vector&, const RowMatrix& y, RowMatrix& dy, std::vector<char>& ok) const {
    const Index d = d_, dd = d * d;
    LocalGeometry geo;
    m_.evaluate(y.leftCols(d), Order::second, geo);
    Eigen::MatrixXd az(d, d), av(d, d);
    for (Index r = 0; r < y.rows(); ++r) {
      ok[static_cast<std::size_t>(r)] = geo.ok[static_cast<std::size_t>(r)];
      const auto v = y.row(r).segment(d, d);
      const double* gamma = geo.gamma.row(r).data();
      const double* dgamma = geo.dgamma.row(r).data();
      dy.row(r).head(d) = v;
      detail::minus_christoffel(gamma, d, v, v, dy.row(r).segment(d, d));
      for (Index k = 0; k < d; ++k)
        for (Index m = 0; m < d; ++m) {
          double sz = 0.0, sv = 0.0;
          for (Index i = 0; i < d; ++i)
            for (Index j = 0; j < d; ++j) sz += dgamma[((k * d + i) * d + j) * d + m] * v(i) * v(j);
          for (Index j = 0; j < d; ++j) sv += gamma[(k * d + m) * d + j] * v(j);
          az(k, m) = -sz;
          av(k, m) = -2.0 * sv;
        }
      const auto jz = detail::ConstMapMatrix(y.row(r).data() + 2 * d, d, d);
      const auto jv = detail::ConstMapMatrix(y.row(r).data() + 2 * d + dd, d, d);
      detail::MapMatrix(dy.row(r).data() + 2 * d, d, d) = jv;
      detail::MapMatrix(dy.row(r).data() + 2 * d + dd, d, d) = az * jz + av * jv;
    }
  }
};

// The Hamiltonian flow with its variational equations (models with hamiltonian_jacobian()):
// y = (z, p, Phi_z, Phi_p), Phi = d(z, p)/dp0, Phi' = [A B; C D] Phi.
template <class Model>
class HamiltonianVariationalFlow : public detail::ModelFlow<Model> {
  using Base = detail::ModelFlow<Model>;
  using Base::d_;
  using Base::m_;

 public:
  explicit HamiltonianVariationalFlow(const Model& m) : Base(m, detail::variational_size(m.dim()), 2 * m.dim()) {}
  void rhs(const std::vector<Index>&, const Vector&, const RowMatrix& y, RowMatrix& dy, std::vector<char>& ok) const {
    const Index d = d_, dd = d * d;
    RowMatrix zdot(y.rows(), d), pdot(y.rows(), d), jac;
    m_.hamiltonian_jacobian(y.leftCols(d), RowMatrix(y.middleCols(d, d)), zdot, pdot, jac, ok);
    dy.leftCols(d) = zdot;
    dy.middleCols(d, d) = pdot;
    for (Index r = 0; r < y.rows(); ++r) {
      const double* blocks = jac.row(r).data();
      const auto a = detail::ConstMapMatrix(blocks, d, d), b = detail::ConstMapMatrix(blocks + dd, d, d);
      const auto c = detail::ConstMapMatrix(blocks + 2 * dd, d, d), e = detail::ConstMapMatrix(blocks + 3 * dd, d, d);
      const auto phi_z = detail::ConstMapMatrix(y.row(r).data() + 2 * d, d, d);
      const auto phi_p = detail::ConstMapMatrix(y.row(r).data() + 2 * d + dd, d, d);
      detail::MapMatrix(dy.row(r).data() + 2 * d, d, d) = a * phi_z + b * phi_p;
      detail::MapMatrix(dy.row(r).data() + 2 * d + dd, d, d) = c * phi_z + e * phi_p;
    }
  }
};

// The geodesic (z, v) with V vectors transported along it.
template <class Model>
class TransportFlow : public detail::ModelFlow<Model> {
  using Base = detail::ModelFlow<Model>;
  using Base::d_;
  using Base::m_;

 public:
  TransportFlow(const Model& m, Index n_vectors)
      : Base(m, (2 + n_vectors) * m.dim(), (2 + n_vectors) * m.dim()), nv_(n_vectors) {}
  void rhs(const std::vector<Index>&, const Vector&, const RowMatrix& y, RowMatrix& dy, std::vector<char>& ok) const {
    LocalGeometry geo;
    m_.evaluate(y.leftCols(d_), Order::christoffel, geo);
    for (Index r = 0; r < y.rows(); ++r) {
      ok[static_cast<std::size_t>(r)] = geo.ok[static_cast<std::size_t>(r)];
      const auto v = y.row(r).segment(d_, d_);
      const double* gamma = geo.gamma.row(r).data();
      dy.row(r).head(d_) = v;
      detail::minus_christoffel(gamma, d_, v, v, dy.row(r).segment(d_, d_));
      for (Index a = 0; a < nv_; ++a)
        detail::minus_christoffel(gamma, d_, v, y.row(r).segment((2 + a) * d_, d_),
                                  dy.row(r).segment((2 + a) * d_, d_));
    }
  }

 private:
  Index nv_;
};

// The geodesic flow: transport of no vector.
template <class Model>
class GeodesicFlow : public TransportFlow<Model> {
 public:
  explicit GeodesicFlow(const Model& m) : TransportFlow<Model>(m, 0) {}
};

// A curve provider has
//   Index dim() const;
//   void evaluate(const std::vector<Index>& ids, const Vector& t, RowMatrix& z, RowMatrix& v,
//                 std::vector<char>& ok) const;     // gamma(t) and gamma'(t) of curve ids[r] at t(r)
//   double next_break(Index id, double t) const;    // the next time > t where gamma'' jumps (or +inf)
template <class Model, class Curve>
class CurveTransportFlow {
 public:
  CurveTransportFlow(const Model& m, const Curve& c, Index n_vectors) : m_(m), c_(c), d_(m.dim()), nv_(n_vectors) {}
  Index size() const { return nv_ * d_; }
  Index controlled() const { return size(); }
  double next_break(Index id, double t) const { return c_.next_break(id, t); }
  void rhs(const std::vector<Index>& ids, const Vector& t, const RowMatrix& y, RowMatrix& dy,
           std::vector<char>& ok) const {
    RowMatrix z(y.rows(), d_), v(y.rows(), d_);
    c_.evaluate(ids, t, z, v, ok);
    LocalGeometry geo;
    m_.evaluate(z, Order::christoffel, geo);
    for (Index r = 0; r < y.rows(); ++r) {
      ok[static_cast<std::size_t>(r)] = ok[static_cast<std::size_t>(r)] && geo.ok[static_cast<std::size_t>(r)];
      for (Index a = 0; a < nv_; ++a)
        detail::minus_christoffel(geo.gamma.row(r).data(), d_, v.row(r), y.row(r).segment(a * d_, d_),
                                  dy.row(r).segment(a * d_, d_));
    }
  }

 private:
  const Model& m_;
  const Curve& c_;
  Index d_, nv_;
};

// One C^1 cubic Hermite curve per trajectory on [0, 1] through uniform nodes (the discrete
// geodesic solver's curves; tangents by fourth-order differences, as GeodesicResult.curve).
class HermiteCurves {
 public:
  explicit HermiteCurves(std::vector<RowMatrix> nodes) : nodes_(std::move(nodes)) {
    for (const auto& x : nodes_) {
      if (x.rows() < 5) throw std::invalid_argument("curve: need at least 5 nodes per curve");
      RowMatrix m;
      detail::hermite_tangents(x, m);
      tangents_.push_back(std::move(m));
    }
  }
  Index dim() const { return nodes_.empty() ? 0 : nodes_.front().cols(); }
  Index size() const { return static_cast<Index>(nodes_.size()); }

  void evaluate(const std::vector<Index>& ids, const Vector& t, RowMatrix& z, RowMatrix& v,
                std::vector<char>& ok) const {
    for (std::size_t r = 0; r < ids.size(); ++r) {
      const auto& x = nodes_[static_cast<std::size_t>(ids[r])];
      const Index n = x.rows() - 1;
      const double u = std::min(std::max(t(static_cast<Index>(r)), 0.0), 1.0) * static_cast<double>(n);
      const Index i = std::min<Index>(static_cast<Index>(u), n - 1);
      detail::hermite_eval(x, tangents_[static_cast<std::size_t>(ids[r])], i, u - static_cast<double>(i),
                           1.0 / static_cast<double>(n), z.row(static_cast<Index>(r)), v.row(static_cast<Index>(r)));
      ok[r] = 1;
    }
  }

  double next_break(Index id, double t) const {
    const double n = static_cast<double>(nodes_[static_cast<std::size_t>(id)].rows() - 1);
    double k = std::floor(t * n) + 1.0;
    while (k / n <= t) k += 1.0;
    return k / n;
  }

 private:
  std::vector<RowMatrix> nodes_, tangents_;
};

// ------------------------------------------------------------------------------------------------
// Point-wise quantities
// ------------------------------------------------------------------------------------------------
// Gamma at the rows of z (N x d^3, [k, i, j]); ok = 0 outside the domain.
template <class Model>
RowMatrix christoffel(const Model& model, const ConstRowMatrixRef& z, std::vector<char>& ok, const ConnectionOptions& o,
                      int n_threads) {
  LocalGeometry geo = evaluate_points(model, z, Order::christoffel, n_threads, std::max<Index>(64, o.block));
  ok = geo.ok;
  return geo.gamma;
}

// Ricci tensors (N x d^2) and scalar curvatures (N); ok = 0 outside the domain.
template <class Model>
void curvature(const Model& model, const ConstRowMatrixRef& z, RowMatrix& ricci, Vector& scalar, std::vector<char>& ok,
               const ConnectionOptions& o, int n_threads) {
  const Index n = z.rows(), d = model.dim();
  LocalGeometry geo = evaluate_points(model, z, Order::second, n_threads, std::max<Index>(16, o.block));
  ricci.setZero(n, d * d);
  scalar.setZero(n);
  ok = geo.ok;
  parallel_for(
      n, n_threads,
      [&](Index r) {
        Eigen::MatrixXd ginv;
        const auto g = detail::ConstMapMatrix(geo.g.row(r).data(), d, d);
        if (!ok[static_cast<std::size_t>(r)] || !detail::invert_spd(g, ginv)) {
          ok[static_cast<std::size_t>(r)] = 0;
          return;
        }
        scalar(r) = detail::ricci_from(ginv, geo.gamma.row(r).data(), geo.dgamma.row(r).data(), d, ricci.row(r).data());
      },
      256);
}

// ------------------------------------------------------------------------------------------------
// The exponential map
// ------------------------------------------------------------------------------------------------
struct ExpOutput {
  RowMatrix points, velocities;        // B x d at t_end (where a failed trajectory stopped: stats.t)
  RowMatrix curves, curve_velocities;  // B x (T d) at the output times; NaN after a failed trajectory stopped
  Vector speed_drift;                  // |q(end) - q(0)| / q(0), q = v^T G v (0 when v = 0)
  std::vector<OdeStats> stats;
};

namespace detail {

// Absolute tolerances of (z, second block, further blocks of d): z against the coordinate scale
// max(|z0|, |v0| t_end), each other block against its own initial size.
inline RowMatrix tolerances(const RowMatrix& y, const RowMatrix& v, Index d, double t_end, double rtol) {
  RowMatrix atol(y.rows(), y.cols());
  const Index blocks = y.cols() / d;
  for (Index r = 0; r < y.rows(); ++r) {
    atol.row(r).head(d).setConstant(
        rtol * std::max(y.row(r).head(d).cwiseAbs().maxCoeff(), v.row(r).cwiseAbs().maxCoeff() * t_end));
    for (Index b = 1; b < blocks; ++b)
      atol.row(r).segment(b * d, d).setConstant(rtol * y.row(r).segment(b * d, d).cwiseAbs().maxCoeff());
  }
  return atol;
}

// After a failure, output times past the time reached hold NaN.
inline void blank_after_stop(RowMatrix& dense, const std::vector<OdeStats>& stats, const Vector& t_out, Index n) {
  for (Index r = 0; r < dense.rows(); ++r) {
    const auto& s = stats[static_cast<std::size_t>(r)];
    if (s.status == OdeStatus::converged) continue;
    for (Index j = 0; j < t_out.size(); ++j)
      if (t_out(j) > s.t) dense.block(r, j * n, 1, n).setConstant(std::numeric_limits<double>::quiet_NaN());
  }
}

// Velocities G^{-1} p of Hamiltonian states (rows (z, p)); NaN where the evaluation fails.
template <class Model>
RowMatrix hamiltonian_velocities(const Model& model, const RowMatrix& states, int n_threads) {
  const Index n = states.rows(), d = model.dim(), block = 64;
  RowMatrix v(n, d);
  parallel_for(block_count(n, block), n_threads, [&](Index b) {
    const Index first = b * block, m = std::min(block, n - first);
    RowMatrix zdot(m, d), pdot(m, d);
    std::vector<char> ok(static_cast<std::size_t>(m), 1);
    model.hamiltonian(states.block(first, 0, m, d), RowMatrix(states.block(first, d, m, d)), zdot, pdot, ok);
    for (Index r = 0; r < m; ++r)
      v.row(first + r) = (ok[static_cast<std::size_t>(r)] && states.row(first + r).allFinite())
                             ? RowVector(zdot.row(r))
                             : RowVector::Constant(d, std::numeric_limits<double>::quiet_NaN());
  });
  return v;
}

inline double speed(const RowMatrix& g, Index r, const RowVector& v, Index d) {
  return (v * ConstMapMatrix(g.row(r).data(), d, d)).dot(v);
}

inline ConnectionStatus as_status(OdeStatus s) { return static_cast<ConnectionStatus>(static_cast<int>(s)); }

}  // namespace detail

// gamma(t_end) and gamma'(t_end) of the geodesics gamma(0) = z_b, gamma'(0) = v_b, and with t_out
// (increasing, in [0, t_end]) the curves and velocities at those times. Models with a Hamiltonian
// flow integrate (z, p = G v), the others (z, v).
template <class Model>
ExpOutput exp_map(const Model& model, const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, double t_end,
                  const Vector& t_out, const ConnectionOptions& o, int n_threads) {
  const Index b = z.rows(), d = model.dim(), n_out = t_out.size();
  constexpr bool hamiltonian = detail::has_hamiltonian<Model>::value;
  ExpOutput out;
  const Index block = std::max<Index>(64, o.block);
  const LocalGeometry start = evaluate_points(model, z, Order::metric, n_threads, block);
  RowMatrix y(b, 2 * d);
  Vector q0(b);
  for (Index r = 0; r < b; ++r) {
    const RowVector vr = v.row(r);
    y.row(r).head(d) = z.row(r);
    if (hamiltonian)
      y.row(r).tail(d) = vr * detail::ConstMapMatrix(start.g.row(r).data(), d, d);  // p = G v (G symmetric)
    else
      y.row(r).tail(d) = vr;
    q0(r) = detail::speed(start.g, r, vr, d);
  }
  const RowMatrix atol = detail::tolerances(y, RowMatrix(v), d, t_end, o.rtol);
  RowMatrix dense;
  RowMatrix* dense_ptr = n_out > 0 ? &dense : nullptr;
  using Flow = std::conditional_t<hamiltonian, HamiltonianFlow<Model>, GeodesicFlow<Model>>;
  const Flow flow(model);
  out.stats = integrate(flow, y, atol, t_end, t_out, dense_ptr, o.ode(), n_threads);
  for (Index r = 0; r < b; ++r)  // a start outside the domain never moved
    if (!start.ok[static_cast<std::size_t>(r)]) out.stats[static_cast<std::size_t>(r)].status = OdeStatus::domain_exit;
  out.points = y.leftCols(d);
  out.speed_drift.resize(b);
  if constexpr (hamiltonian) {
    out.velocities = detail::hamiltonian_velocities(model, y, n_threads);
    for (Index r = 0; r < b; ++r) {
      const double q1 = y.row(r).tail(d).dot(out.velocities.row(r));
      out.speed_drift(r) = q0(r) > 0.0 ? std::abs(q1 - q0(r)) / q0(r) : 0.0;
    }
  } else {
    out.velocities = y.rightCols(d);
    const LocalGeometry end = evaluate_points(model, out.points, Order::metric, n_threads, block);
    for (Index r = 0; r < b; ++r) {
      const double q1 = detail::speed(end.g, r, out.velocities.row(r), d);
      out.speed_drift(r) = q0(r) > 0.0 ? std::abs(q1 - q0(r)) / q0(r) : 0.0;
    }
  }
  if (n_out > 0) {
    detail::blank_after_stop(dense, out.stats, t_out, 2 * d);
    const RowMatrix states = Eigen::Map<const RowMatrix>(dense.data(), b * n_out, 2 * d);
    RowMatrix vel;
    if constexpr (hamiltonian)
      vel = detail::hamiltonian_velocities(model, states, n_threads);
    else
      vel = states.rightCols(d);
    const RowMatrix pos = states.leftCols(d);
    out.curves = Eigen::Map<const RowMatrix>(pos.data(), b, n_out * d);
    out.curve_velocities = Eigen::Map<const RowMatrix>(vel.data(), b, n_out * d);
  }
  return out;
}

// Endpoint Jacobians d exp(z, v)(1) / dv (B x d^2, row-major d x d) from the variational equations
// (with `endpoints`, also exp(z, v)(1) of this integration): in Hamiltonian form when the model has
// hamiltonian_jacobian() (then d z(1)/dv = d z(1)/dp0 G(z0)), else from Gamma and dGamma.
template <class Model>
RowMatrix exp_jacobians(const Model& model, const ConstRowMatrixRef& z, const ConstRowMatrixRef& v,
                        const ConnectionOptions& o, std::vector<OdeStats>& stats, int n_threads,
                        RowMatrix* endpoints = nullptr) {
  constexpr bool hamiltonian = detail::has_hamiltonian_jacobian<Model>::value;
  const Index b = z.rows(), d = model.dim(), dd = d * d;
  RowMatrix y = RowMatrix::Zero(b, 2 * d + 2 * dd);
  LocalGeometry start;
  if (hamiltonian) start = evaluate_points(model, z, Order::metric, n_threads, std::max<Index>(64, o.block));
  for (Index r = 0; r < b; ++r) {
    y.row(r).head(d) = z.row(r);
    if (hamiltonian)
      y.row(r).segment(d, d) = v.row(r) * detail::ConstMapMatrix(start.g.row(r).data(), d, d);
    else
      y.row(r).segment(d, d) = v.row(r);
    for (Index i = 0; i < d; ++i) y(r, 2 * d + dd + i * d + i) = 1.0;  // d(v or p)/d(v0 or p0) = I
  }
  RowMatrix atol = detail::tolerances(y.leftCols(2 * d), RowMatrix(v), d, 1.0, o.rtol);
  atol.conservativeResize(b, y.cols());
  atol.rightCols(2 * dd).setZero();
  using Flow = std::conditional_t<hamiltonian, HamiltonianVariationalFlow<Model>, VariationalFlow<Model>>;
  const Flow flow(model);
  stats = integrate(flow, y, atol, 1.0, Vector(0), nullptr, o.ode(), n_threads);
  if (endpoints) *endpoints = y.leftCols(d);
  RowMatrix jac = y.middleCols(2 * d, dd);
  if (hamiltonian)
    for (Index r = 0; r < b; ++r)
      detail::MapMatrix(jac.row(r).data(), d, d) =
          (detail::ConstMapMatrix(jac.row(r).data(), d, d) * detail::ConstMapMatrix(start.g.row(r).data(), d, d))
              .eval();
  return jac;
}

// ------------------------------------------------------------------------------------------------
// The logarithmic map: damped Newton shooting
// ------------------------------------------------------------------------------------------------
struct ShootingOutput {
  RowMatrix vectors;        // B x d
  Vector residual;          // |exp(z0, v)(1) - z1| (Euclidean)
  std::vector<int> status;  // ConnectionStatus
  std::vector<int> n_iter;  // accepted Newton steps
};

namespace detail {

// A pair's shooting has two stages. Coarse: each trial integrates the variational equations at
// jacobian_rtol, which gives the endpoint and its Jacobian together, and Newton runs on that cheap
// flow until its residual reaches the flow's own accuracy. Fine: trials integrate the geodesic
// alone at rtol (the flow of exp_map) and Newton takes chord steps with the last Jacobian,
// recomputed (at jacobian_rtol) when the residual stops falling 4x per step. A step that does not
// reduce the residual by the Armijo factor is halved down to 1/64.
enum class Stage { coarse, fine, done };

struct ShootingPair {
  Stage stage = Stage::coarse;
  RowVector v, trial, r, step;
  double norm = 0.0, threshold = 0.0, switch_at = 0.0, alpha = 1.0;
  bool has_base = false;       // `norm` is the residual at v in the current stage
  bool need_jacobian = false;  // fine stage: recompute the Jacobian at v first
  bool fresh = false;          // the Jacobian was computed at v
  Eigen::PartialPivLU<Eigen::MatrixXd> lu;
};

inline RowMatrix take_rows(const ConstRowMatrixRef& a, const std::vector<Index>& rows) {
  RowMatrix out(static_cast<Index>(rows.size()), a.cols());
  for (std::size_t i = 0; i < rows.size(); ++i) out.row(static_cast<Index>(i)) = a.row(rows[i]);
  return out;
}

// Newton's next trial from v with the current factorised Jacobian.
inline void newton_step(ShootingPair& p) {
  p.step = p.lu.solve(p.r.transpose()).transpose();
  p.alpha = 1.0;
  p.trial = p.v + p.step;
}

}  // namespace detail

// v with exp(z0_b, v)(1) = z1_b for each pair, from the initial guesses v_init (e.g. the tangent
// of a discrete geodesic). Pairs run in lockstep: each round is at most one batched integration of
// the variational equations and one of the geodesics.
template <class Model>
ShootingOutput shoot(const Model& model, const ConstRowMatrixRef& z0, const ConstRowMatrixRef& z1,
                     const ConstRowMatrixRef& v_init, const ConnectionOptions& o, int n_threads) {
  using detail::Stage;
  const Index b = z0.rows(), d = model.dim();
  ConnectionOptions coarse = o;
  coarse.rtol = std::max(o.rtol, o.jacobian_rtol);
  ShootingOutput out;
  out.vectors = v_init;
  out.residual.setZero(b);
  out.status.assign(static_cast<std::size_t>(b), static_cast<int>(ConnectionStatus::converged));
  out.n_iter.assign(static_cast<std::size_t>(b), 0);
  std::vector<detail::ShootingPair> pairs(static_cast<std::size_t>(b));
  auto finish = [&](Index i, ConnectionStatus s) {
    auto& p = pairs[static_cast<std::size_t>(i)];
    p.stage = Stage::done;
    out.status[static_cast<std::size_t>(i)] = static_cast<int>(s);
    out.vectors.row(i) = p.v;
    out.residual(i) = p.norm;
  };
  for (Index i = 0; i < b; ++i) {
    auto& p = pairs[static_cast<std::size_t>(i)];
    const double scale = std::max({z0.row(i).cwiseAbs().maxCoeff(), z1.row(i).cwiseAbs().maxCoeff(),
                                   (z1.row(i) - z0.row(i)).cwiseAbs().maxCoeff()});
    p.threshold = o.tol * scale;
    p.switch_at = std::max(p.threshold, 10.0 * coarse.rtol * scale);
    p.v = p.trial = v_init.row(i);
    if (z0.row(i) == z1.row(i)) {
      p.v.setZero();
      finish(i, ConnectionStatus::converged);
    }
  }
  auto to_fine = [&](detail::ShootingPair& p) {
    p.stage = Stage::fine;
    p.has_base = false;
    p.trial = p.v;
  };
  // A failed or insufficient trial: a shorter step, or the end of what damping can do.
  auto reject = [&](Index i, bool on_failure_refresh) {
    auto& p = pairs[static_cast<std::size_t>(i)];
    p.alpha *= 0.5;
    if (p.alpha >= 1.0 / 64.0) {
      p.trial = p.v + p.alpha * p.step;
    } else if (p.stage == Stage::coarse) {
      to_fine(p);  // the coarse flow's accuracy is reached
    } else if (on_failure_refresh && !p.fresh) {
      p.need_jacobian = true;
    } else {
      finish(i, ConnectionStatus::no_progress);
    }
  };
  const Index max_rounds = 10 * (o.max_iter + 4);
  for (Index round = 0; round < max_rounds; ++round) {
    std::vector<Index> var_rows, plain_rows;
    for (Index i = 0; i < b; ++i) {
      const auto& p = pairs[static_cast<std::size_t>(i)];
      if (p.stage == Stage::coarse || (p.stage == Stage::fine && p.need_jacobian))
        var_rows.push_back(i);
      else if (p.stage == Stage::fine)
        plain_rows.push_back(i);
    }
    if (var_rows.empty() && plain_rows.empty()) break;
    auto at = [&](const std::vector<Index>& rows) {
      RowMatrix v(static_cast<Index>(rows.size()), d);
      for (std::size_t k = 0; k < rows.size(); ++k) {
        const auto& p = pairs[static_cast<std::size_t>(rows[k])];
        v.row(static_cast<Index>(k)) = p.stage == Stage::fine && p.need_jacobian ? p.v : p.trial;
      }
      return v;
    };
    if (!var_rows.empty()) {
      std::vector<OdeStats> stats;
      RowMatrix ends;
      const RowMatrix jac =
          exp_jacobians(model, detail::take_rows(z0, var_rows), at(var_rows), coarse, stats, n_threads, &ends);
      for (std::size_t k = 0; k < var_rows.size(); ++k) {
        const Index i = var_rows[k];
        auto& p = pairs[static_cast<std::size_t>(i)];
        const bool ok = stats[k].status == OdeStatus::converged;
        const bool jacobian_only = p.stage == Stage::fine;
        if (!ok && (jacobian_only || !p.has_base)) {
          finish(i, detail::as_status(stats[k].status));
          continue;
        }
        const RowVector r = ok ? RowVector(z1.row(i) - ends.row(static_cast<Index>(k))) : RowVector();
        const double norm = ok ? r.norm() : 0.0;
        if (!jacobian_only && (!ok || (p.has_base && !(norm <= (1.0 - kArmijo * p.alpha) * p.norm)))) {
          reject(i, false);
          continue;
        }
        p.lu.compute(detail::ConstMapMatrix(jac.row(static_cast<Index>(k)).data(), d, d));
        if (!(p.lu.rcond() > 1e-13)) {
          finish(i, ConnectionStatus::singular_jacobian);
          continue;
        }
        p.fresh = true;
        p.need_jacobian = false;
        if (!jacobian_only) {
          if (p.has_base) ++out.n_iter[static_cast<std::size_t>(i)];
          p.v = p.trial;
          p.r = r;
          p.norm = norm;
          p.has_base = true;
          if (p.norm <= p.switch_at) {
            to_fine(p);
            continue;
          }
          if (out.n_iter[static_cast<std::size_t>(i)] >= o.max_iter) {
            finish(i, ConnectionStatus::max_iter);
            continue;
          }
        }
        detail::newton_step(p);
      }
    }
    if (!plain_rows.empty()) {
      const ExpOutput e =
          exp_map(model, detail::take_rows(z0, plain_rows), at(plain_rows), 1.0, Vector(0), o, n_threads);
      for (std::size_t k = 0; k < plain_rows.size(); ++k) {
        const Index i = plain_rows[k];
        auto& p = pairs[static_cast<std::size_t>(i)];
        const bool ok = e.stats[k].status == OdeStatus::converged;
        if (!ok && !p.has_base) {
          finish(i, detail::as_status(e.stats[k].status));
          continue;
        }
        const RowVector r = ok ? RowVector(z1.row(i) - e.points.row(static_cast<Index>(k))) : RowVector();
        const double norm = ok ? r.norm() : 0.0;
        if (!ok || (p.has_base && !(norm <= (1.0 - kArmijo * p.alpha) * p.norm))) {
          reject(i, true);
          continue;
        }
        const double ratio = p.has_base ? norm / p.norm : 0.0;
        if (p.has_base) {
          ++out.n_iter[static_cast<std::size_t>(i)];
          p.fresh = false;
        }
        p.v = p.trial;
        p.r = r;
        p.norm = norm;
        p.has_base = true;
        if (p.norm <= p.threshold) {
          finish(i, ConnectionStatus::converged);
        } else if (out.n_iter[static_cast<std::size_t>(i)] >= o.max_iter) {
          finish(i, ConnectionStatus::max_iter);
        } else if (ratio > 0.25) {
          p.need_jacobian = true;
        } else {
          detail::newton_step(p);
        }
      }
    }
  }
  for (Index i = 0; i < b; ++i)
    if (pairs[static_cast<std::size_t>(i)].stage != Stage::done) finish(i, ConnectionStatus::max_iter);
  return out;
}

// ------------------------------------------------------------------------------------------------
// Parallel transport
// ------------------------------------------------------------------------------------------------
struct TransportOutput {
  RowMatrix vectors;  // B x (V d) at t_end (where a failed trajectory stopped)
  RowMatrix along;    // B x (T V d) at the output times (NaN after a failed trajectory stopped)
  RowMatrix points;   // B x d: the curve's point at t_end (geodesics only)
  std::vector<OdeStats> stats;
};

// Vectors w (B x V d, V vectors per geodesic) transported along the geodesics from (z, v).
template <class Model>
TransportOutput transport_geodesic(const Model& model, const ConstRowMatrixRef& z, const ConstRowMatrixRef& v,
                                   const ConstRowMatrixRef& w, double t_end, const Vector& t_out,
                                   const ConnectionOptions& o, int n_threads) {
  const Index b = z.rows(), d = model.dim(), nv = w.cols() / d, n_out = t_out.size();
  RowMatrix y(b, (2 + nv) * d);
  y << z, v, w;
  const RowMatrix atol = detail::tolerances(y, RowMatrix(v), d, t_end, o.rtol);
  RowMatrix dense;
  const TransportFlow<Model> flow(model, nv);
  TransportOutput out;
  out.stats = integrate(flow, y, atol, t_end, t_out, n_out > 0 ? &dense : nullptr, o.ode(), n_threads);
  out.vectors = y.rightCols(nv * d);
  out.points = y.leftCols(d);
  if (n_out > 0) {
    detail::blank_after_stop(dense, out.stats, t_out, y.cols());
    out.along.resize(b, n_out * nv * d);
    for (Index j = 0; j < n_out; ++j)
      out.along.middleCols(j * nv * d, nv * d) = dense.middleCols(j * y.cols() + 2 * d, nv * d);
  }
  return out;
}

// Vectors w (B x V d) transported along B curves of a provider on [0, t_end].
template <class Model, class Curve>
TransportOutput transport_curve(const Model& model, const Curve& curve, const ConstRowMatrixRef& w, double t_end,
                                const Vector& t_out, const ConnectionOptions& o, int n_threads) {
  const Index d = model.dim(), nv = w.cols() / d;
  RowMatrix y = w;
  const RowMatrix atol = detail::tolerances(y, RowMatrix::Zero(y.rows(), d), d, t_end, o.rtol);
  TransportOutput out;
  const CurveTransportFlow<Model, Curve> flow(model, curve, nv);
  out.stats = integrate(flow, y, atol, t_end, t_out, t_out.size() > 0 ? &out.along : nullptr, o.ode(), n_threads);
  if (t_out.size() > 0) detail::blank_after_stop(out.along, out.stats, t_out, y.cols());
  out.vectors = y;
  return out;
}

}  // namespace latentgeo
