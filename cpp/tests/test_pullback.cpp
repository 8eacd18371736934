// Pullback kernel: closed forms (linear, elementwise tanh), finite differences of G and of
// v^T G v for a Gaussian MLP, thread independence, errors.
#include <doctest/doctest.h>

#include "latentgeo/pullback.hpp"

using namespace latentgeo;

namespace {

PullbackOp dense(const Eigen::MatrixXd& w, const Vector& b) { return PullbackOp::make_dense(w, b); }
PullbackOp act(const char* name, double param = 1.0) {
  return PullbackOp::make_activation(parse_activation(name), param);
}

// A 2 -> 6 -> 4 mean head with a 2 -> 3 log-sigma head, on a 2 -> 5 tanh trunk.
PullbackKernel gaussian_kernel() {
  std::srand(7);
  const Eigen::MatrixXd w0 = Eigen::MatrixXd::Random(5, 2), w1 = Eigen::MatrixXd::Random(6, 5),
                        w2 = Eigen::MatrixXd::Random(4, 6), ws = 0.5 * Eigen::MatrixXd::Random(3, 5);
  PullbackSequence trunk{dense(w0, Vector::Random(5)), act("tanh")};
  PullbackSequence mean{dense(w1, Vector::Random(6)), act("softplus", 2.0), dense(w2, Vector::Random(4)),
                        act("elu", 0.7), act("sigmoid")};
  PullbackSequence log_sigma{dense(ws, Vector::Random(3)), act("exp")};
  return PullbackKernel(2, trunk, {mean, log_sigma});
}

RowMatrix metric_at(const PullbackKernel& k, const RowMatrix& z, int threads = 1) {
  RowMatrix g(z.rows(), k.dim() * k.dim());
  k.metric(z, g, threads);
  return g;
}

Vector qf(const PullbackKernel& k, const RowMatrix& z, const RowMatrix& v) {
  Vector q(z.rows());
  RowMatrix none(0, k.dim());
  k.quadratic_form(z, v, q, none, none, 1);
  return q;
}

}  // namespace

TEST_CASE("pullback: a linear decoder gives the constant metric W^T W") {
  const Eigen::MatrixXd w = Eigen::MatrixXd::Random(4, 3);
  PullbackKernel k(3, {}, {{dense(w, Vector::Random(4))}});
  const RowMatrix z = RowMatrix::Random(5, 3);
  const RowMatrix g = metric_at(k, z);
  const Eigen::MatrixXd wtw = w.transpose() * w;
  for (Index n = 0; n < 5; ++n)
    for (Index a = 0; a < 3; ++a)
      for (Index b = 0; b < 3; ++b) CHECK(g(n, a * 3 + b) == doctest::Approx(wtw(a, b)).epsilon(1e-13));
  RowMatrix dg(5, 27);
  k.derivative(z, dg, 1);
  CHECK(dg.cwiseAbs().maxCoeff() == 0.0);
}

TEST_CASE("pullback: elementwise tanh, G = diag((1 - tanh^2 z)^2)") {
  PullbackKernel k(2, {}, {{dense(Eigen::MatrixXd::Identity(2, 2), Vector::Zero(2)), act("tanh")}});
  RowMatrix z(1, 2);
  z << 0.3, -1.2;
  const RowMatrix g = metric_at(k, z);
  for (Index a = 0; a < 2; ++a) {
    const double s = 1.0 - std::tanh(z(0, a)) * std::tanh(z(0, a));
    CHECK(g(0, a * 3) == doctest::Approx(s * s).epsilon(1e-14));
  }
  CHECK(g(0, 1) == 0.0);
}

TEST_CASE("pullback: dG/dz and dq/dz match central differences, dq/dv = 2 G v") {
  const PullbackKernel k = gaussian_kernel();
  const RowMatrix z = RowMatrix::Random(6, 2), v = RowMatrix::Random(6, 2);
  RowMatrix dg(6, 8), dqdz(6, 2), dqdv(6, 2);
  Vector q(6);
  k.derivative(z, dg, 1);
  k.quadratic_form(z, v, q, dqdz, dqdv, 1);
  const RowMatrix g = metric_at(k, z);
  const double h = 1e-5;
  for (Index j = 0; j < 2; ++j) {
    RowMatrix zp = z, zm = z;
    zp.col(j).array() += h;
    zm.col(j).array() -= h;
    const RowMatrix fd_g = (metric_at(k, zp) - metric_at(k, zm)) / (2 * h);
    const Vector fd_q = (qf(k, zp, v) - qf(k, zm, v)) / (2 * h);
    for (Index n = 0; n < 6; ++n) {
      for (Index e = 0; e < 4; ++e) CHECK(dg(n, e * 2 + j) == doctest::Approx(fd_g(n, e)).epsilon(1e-6));
      CHECK(dqdz(n, j) == doctest::Approx(fd_q(n)).epsilon(1e-6));
    }
  }
  for (Index n = 0; n < 6; ++n) {
    const Eigen::Map<const Eigen::Matrix<double, 2, 2, Eigen::RowMajor>> gn(g.row(n).data());
    const Eigen::Vector2d gv = 2.0 * gn * v.row(n).transpose();
    CHECK(dqdv(n, 0) == doctest::Approx(gv(0)).epsilon(1e-12));
    CHECK(dqdv(n, 1) == doctest::Approx(gv(1)).epsilon(1e-12));
    CHECK(q(n) == doctest::Approx(v.row(n).dot(gn * v.row(n).transpose())).epsilon(1e-12));
  }
}

TEST_CASE("pullback: results do not depend on the thread count") {
  const PullbackKernel k = gaussian_kernel();
  const RowMatrix z = RowMatrix::Random(300, 2);
  CHECK((metric_at(k, z, 1) - metric_at(k, z, 2)).cwiseAbs().maxCoeff() == 0.0);
}

TEST_CASE("pullback: errors") {
  CHECK_THROWS_AS(parse_activation("swish"), std::invalid_argument);
  CHECK_THROWS_AS(PullbackKernel(2, {}, {}), std::invalid_argument);
  CHECK_THROWS_AS(PullbackKernel(2, {}, {{dense(Eigen::MatrixXd::Ones(3, 4), Vector::Ones(3))}}),
                  std::invalid_argument);
  CHECK_THROWS_AS(PullbackKernel(2, {}, {{dense(Eigen::MatrixXd::Ones(3, 2), Vector::Ones(2))}}),
                  std::invalid_argument);
}
