// Samplers: the per-path streams, Brownian motion on a constant metric, HMC on a known density,
// the RHVAE volume jet against finite differences, thread independence.
#include <doctest/doctest.h>

#include <cmath>

#include "latentgeo/metrics/rhvae.hpp"
#include "latentgeo/statistics/statistics.hpp"

using namespace latentgeo;

namespace {

// G = A constant: G^{-1} = A^{-1}, no drift.
struct ConstantDiffusion {
  Eigen::Matrix2d ainv;
  Index dim() const { return 2; }
  void evaluate(const ConstRowMatrixRef& z, RowMatrix& ginv, RowMatrix& drift, std::vector<char>& ok, int) const {
    ginv.resize(z.rows(), 4);
    for (Index i = 0; i < z.rows(); ++i)
      for (Index e = 0; e < 4; ++e) ginv(i, e) = ainv(e / 2, e % 2);
    drift.setZero(z.rows(), 2);
    ok.assign(static_cast<std::size_t>(z.rows()), 1);
  }
};

// Points with x > limit are outside the domain.
struct WalledDiffusion : ConstantDiffusion {
  double limit;
  void evaluate(const ConstRowMatrixRef& z, RowMatrix& ginv, RowMatrix& drift, std::vector<char>& ok, int t) const {
    ConstantDiffusion::evaluate(z, ginv, drift, ok, t);
    for (Index i = 0; i < z.rows(); ++i) ok[static_cast<std::size_t>(i)] = z(i, 0) <= limit;
  }
};

// log p = -y (exponential in y, uniform in x) on the box; the mean of y on [0, 2] is known.
struct ExponentialTarget {
  Index dim() const { return 2; }
  void evaluate(const ConstRowMatrixRef& z, Vector& logp, RowMatrix& grad, std::vector<char>& ok, int) const {
    logp = -z.col(1);
    grad.resize(z.rows(), 2);
    grad.col(0).setZero();
    grad.col(1).setConstant(-1.0);
    ok.assign(static_cast<std::size_t>(z.rows()), 1);
  }
};

RHVAEKernel small_kernel() {
  RowMatrix c(3, 2);
  c << 0, 0, 1, 1, -1, 0.5;
  RowMatrix m(3, 3);
  m << 1.0, 0.5, 4.25, 0.25, -0.5, 2.0, 2.0, 0.3, 1.0;
  return RHVAEKernel(c, m, 0.8, 0.05, 1.0);
}

}  // namespace

TEST_CASE("streams: reproducible, distinct, standard normal moments") {
  StreamRng a(7, 3), b(7, 3), c(7, 4), d(8, 3);
  for (int i = 0; i < 10; ++i) {
    const std::uint64_t x = a.next();
    CHECK(x == b.next());
    CHECK(x != c.next());
    CHECK(x != d.next());
  }
  StreamRng r(1, 0);
  const int n = 200000;
  double s1 = 0, s2 = 0, s4 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = r.normal();
    s1 += x;
    s2 += x * x;
    s4 += x * x * x * x;
  }
  // standard errors: mean 1/sqrt(n), variance sqrt(2/n), 4th moment sqrt(96/n); 5 sigma
  CHECK(std::fabs(s1 / n) < 5.0 / std::sqrt(n));
  CHECK(std::fabs(s2 / n - 1.0) < 5.0 * std::sqrt(2.0 / n));
  CHECK(std::fabs(s4 / n - 3.0) < 5.0 * std::sqrt(96.0 / n));
}

TEST_CASE("Brownian motion on a constant metric: covariance t A^{-1}, independent of threads") {
  Eigen::Matrix2d a;
  a << 2.0, 0.5, 0.5, 1.0;
  const ConstantDiffusion geo{a.inverse()};
  const Index paths = 4000, steps = 20;
  RowMatrix z0 = RowMatrix::Zero(paths, 2);
  const double dt = 0.05;
  const BrownianResult r1 = brownian_motion(geo, z0, BrownianOptions{dt, steps, 11}, 1);
  const BrownianResult r2 = brownian_motion(geo, z0, BrownianOptions{dt, steps, 11}, 2);
  CHECK((r1.paths.array() == r2.paths.array()).all());
  const RowMatrix end = r1.paths.rightCols(2);
  const Eigen::Matrix2d cov = (end.transpose() * end) / static_cast<double>(paths);
  const Eigen::Matrix2d expected = dt * steps * a.inverse();
  // each entry's standard error <= sqrt(2 / paths) * max variance; 5 sigma
  const double tol = 5.0 * std::sqrt(2.0 / paths) * expected.diagonal().maxCoeff();
  CHECK((cov - expected).cwiseAbs().maxCoeff() < tol);
  for (int s : r1.status) CHECK(s == static_cast<int>(PathStatus::completed));
}

TEST_CASE("Brownian motion: a path leaving the domain stops with its status, the others go on") {
  WalledDiffusion geo;
  geo.ainv = Eigen::Matrix2d::Identity();
  geo.limit = 0.5;
  RowMatrix z0(2, 2);
  z0 << 0.4, 0.0, -100.0, 0.0;
  const BrownianResult r = brownian_motion(geo, z0, BrownianOptions{0.01, 400, 3}, 1);
  CHECK(r.status[0] == static_cast<int>(PathStatus::left_domain));
  CHECK(r.n_done[0] < 400);
  CHECK(std::isnan(r.paths(0, 2 * 400)));
  CHECK(r.paths.row(0).head(2 * (r.n_done[0] + 1)).allFinite());
  CHECK(r.status[1] == static_cast<int>(PathStatus::completed));
  CHECK(r.paths.row(1).allFinite());
}

TEST_CASE("HMC: reflection keeps the chains in the box; the mean of an exponential on [0, 2]") {
  const ExponentialTarget target;
  const Index chains = 400;
  RowMatrix init(chains, 2);
  init.col(0).setConstant(0.5);
  init.col(1).setConstant(1.0);
  Vector lo(2), hi(2);
  lo << 0.0, 0.0;
  hi << 1.0, 2.0;
  HmcOptions o;
  o.n_warmup = 100;
  o.n_draws = 20;
  o.seed = 5;
  const HmcResult r = hmc_sample(target, init, lo, hi, o, 1);
  CHECK(r.draws.minCoeff() >= 0.0);
  for (Index i = 0; i < chains; ++i) {
    CHECK(r.draws.col(2 * i).maxCoeff() <= 1.0);
    CHECK(r.draws.col(2 * i + 1).maxCoeff() <= 2.0);
  }
  // the last draw of each chain: independent across chains
  double mean = 0;
  for (Index i = 0; i < chains; ++i) mean += r.draws(o.n_draws - 1, 2 * i + 1) / chains;
  const double exact = 1.0 - 2.0 * std::exp(-2.0) / (1.0 - std::exp(-2.0));  // E[y], y ~ e^{-y} on [0, 2]
  // the standard deviation of y is below 0.6: 5 sigma of the mean of independent chains
  CHECK(std::fabs(mean - exact) < 5.0 * 0.6 / std::sqrt(static_cast<double>(chains)));
  CHECK(r.accept_prob.mean() > 0.5);
  CHECK(r.n_divergent == 0);
}

TEST_CASE("RHVAE volume jet: log det and G^{-1} as the kernel, gradients by central differences") {
  const RHVAEKernel k = small_kernel();
  RowMatrix z(3, 2);
  z << 0.3, 0.4, -0.5, 1.2, 2.0, -1.0;
  Vector logdet(3);
  RowMatrix dlogdet(3, 2), ginv(3, 4), dginv(3, 8);
  k.volume_jet(z, logdet, dlogdet, ginv, dginv, 1);
  RowMatrix g_ref(3, 4), ginv_ref(3, 4), dginv_ref(3, 8);
  Vector logdet_ref(3);
  k.metric(z, g_ref, logdet_ref, 1);
  k.inverse(z, ginv_ref, 1);
  k.derivative(z, dginv_ref, true, 1);
  for (Index i = 0; i < 3; ++i) {
    CHECK(logdet(i) == doctest::Approx(logdet_ref(i)).epsilon(1e-12));
    for (Index e = 0; e < 4; ++e) CHECK(ginv(i, e) == doctest::Approx(ginv_ref(i, e)).epsilon(1e-12));
    for (Index e = 0; e < 8; ++e) CHECK(dginv(i, e) == doctest::Approx(dginv_ref(i, e)).epsilon(1e-12));
  }
  const double h = 1e-5;
  for (Index j = 0; j < 2; ++j) {
    RowMatrix zp = z, zm = z;
    zp.col(j).array() += h;
    zm.col(j).array() -= h;
    RowMatrix gp(0, 4), gm(0, 4);
    Vector lp(3), lm(3);
    k.metric(zp, gp, lp, 1);
    k.metric(zm, gm, lm, 1);
    for (Index i = 0; i < 3; ++i) {
      const double fd = (lp(i) - lm(i)) / (2 * h);  // truncation ~h^2 |f'''|, rounding ~1e-16 / h
      CHECK(dlogdet(i, j) == doctest::Approx(fd).epsilon(1e-7).scale(1.0));
    }
  }
}

TEST_CASE("drift formula: -1/2 G^{ij} Gamma^k_ij for G = I / y^2 (Poincare) is (0, 0)") {
  // G^{-1} = y^2 I, dG^{-1}/dy = 2y I, log det G = -4 log y: d_y = -4/y.
  const double y = 1.7;
  const double ginv[4] = {y * y, 0, 0, y * y};
  double dginv[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  dginv[(0 * 2 + 0) * 2 + 1] = 2 * y;
  dginv[(1 * 2 + 1) * 2 + 1] = 2 * y;
  const double dlogdet[2] = {0.0, -4.0 / y};
  double drift[2];
  brownian_drift(ginv, dginv, dlogdet, 2, drift);
  // Gamma^y_xx = 1/y, Gamma^y_yy = -1/y: G^{ij} Gamma^y_ij = y^2 (1/y - 1/y) = 0; Gamma^x_ij G^ij = 0.
  CHECK(drift[0] == doctest::Approx(0.0).scale(1.0));
  CHECK(drift[1] == doctest::Approx(0.0).scale(1.0));
}

TEST_CASE("drift formula: flat metric in polar coordinates, G = diag(1, r^2), drift (1 / (2 r), 0)") {
  // Laplacian d_rr + (1/r) d_r + (1/r^2) d_thth: half of its first-order part is the drift.
  const double r = 0.7;
  const double ginv[4] = {1, 0, 0, 1 / (r * r)};
  double dginv[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  dginv[(1 * 2 + 1) * 2 + 0] = -2 / (r * r * r);
  const double dlogdet[2] = {2 / r, 0.0};
  double drift[2];
  brownian_drift(ginv, dginv, dlogdet, 2, drift);
  CHECK(drift[0] == doctest::Approx(0.5 / r).epsilon(1e-14));
  CHECK(drift[1] == doctest::Approx(0.0).scale(1.0));
}
