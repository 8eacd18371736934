// RHVAE kernel: the reference values, finite differences, threads, errors.
#include <doctest/doctest.h>

#include <limits>

#include "latentgeo/rhvae.hpp"

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
