// The Dormand-Prince integrator and the connection against closed forms.
#include <doctest/doctest.h>

#include <cmath>

#include "latentgeo/connection/connection.hpp"
#include "latentgeo/metrics/rhvae.hpp"

using namespace latentgeo;

namespace {

// x'' = -w^2 x per trajectory (w = 1 + id), state (x, v); the trajectory with id 3 fails for t > 0.5.
struct Oscillator {
  Index size() const { return 2; }
  Index controlled() const { return 2; }
  double next_break(Index, double) const { return std::numeric_limits<double>::infinity(); }
  void rhs(const std::vector<Index>& ids, const Vector& t, const RowMatrix& y, RowMatrix& dy,
           std::vector<char>& ok) const {
    for (Index r = 0; r < y.rows(); ++r) {
      const double w = 1.0 + static_cast<double>(ids[static_cast<std::size_t>(r)]);
      dy(r, 0) = y(r, 1);
      dy(r, 1) = -w * w * y(r, 0);
      if (ids[static_cast<std::size_t>(r)] == 3 && t(r) > 0.5) ok[static_cast<std::size_t>(r)] = 0;
    }
  }
};

// G = I / y^2 with its closed-form metric, Christoffel symbols and their derivatives.
struct PoincareModel {
  Index dim() const { return 2; }
  void evaluate(const ConstRowMatrixRef& z, Order order, LocalGeometry& out) const {
    out.resize(z.rows(), 2, order);
    for (Index r = 0; r < z.rows(); ++r) {
      const double y = z(r, 1);
      out.g.row(r) << 1 / (y * y), 0, 0, 1 / (y * y);
      if (order == Order::metric) continue;
      out.gamma.row(r).setZero();
      // [k, i, j]: G^x_xy = G^x_yx = -1/y, G^y_xx = 1/y, G^y_yy = -1/y
      out.gamma(r, 1) = out.gamma(r, 2) = -1 / y;
      out.gamma(r, 4) = 1 / y;
      out.gamma(r, 7) = -1 / y;
      if (order != Order::second) continue;
      out.dgamma.row(r).setZero();  // [k, i, j, m]: only d/dy (m = 1) is non-zero
      for (Index e = 0; e < 8; ++e) out.dgamma(r, e * 2 + 1) = -out.gamma(r, e) / y;
    }
  }
};

// The unit sphere in stereographic coordinates as a source of G and dG (the finite-difference path).
struct SphereSource {
  Index dim() const { return 2; }
  void operator()(const ConstRowMatrixRef& z, bool want_derivative, RowMatrix& g, RowMatrix& dg,
                  std::vector<char>&) const {
    g.setZero(z.rows(), 4);
    dg.setZero(z.rows(), 8);
    for (Index r = 0; r < z.rows(); ++r) {
      const double s = 1 + z.row(r).squaredNorm();
      g(r, 0) = g(r, 3) = 4 / (s * s);
      if (!want_derivative) continue;
      for (Index a = 0; a < 2; ++a)
        for (Index k = 0; k < 2; ++k) dg(r, (a * 2 + a) * 2 + k) = -16 * z(r, k) / (s * s * s);
    }
  }
};

RowMatrix rows(std::initializer_list<std::initializer_list<double>> values) {
  RowMatrix m(static_cast<Index>(values.size()), static_cast<Index>(values.begin()->size()));
  Index i = 0;
  for (const auto& row : values) {
    Index j = 0;
    for (double v : row) m(i, j++) = v;
    ++i;
  }
  return m;
}

RHVAEKernel random_rhvae(Index d, Index k, unsigned seed) {
  std::srand(seed);
  const RowMatrix c = RowMatrix::Random(k, d);
  RowMatrix packed(k, packed_size(d));
  for (Index i = 0; i < k; ++i) {
    Eigen::MatrixXd l = Eigen::MatrixXd::Random(d, d).triangularView<Eigen::Lower>();
    l.diagonal().array() = l.diagonal().array().abs() + 0.3;
    pack_symmetric(Eigen::MatrixXd(l * l.transpose()), packed.row(i));
  }
  return RHVAEKernel(c, packed, 0.8, 0.05, 1.0);
}

}  // namespace

TEST_CASE("Dormand-Prince: oscillators with their own steps, dense output, a failure of its own") {
  const Oscillator sys;
  RowMatrix y(4, 2);
  y.col(0).setOnes();
  y.col(1).setZero();
  const RowMatrix atol = RowMatrix::Constant(4, 2, 1e-12);
  Vector t_out(3);
  t_out << 0.0, 0.3, 0.9;
  RowMatrix dense;
  OdeOptions o;
  o.rtol = 1e-11;
  const auto stats = integrate(sys, y, atol, 1.0, t_out, &dense, o, 1);
  for (Index r = 0; r < 3; ++r) {
    const double w = 1.0 + static_cast<double>(r);
    CHECK(stats[static_cast<std::size_t>(r)].status == OdeStatus::converged);
    CHECK(std::abs(y(r, 0) - std::cos(w)) < 1e-9);
    CHECK(std::abs(y(r, 1) + w * std::sin(w)) < 1e-9 * w);
    for (Index j = 0; j < t_out.size(); ++j) CHECK(std::abs(dense(r, 2 * j) - std::cos(w * t_out(j))) < 1e-9);
  }
  CHECK(stats[0].n_steps < stats[2].n_steps);  // each trajectory has its own step size
  CHECK(stats[3].status == OdeStatus::domain_exit);
  CHECK(stats[3].t <= 0.5);
  // A trajectory's result does not depend on the others in its block.
  RowMatrix alone = RowMatrix::Ones(1, 2);
  alone(0, 1) = 0.0;
  Oscillator single;
  integrate(single, alone, atol.topRows(1), 1.0, Vector(0), nullptr, o, 1);
  CHECK(alone(0, 0) == y(0, 0));
}

TEST_CASE("Poincare half-plane: exp along a semicircle, log by shooting, curvature -1") {
  const PoincareModel model;
  const RowMatrix z = rows({{0.0, 1.0}, {0.3, 2.0}});
  const RowMatrix v = rows({{1.0, 0.0}, {0.0, 1.0}});
  const ConnectionOptions o;
  const ExpOutput e = exp_map(model, z, v, 1.0, Vector(0), o, 1);
  CHECK(std::abs(e.points(0, 0) - std::tanh(1.0)) < 1e-9);
  CHECK(std::abs(e.points(0, 1) - 1.0 / std::cosh(1.0)) < 1e-9);
  CHECK(std::abs(e.points(1, 1) - 2.0 * std::exp(0.5)) < 1e-8);
  CHECK(e.speed_drift.maxCoeff() < 1e-9);

  const RowMatrix z1 = e.points;
  const RowMatrix guess = v * 1.1;
  const ShootingOutput s = shoot(model, z, z1, guess, o, 1);
  for (Index i = 0; i < 2; ++i) {
    CHECK(s.status[static_cast<std::size_t>(i)] == static_cast<int>(ConnectionStatus::converged));
    CHECK((s.vectors.row(i) - v.row(i)).norm() < 1e-8);
  }

  RowMatrix ricci;
  Vector scalar;
  std::vector<char> ok;
  curvature(model, z, ricci, scalar, ok, ConnectionOptions{}, 1);
  CHECK(scalar(0) == doctest::Approx(-2.0).epsilon(1e-12));
  CHECK(scalar(1) == doctest::Approx(-2.0).epsilon(1e-12));
}

TEST_CASE("sphere through central differences of Gamma: K = +1, transport keeps the G-norm") {
  const MetricSourceModel<SphereSource> model(SphereSource{}, 1e-3);
  const RowMatrix z = rows({{0.2, -0.4}, {1.5, 0.7}});
  RowMatrix ricci;
  Vector scalar;
  std::vector<char> ok;
  curvature(model, z, ricci, scalar, ok, ConnectionOptions{}, 1);
  CHECK(std::abs(scalar(0) - 2.0) < 1e-8);
  CHECK(std::abs(scalar(1) - 2.0) < 1e-8);
  const RowMatrix v = rows({{1.0, 0.5}, {-0.3, 0.2}});
  const RowMatrix w = rows({{0.3, 0.7}, {1.0, 0.0}});
  const TransportOutput t = transport_geodesic(model, z, v, w, 1.0, Vector(0), ConnectionOptions{}, 1);
  for (Index r = 0; r < 2; ++r) {
    const double s0 = 1 + z.row(r).squaredNorm(), s1 = 1 + t.points.row(r).squaredNorm();
    const double before = 4 / (s0 * s0) * w.row(r).squaredNorm(),
                 after = 4 / (s1 * s1) * t.vectors.row(r).squaredNorm();
    CHECK(after == doctest::Approx(before).epsilon(1e-9));
  }
}

TEST_CASE("RHVAE model: analytic Gamma and dGamma match central differences, Hamiltonian = Lagrangian flow") {
  const RHVAEKernel kernel = random_rhvae(3, 6, 3);
  const KernelModel<RHVAEKernel> model(kernel, 1e-3);
  const RowMatrix z = RowMatrix::Random(3, 3) * 0.7;
  LocalGeometry geo;
  model.evaluate(z, Order::second, geo);
  const double h = 1e-5;
  RowMatrix dg(3, 27);  // [a, b, k] by central differences of G
  for (Index m = 0; m < 3; ++m) {
    RowMatrix ahead = z, behind = z;
    ahead.col(m).array() += h;
    behind.col(m).array() -= h;
    LocalGeometry ga, gb;
    model.evaluate(ahead, Order::christoffel, ga);
    model.evaluate(behind, Order::christoffel, gb);
    for (Index r = 0; r < 3; ++r) {
      for (Index ab = 0; ab < 9; ++ab) dg(r, ab * 3 + m) = (ga.g(r, ab) - gb.g(r, ab)) / (2 * h);
      const double scale = geo.dgamma.row(r).cwiseAbs().maxCoeff();
      for (Index e = 0; e < 27; ++e)
        CHECK(std::abs(geo.dgamma(r, e * 3 + m) - (ga.gamma(r, e) - gb.gamma(r, e)) / (2 * h)) < 1e-6 * scale);
    }
  }
  for (Index r = 0; r < 3; ++r) {
    CHECK(geo.ok[static_cast<std::size_t>(r)]);
    Eigen::MatrixXd ginv;
    REQUIRE(detail::invert_spd(detail::ConstMapMatrix(geo.g.row(r).data(), 3, 3), ginv));
    RowVector reference(27);
    detail::christoffel_from(ginv, dg.row(r).data(), 3, reference.data());
    CHECK((geo.gamma.row(r) - reference).cwiseAbs().maxCoeff() < 1e-7 * reference.cwiseAbs().maxCoeff());
  }
  const RowMatrix v = RowMatrix::Random(3, 3);
  ConnectionOptions o;
  const ExpOutput hamiltonian = exp_map(model, z, v, 1.0, Vector(0), o, 1);
  RowMatrix y(3, 6);
  y << z, v;
  const GeodesicFlow<KernelModel<RHVAEKernel>> lagrangian(model);
  const RowMatrix atol = RowMatrix::Constant(3, 6, 1e-12);
  integrate(lagrangian, y, atol, 1.0, Vector(0), nullptr, o.ode(), 1);
  CHECK((hamiltonian.points - y.leftCols(3)).cwiseAbs().maxCoeff() < 1e-8);
  CHECK((hamiltonian.velocities - y.rightCols(3)).cwiseAbs().maxCoeff() < 1e-8);
}

TEST_CASE("Hermite curves: breaks at the nodes, positions and velocities of the interpolant") {
  RowMatrix nodes(9, 1);
  for (Index i = 0; i < 9; ++i) nodes(i, 0) = std::pow(i / 8.0, 2);
  const HermiteCurves curves({nodes});
  CHECK(curves.next_break(0, 0.0) == doctest::Approx(0.125));
  CHECK(curves.next_break(0, 0.125) == doctest::Approx(0.25));
  CHECK(curves.next_break(0, 0.2) == doctest::Approx(0.25));
  RowMatrix z(1, 1), v(1, 1);
  std::vector<char> ok(1, 0);
  Vector t(1);
  t << 0.3;
  curves.evaluate({0}, t, z, v, ok);
  CHECK(ok[0]);
  CHECK(z(0, 0) == doctest::Approx(0.09).epsilon(1e-12));  // t^2 is reproduced by the cubic interpolant
  CHECK(v(0, 0) == doctest::Approx(0.6).epsilon(1e-12));
}

TEST_CASE("RHVAE model: the Hamiltonian Jacobian and the endpoint Jacobians match central differences") {
  for (const Index d : {3, 5}) {  // the fused (d <= 3) and the blocked (d >= 4) sums
    CAPTURE(d);
    const RHVAEKernel kd = random_rhvae(d, 7, 5);
    const KernelModel<RHVAEKernel> md(kd, 1e-3);
    const RowMatrix z = RowMatrix::Random(2, d) * 0.6, p = RowMatrix::Random(2, d);
    RowMatrix zdot(2, d), pdot(2, d), jac;
    std::vector<char> ok(2, 1);
    md.hamiltonian_jacobian(z, p, zdot, pdot, jac, ok);
    const double h = 1e-6;
    for (Index r = 0; r < 2; ++r)
      for (Index m = 0; m < 2 * d; ++m) {  // d/dz_m (m < d) and d/dp_{m-d}
        RowMatrix za = z.row(r), zb = z.row(r), pa = p.row(r), pb = p.row(r);
        (m < d ? za : pa)(0, m % d) += h;
        (m < d ? zb : pb)(0, m % d) -= h;
        RowMatrix fa(1, d), ga(1, d), fb(1, d), gb(1, d);
        std::vector<char> flag(1, 1);
        md.hamiltonian(za, pa, fa, ga, flag);
        md.hamiltonian(zb, pb, fb, gb, flag);
        const Index zdot_block = m < d ? 0 : 1, pdot_block = m < d ? 2 : 3;
        for (Index k = 0; k < d; ++k) {
          CHECK(jac(r, zdot_block * d * d + k * d + m % d) ==
                doctest::Approx((fa(0, k) - fb(0, k)) / (2 * h)).epsilon(1e-6));
          CHECK(jac(r, pdot_block * d * d + k * d + m % d) ==
                doctest::Approx((ga(0, k) - gb(0, k)) / (2 * h)).epsilon(1e-6));
        }
      }
  }
  const RHVAEKernel kernel = random_rhvae(3, 7, 5);
  const KernelModel<RHVAEKernel> model(kernel, 1e-3);
  const RowMatrix z = RowMatrix::Random(2, 3) * 0.6;
  // d exp(z, v)(1) / dv, Hamiltonian and Lagrangian variational equations, against exp_map differences
  const MetricSourceModel<SphereSource> sphere(SphereSource{}, 1e-3);
  const RowMatrix v = RowMatrix::Random(2, 3) * 0.5, v2 = RowMatrix::Random(2, 2) * 0.5, z2 = RowMatrix::Random(2, 2);
  ConnectionOptions o;
  std::vector<OdeStats> stats;
  const RowMatrix j_rhvae = exp_jacobians(model, z, v, o, stats, 1);
  const RowMatrix j_sphere = exp_jacobians(sphere, z2, v2, o, stats, 1);
  const double hv = 1e-5;
  for (Index c = 0; c < 3; ++c) {
    RowMatrix va = v, vb = v;
    va.col(c).array() += hv;
    vb.col(c).array() -= hv;
    const RowMatrix diff =
        (exp_map(model, z, va, 1.0, Vector(0), o, 1).points - exp_map(model, z, vb, 1.0, Vector(0), o, 1).points) /
        (2 * hv);
    for (Index r = 0; r < 2; ++r)
      for (Index k = 0; k < 3; ++k) CHECK(j_rhvae(r, k * 3 + c) == doctest::Approx(diff(r, k)).epsilon(1e-5));
    if (c == 2) break;
    RowMatrix wa = v2, wb = v2;
    wa.col(c).array() += hv;
    wb.col(c).array() -= hv;
    const RowMatrix diff2 =
        (exp_map(sphere, z2, wa, 1.0, Vector(0), o, 1).points - exp_map(sphere, z2, wb, 1.0, Vector(0), o, 1).points) /
        (2 * hv);
    for (Index r = 0; r < 2; ++r)
      for (Index k = 0; k < 2; ++k) CHECK(j_sphere(r, k * 2 + c) == doctest::Approx(diff2(r, k)).epsilon(1e-5));
  }
}
