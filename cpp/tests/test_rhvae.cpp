// RHVAE kernel: the reference values, finite differences, threads, errors.
#include <doctest/doctest.h>

#include <limits>
#include <utility>

#include "latentgeo/metrics/kernels.hpp"
#include "latentgeo/metrics/rhvae.hpp"

using namespace latentgeo;

namespace {

constexpr double eps = std::numeric_limits<double>::epsilon();
constexpr double safety = 16.0;  // on first-order rounding bounds

RHVAEKernel reference_kernel() {
  RowMatrix c(2, 2);
  c << 0, 0, 1, 1;
  // Packed M_k = L_k L_k^T for L1 = [[1,0],[0.5,2]], L2 = [[0.5,0],[-1,1]]: (m00, m01, m11).
  RowMatrix m(2, 3);
  m << 1.0, 0.5, 4.25, 0.25, -0.5, 2.0;
  return RHVAEKernel(c, m, 0.8, 0.01, 0.5);
}

RowMatrix point(double x, double y) {
  RowMatrix z(1, 2);
  z << x, y;
  return z;
}

RowMatrix metric_at(const RHVAEKernel& k, const RowMatrix& z, int threads = 1) {
  RowMatrix g(z.rows(), k.dim() * k.dim());
  Vector logdet(0);
  k.metric(z, g, logdet, threads);
  return g;
}

RHVAEKernel random_kernel(Index centroids, Index d, unsigned seed) {
  std::srand(seed);
  RowMatrix c = RowMatrix::Random(centroids, d);
  RowMatrix m(centroids, packed_size(d));
  for (Index k = 0; k < centroids; ++k) {
    Eigen::MatrixXd l = Eigen::MatrixXd::Random(d, d).triangularView<Eigen::Lower>();
    l.diagonal() = l.diagonal().cwiseAbs().array() + 0.5;
    Eigen::MatrixXd mk = l * l.transpose();
    pack_symmetric(mk, m.row(k));
  }
  return RHVAEKernel(c, m, 0.7, 0.02, 1.0);
}

}  // namespace

TEST_CASE("reference values of the issue") {
  const RHVAEKernel k = reference_kernel();
  RowMatrix ginv(1, 4);
  k.inverse(point(0.3, 0.4), ginv, 1);
  CHECK(ginv(0, 0) == doctest::Approx(0.38143863).epsilon(1e-8));
  CHECK(ginv(0, 1) == doctest::Approx(0.10291506).epsilon(1e-8));
  CHECK(ginv(0, 3) == doctest::Approx(1.71282054).epsilon(1e-8));

  RowMatrix g(1, 4);
  Vector logdet(1);
  k.metric(point(0.3, 0.4), g, logdet, 1);
  CHECK(g(0, 0) == doctest::Approx(2.66485485).epsilon(1e-8));
  CHECK(g(0, 1) == doctest::Approx(-0.16011817).epsilon(1e-8));
  CHECK(g(0, 3) == doctest::Approx(0.59345305).epsilon(1e-8));
  CHECK(logdet(0) == doctest::Approx(0.44200814).epsilon(1e-8));

  RowMatrix dg(1, 8);  // [a, b, k]
  k.derivative(point(0.3, 0.4), dg, false, 1);
  CHECK(dg(0, 0) == doctest::Approx(1.49855831).epsilon(1e-8));  // dG00/dz1
  CHECK(dg(0, 1) == doctest::Approx(2.30905330).epsilon(1e-8));  // dG00/dz2
  CHECK(dg(0, 2) == doctest::Approx(0.31031556).epsilon(1e-8));  // dG01/dz1
  CHECK(dg(0, 7) == doctest::Approx(0.40347304).epsilon(1e-8));  // dG11/dz2

  const RowMatrix far = metric_at(k, point(-1.0, 0.0));
  CHECK(far(0, 0) == doctest::Approx(9.18651633).epsilon(1e-8));
  CHECK(far(0, 1) == doctest::Approx(-1.05405855).epsilon(1e-8));
  CHECK(far(0, 3) == doctest::Approx(2.31474830).epsilon(1e-8));
}

TEST_CASE("derivative of G matches central differences") {
  const RHVAEKernel k = random_kernel(13, 3, 7);
  const RowMatrix z = RowMatrix::Random(5, 3);
  RowMatrix dg(5, 27);
  k.derivative(z, dg, false, 1);
  const double h = 1e-6;
  for (Index j = 0; j < 3; ++j) {
    RowMatrix plus = z, minus = z;
    plus.col(j).array() += h;
    minus.col(j).array() -= h;
    const RowMatrix fd = (metric_at(k, plus) - metric_at(k, minus)) / (2 * h);
    for (Index n = 0; n < 5; ++n)
      for (Index e = 0; e < 9; ++e) CHECK(dg(n, e * 3 + j) == doctest::Approx(fd(n, e)).epsilon(1e-6));
  }
}

TEST_CASE("quadratic form and its gradients") {
  const RHVAEKernel k = random_kernel(17, 2, 11);
  const RowMatrix z = RowMatrix::Random(6, 2), v = RowMatrix::Random(6, 2);
  Vector q(6);
  RowMatrix dqdz(6, 2), dqdv(6, 2);
  k.quadratic_form(z, v, q, dqdz, dqdv, 1);
  const RowMatrix g = metric_at(k, z);
  const double h = 1e-6;
  // q = |L^-1 v|^2 from the Cholesky factor of G^-1, v^T G v with G from the same factor: both
  // solves round by kappa(G) eps relative, and the d^2 products of v^T G v may cancel.
  for (Index n = 0; n < 6; ++n) {
    const Eigen::Map<const Eigen::Matrix<double, 2, 2, Eigen::RowMajor>> gn(g.row(n).data());
    const Eigen::Vector2d vn = v.row(n).transpose();
    const Eigen::Vector2d eig = Eigen::SelfAdjointEigenSolver<Eigen::Matrix2d>(gn).eigenvalues();
    const double kappa = eig(1) / eig(0), magnitude = vn.cwiseAbs().dot(gn.cwiseAbs() * vn.cwiseAbs());
    CHECK(std::abs(q(n) - vn.dot(gn * vn)) <= safety * eps * (2 * kappa * q(n) + 4 * magnitude));
  }
  for (Index j = 0; j < 2; ++j) {
    RowMatrix plus = z, minus = z;
    plus.col(j).array() += h;
    minus.col(j).array() -= h;
    Vector qp(6), qm(6);
    RowMatrix none(0, 2);
    k.quadratic_form(plus, v, qp, none, none, 1);
    k.quadratic_form(minus, v, qm, none, none, 1);
    for (Index n = 0; n < 6; ++n) CHECK(dqdz(n, j) == doctest::Approx((qp(n) - qm(n)) / (2 * h)).epsilon(1e-6));
  }
}

TEST_CASE("results do not depend on the thread count") {
  const RHVAEKernel k = random_kernel(400, 4, 3);
  const RowMatrix z = RowMatrix::Random(2000, 4);
  const RowMatrix one = metric_at(k, z, 1), two = metric_at(k, z, 2);
  CHECK((one - two).cwiseAbs().maxCoeff() == 0.0);  // the contract: bit for bit (fixed blocks of points)
}

TEST_CASE("a singular G^{-1} inside the parallel region becomes an exception") {
  RowMatrix c = RowMatrix::Zero(2000, 2);
  RowMatrix m(2000, 3);
  m.col(0).setOnes();
  m.col(1).setZero();
  m.col(2).setOnes();
  const RHVAEKernel k(c, m, 0.1, 0.0, 1.0);
  RowMatrix z = RowMatrix::Zero(500, 2);
  z.row(377) << 100.0, 100.0;
  RowMatrix g(500, 4);
  Vector logdet(0);
  CHECK_THROWS_AS(k.metric(z, g, logdet, 2), std::domain_error);
}

TEST_CASE("constructor rejects bad parameters") {
  RowMatrix c = RowMatrix::Zero(1, 2), m(1, 3);
  m << 1, 0, 1;
  CHECK_THROWS_AS(RHVAEKernel(c, m, 0.0, 0.1, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(RHVAEKernel(c, m, 1.0, -0.1, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(RHVAEKernel(c, RowMatrix::Ones(1, 2), 1.0, 0.1, 1.0), std::invalid_argument);
}

namespace {

// Brute-force RHVAE quantities of one point, straight from the formula, with the scale of the
// sums (sum of |terms|) that bounds their rounding error.
struct BruteForce {
  Eigen::MatrixXd ginv, ginv_scale;
  std::vector<Eigen::MatrixXd> dginv, dginv_scale;  // dG^{-1}/dz_j
};

Eigen::MatrixXd unpacked(const RowMatrix& m, Index k, Index d) {
  Eigen::MatrixXd out(d, d);
  unpack_symmetric(m.row(k), out);
  return out;
}

BruteForce brute_force(const RowMatrix& c, const RowMatrix& m, double t, double lambda, double s, const RowVector& z) {
  const Index k_count = c.rows(), d = c.cols();
  BruteForce out;
  out.ginv = lambda * Eigen::MatrixXd::Identity(d, d);
  out.ginv_scale = out.ginv;
  out.dginv.assign(d, Eigen::MatrixXd::Zero(d, d));
  out.dginv_scale = out.dginv;
  for (Index k = 0; k < k_count; ++k) {
    const double w = s * std::exp(-(z - c.row(k)).squaredNorm() / (t * t));
    const Eigen::MatrixXd mk = unpacked(m, k, d);
    out.ginv += w * mk;
    out.ginv_scale += w * mk.cwiseAbs();
    for (Index j = 0; j < d; ++j) {
      const double f = -2.0 / (t * t) * (z(j) - c(k, j));
      out.dginv[j] += f * w * mk;
      out.dginv_scale[j] += std::abs(f) * w * mk.cwiseAbs();
    }
  }
  return out;
}

struct RandomModel {
  RowMatrix c, m;
  double t = 0.9, lambda = 0.05, s = 0.7;
};

RandomModel random_model(Index centroids, Index d, unsigned seed) {
  std::srand(seed);
  RandomModel model;
  model.c = RowMatrix::Random(centroids, d);
  model.m.resize(centroids, packed_size(d));
  for (Index k = 0; k < centroids; ++k) {
    Eigen::MatrixXd l = Eigen::MatrixXd::Random(d, d).triangularView<Eigen::Lower>();
    l.diagonal() = l.diagonal().cwiseAbs().array() + 0.5;
    Eigen::MatrixXd mk = l * l.transpose();
    pack_symmetric(mk, model.m.row(k));
  }
  return model;
}

}  // namespace

// K spans several chunks of 256 centroids plus a remainder, N several blocks of 128 points plus a
// remainder; d = 2 and 3 take the one-pass path, d = 5 the two-pass path with the weights kept
// (K = 805) or recomputed (K = 2085).
TEST_CASE("blocked kernel equals the brute-force formula for K beyond one chunk") {
  for (const auto& [centroids, d] : std::vector<std::pair<Index, Index>>{{805, 2}, {805, 3}, {805, 5}, {2085, 5}}) {
    CAPTURE(centroids);
    CAPTURE(d);
    const RandomModel model = random_model(centroids, d, 17);
    const RHVAEKernel k(model.c, model.m, model.t, model.lambda, model.s);
    const Index n = 300;
    const RowMatrix z = 1.2 * RowMatrix::Random(n, d), v = RowMatrix::Random(n, d);
    RowMatrix ginv(n, d * d), dginv(n, d * d * d), dqdz(n, d), dqdv(n, d);
    Vector q(n);
    k.inverse(z, ginv, 2);
    k.derivative(z, dginv, true, 2);
    k.quadratic_form(z, v, q, dqdz, dqdv, 2);
    const double eps = 1e-13;
    for (Index i = 0; i < n; i += 7) {  // every 7th point covers all blocks and both sides of each
      const BruteForce bf = brute_force(model.c, model.m, model.t, model.lambda, model.s, z.row(i));
      for (Index a = 0; a < d; ++a)
        for (Index b = 0; b < d; ++b) {
          CHECK(std::abs(ginv(i, a * d + b) - bf.ginv(a, b)) <= eps * bf.ginv_scale(a, b));
          for (Index j = 0; j < d; ++j)
            CHECK(std::abs(dginv(i, (a * d + b) * d + j) - bf.dginv[j](a, b)) <=
                  eps * bf.dginv_scale[j](a, b) + 1e-300);
        }
      // q = v^T G v and dq/dz_j = -u^T dG^{-1}/dz_j u with u = G v, from the brute-force sums.
      const Eigen::LLT<Eigen::MatrixXd> llt(bf.ginv);
      const Eigen::VectorXd u = llt.solve(v.row(i).transpose());
      const double cond = bf.ginv.norm() * llt.solve(Eigen::MatrixXd::Identity(d, d)).norm();
      CHECK(q(i) == doctest::Approx(u.dot(v.row(i).transpose())).epsilon(1e-12 * cond));
      for (Index j = 0; j < d; ++j) {
        const double exact = -u.dot(bf.dginv[j] * u), scale = u.cwiseAbs().dot(bf.dginv_scale[j] * u.cwiseAbs());
        CHECK(std::abs(dqdz(i, j) - exact) <= 1e-12 * cond * scale);
        CHECK(dqdv(i, j) == doctest::Approx(2.0 * u(j)).epsilon(1e-12 * cond));
      }
    }
  }
}

TEST_CASE("results are bitwise identical with 1 and 2 threads (several blocks and chunks)") {
  for (const Index d : {2, 5}) {
    CAPTURE(d);
    const RandomModel model = random_model(2085, d, 5);
    const RHVAEKernel k(model.c, model.m, model.t, model.lambda, model.s);
    const Index n = 300;
    const RowMatrix z = RowMatrix::Random(n, d), v = RowMatrix::Random(n, d);
    RowMatrix g1(n, d * d), g2(n, d * d), dg1(n, d * d * d), dg2(n, d * d * d);
    RowMatrix dz1(n, d), dz2(n, d), dv1(n, d), dv2(n, d);
    Vector ld1(n), ld2(n), q1(n), q2(n);
    k.metric(z, g1, ld1, 1);
    k.metric(z, g2, ld2, 2);
    k.derivative(z, dg1, false, 1);
    k.derivative(z, dg2, false, 2);
    k.quadratic_form(z, v, q1, dz1, dv1, 1);
    k.quadratic_form(z, v, q2, dz2, dv2, 2);
    CHECK(g1 == g2);
    CHECK(ld1 == ld2);
    CHECK(dg1 == dg2);
    CHECK(q1 == q2);
    CHECK(dz1 == dz2);
    CHECK(dv1 == dv2);
  }
}

TEST_CASE("quadratic_forms: two vectors per point equal two quadratic forms, z-gradients summed") {
  for (const Index d : {2, 5}) {
    CAPTURE(d);
    const RandomModel model = random_model(600, d, 9);
    const RHVAEKernel k(model.c, model.m, model.t, model.lambda, model.s);
    const Index n = 140;
    const RowMatrix z = RowMatrix::Random(n, d), v1 = RowMatrix::Random(n, d), v2 = RowMatrix::Random(n, d);
    RowMatrix v(n, 2 * d), q(n, 2), dqdz(n, d), dqdv(n, 2 * d);
    v << v1, v2;
    k.quadratic_forms(z, v, q, dqdz, dqdv, 1);
    RowMatrix dz1(n, d), dz2(n, d), dv1(n, d), dv2(n, d);
    Vector q1(n), q2(n);
    k.quadratic_form(z, v1, q1, dz1, dv1, 1);
    k.quadratic_form(z, v2, q2, dz2, dv2, 1);
    const auto close = [](const auto& a, const auto& b) {
      return (a - b).cwiseAbs().maxCoeff() <= 1e-12 * std::max(1.0, b.cwiseAbs().maxCoeff());
    };
    CHECK(close(q.col(0), q1));
    CHECK(close(q.col(1), q2));
    CHECK(close(dqdv.leftCols(d), dv1));
    CHECK(close(dqdv.rightCols(d), dv2));
    CHECK(close(dqdz, dz1 + dz2));
  }
}

namespace {

// The jet of k at z up to `order`: G (N x d^2), dG (N x d^3), d2G (N x d^4).
struct Jet {
  RowMatrix g, dg, d2g;
  std::vector<char> ok;
};
Jet jet_at(const RHVAEKernel& k, const RowMatrix& z, int order) {
  const Index n = z.rows(), d = k.dim();
  Jet j{
      RowMatrix(n, d * d), RowMatrix(order >= 1 ? n : 0, d * d * d), RowMatrix(order >= 2 ? n : 0, d * d * d * d), {}};
  k.jet(z, order, j.g, j.dg, j.d2g, j.ok, 1);
  return j;
}

// Checks that column block `analytic` ([..., m] = d/dz_m of `f`, `width` entries per m) matches
// central differences of f(z) (N x width) with step h_m = h max(1, |z_m|). The tolerance is the
// difference's own error bound: its truncation h^2 |f'''| / 6, estimated from the change between
// steps h and 2h (which is 3 h^2 |f'''| / 6 to leading order), plus the rounding of f, about
// eps max|f| / h, each with a safety factor.
template <class F>
void check_against_differences(F&& f, const RowMatrix& z, const RowMatrix& analytic, Index width, double h) {
  const Index n = z.rows(), d = z.cols();
  const RowMatrix f0 = f(z);
  for (Index m = 0; m < d; ++m) {
    auto at = [&](double step) {
      RowMatrix plus = z, minus = z;
      for (Index r = 0; r < n; ++r) {
        plus(r, m) += step * std::max(1.0, std::abs(z(r, m)));
        minus(r, m) -= step * std::max(1.0, std::abs(z(r, m)));
      }
      RowMatrix diff = f(plus) - f(minus);
      for (Index r = 0; r < n; ++r) diff.row(r) /= 2 * step * std::max(1.0, std::abs(z(r, m)));
      return diff;
    };
    const RowMatrix fd = at(h), fd2 = at(2 * h);
    for (Index r = 0; r < n; ++r) {
      const double hr = h * std::max(1.0, std::abs(z(r, m)));
      const double rounding = eps * f0.row(r).cwiseAbs().maxCoeff() / hr;
      for (Index e = 0; e < width; ++e) {
        const double truncation = std::abs(fd2(r, e) - fd(r, e)) / 3.0;
        CHECK(std::abs(analytic(r, e * d + m) - fd(r, e)) <= safety * (truncation + rounding) + 1e-300);
      }
    }
  }
}

}  // namespace

TEST_CASE("jet: d2G against differences of dG, dG against differences of G (fused and blocked sums, several chunks)") {
  for (const Index d : {2, 3, 5}) {
    CAPTURE(d);
    const RHVAEKernel k = random_kernel(300, d, 11 + static_cast<unsigned>(d));  // 300 > one chunk of 256
    const RowMatrix z = RowMatrix::Random(4, d) * 0.8;
    const Jet j = jet_at(k, z, 2);
    for (char ok : j.ok) CHECK(ok);
    // G and dG of the jet are those of metric() and derivative().
    RowMatrix dg(z.rows(), d * d * d);
    k.derivative(z, dg, false, 1);
    CHECK((j.g - metric_at(k, z)).cwiseAbs().maxCoeff() <= 1e-12 * j.g.cwiseAbs().maxCoeff());
    CHECK((j.dg - dg).cwiseAbs().maxCoeff() <= 1e-12 * dg.cwiseAbs().maxCoeff());
    const double h = 1e-4;
    check_against_differences([&](const RowMatrix& p) { return jet_at(k, p, 0).g; }, z, j.dg, d * d, h);
    check_against_differences([&](const RowMatrix& p) { return jet_at(k, p, 1).dg; }, z, j.d2g, d * d * d, h);
    // d2G symmetric in (k, m)
    for (Index r = 0; r < z.rows(); ++r)
      for (Index e = 0; e < d * d; ++e)
        for (Index a = 0; a < d; ++a)
          for (Index b = 0; b < d; ++b) CHECK(j.d2g(r, (e * d + a) * d + b) == j.d2g(r, (e * d + b) * d + a));
  }
}

TEST_CASE("hamiltonian: zdot = G^{-1} p, pdot = -1/2 p^T dG^{-1} p, ScaledKernel scales the jet and the flow") {
  // d = 2: the fused sums; d = 5: the one-pass flow, within one chunk of centroids and over three
  for (const auto& [n_centroids, d] : {std::pair<Index, Index>{40, 2}, {40, 5}, {600, 5}}) {
    CAPTURE(d);
    CAPTURE(n_centroids);
    const RHVAEKernel k = random_kernel(n_centroids, d, 3);
    const RowMatrix z = RowMatrix::Random(3, d) * 0.5, p = RowMatrix::Random(3, d);
    RowMatrix zdot(3, d), pdot(3, d), ginv(3, d * d), dginv(3, d * d * d);
    std::vector<char> ok(3, 0);
    k.hamiltonian(z, p, zdot, pdot, ok, 1);
    k.inverse(z, ginv, 1);
    k.derivative(z, dginv, true, 1);
    for (Index r = 0; r < 3; ++r) {
      CHECK(ok[static_cast<std::size_t>(r)]);
      const Eigen::Map<const RowMatrix> gi(ginv.row(r).data(), d, d);
      const RowVector expect_zdot = p.row(r) * gi;
      CHECK((zdot.row(r) - expect_zdot).cwiseAbs().maxCoeff() <= 1e-12 * expect_zdot.cwiseAbs().maxCoeff());
      for (Index m = 0; m < d; ++m) {
        double q = 0.0;
        for (Index a = 0; a < d; ++a)
          for (Index b = 0; b < d; ++b) q += p(r, a) * dginv(r, (a * d + b) * d + m) * p(r, b);
        CHECK(pdot(r, m) == doctest::Approx(-0.5 * q).epsilon(1e-10));
      }
    }
    const double c = 2.5;
    const ScaledKernel<RHVAEKernel> scaled(k, c);
    RowMatrix sz(3, d), sp(3, d), g(3, d * d), dg(3, d * d * d), d2g(0, d * d * d * d);
    scaled.hamiltonian(z, p, sz, sp, ok, 1);
    CHECK((sz - zdot / c).cwiseAbs().maxCoeff() <= 1e-14 * zdot.cwiseAbs().maxCoeff());
    CHECK((sp - pdot / c).cwiseAbs().maxCoeff() <= 1e-14 * pdot.cwiseAbs().maxCoeff());
    scaled.jet(z, 1, g, dg, d2g, ok, 1);
    const Jet base = jet_at(k, z, 1);
    CHECK((g - c * base.g).cwiseAbs().maxCoeff() <= 1e-14 * g.cwiseAbs().maxCoeff());
    CHECK((dg - c * base.dg).cwiseAbs().maxCoeff() <= 1e-14 * dg.cwiseAbs().maxCoeff());
  }
}

TEST_CASE("jet: a singular G^{-1} gives ok = 0 and zero rows, no exception") {
  RowMatrix c(1, 2), m(1, 3);
  c << 0, 0;
  m << 1.0, 0.0, 1.0;
  const RHVAEKernel k(c, m, 0.5, 0.0, 1.0);  // lambda = 0: G^{-1} = 0 far from the centroid
  RowMatrix z(2, 2);
  z << 0.1, 0.1, 100.0, 100.0;
  const Jet j = jet_at(k, z, 2);
  CHECK(j.ok[0]);
  CHECK_FALSE(j.ok[1]);
  CHECK(j.g.row(1).isZero());
  CHECK(j.d2g.row(1).isZero());
}
