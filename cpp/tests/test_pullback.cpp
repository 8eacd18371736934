// Pullback kernel: closed forms (linear, elementwise tanh), finite differences of G and of
// v^T G v for a Gaussian MLP, thread independence, errors.
#include <doctest/doctest.h>

#include <limits>

#include "latentgeo/metrics/kernels.hpp"
#include "latentgeo/metrics/pullback.hpp"

using namespace latentgeo;

namespace {

constexpr double eps = std::numeric_limits<double>::epsilon();
constexpr double safety = 16.0;  // on first-order rounding bounds

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
  const Eigen::MatrixXd wtw = w.transpose() * w, abs_wtw = w.cwiseAbs().transpose() * w.cwiseAbs();
  // sums of 4 products in two orders: equal up to 4 eps |W|^T |W|
  for (Index n = 0; n < 5; ++n)
    for (Index a = 0; a < 3; ++a)
      for (Index b = 0; b < 3; ++b) CHECK(std::abs(g(n, a * 3 + b) - wtw(a, b)) <= safety * 4 * eps * abs_wtw(a, b));
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
    // a few operations on tanh (<= 1): |d(s^2)| <= 2 s (2 + 1) eps
    CHECK(std::abs(g(0, a * 3) - s * s) <= safety * 6 * eps * s);
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
  // G = J^T J with J of D = 7 rows: |J|^T |J| <= sqrt(G_aa G_bb) (Cauchy-Schwarz) bounds the
  // magnitudes of the sums, so q = |Jv|^2 and 2Gv agree with v^T G v and 2 G v up to
  // (D + d^2) eps (sum_a |v_a| sqrt(G_aa))^2 and (D + d) eps 2 sqrt(G_aa) sum_b |v_b| sqrt(G_bb).
  for (Index n = 0; n < 6; ++n) {
    const Eigen::Map<const Eigen::Matrix<double, 2, 2, Eigen::RowMajor>> gn(g.row(n).data());
    const Eigen::Vector2d root = gn.diagonal().cwiseSqrt(), vn = v.row(n).transpose();
    const double mixed = vn.cwiseAbs().dot(root);
    const Eigen::Vector2d gv = 2.0 * gn * vn;
    for (Index a = 0; a < 2; ++a) CHECK(std::abs(dqdv(n, a) - gv(a)) <= safety * (7 + 2) * eps * 2 * root(a) * mixed);
    CHECK(std::abs(q(n) - vn.dot(gn * vn)) <= safety * (7 + 4) * eps * mixed * mixed);
  }
}

TEST_CASE("pullback: the decoded energy's reverse-mode gradient is J^T dE/de and matches central differences") {
  const PullbackKernel k = gaussian_kernel();
  const RowMatrix nodes = RowMatrix::Random(7, 2);
  RowMatrix grad;
  const double energy = k.decoded_energy(nodes, grad);
  // The reference: outputs and Jacobians from the forward-mode pass, dE/de by hand.
  const Index m = nodes.rows(), out = k.output_dim();
  RowMatrix e(m, out), jac(m, out * 2);
  k.evaluate(nodes, e, jac, 1);
  double expected = 0.0;
  RowMatrix pull = RowMatrix::Zero(m, out);
  for (Index i = 0; i + 1 < m; ++i) {
    const RowVector chord = e.row(i + 1) - e.row(i);
    expected += chord.squaredNorm();
    pull.row(i + 1) += 2.0 * (m - 1) * chord;
    pull.row(i) -= 2.0 * (m - 1) * chord;
  }
  expected *= static_cast<double>(m - 1);
  // Both sum the same squares of chords of outputs computed in the same order: a few eps.
  CHECK(std::abs(energy - expected) <= safety * 4 * eps * expected);
  for (Index i = 0; i < m; ++i) {
    const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, 2, Eigen::RowMajor>> j(jac.row(i).data(), out, 2);
    const Eigen::RowVector2d reference = pull.row(i) * j;
    // the same products summed in another order through 5 steps of width <= 6: a few dozen
    // roundings of terms bounded by |pull| |J| (or by the result): 1e3 eps leaves a safety of ~16
    const Eigen::RowVector2d scale = pull.row(i).cwiseAbs() * j.cwiseAbs();
    for (Index a = 0; a < 2; ++a)
      CHECK(std::abs(grad(i, a) - reference(a)) <= 1e3 * eps * (scale(a) + reference.cwiseAbs().maxCoeff()));
  }
  const double h = 1e-5;
  RowMatrix none;
  for (Index i = 0; i < m; ++i)
    for (Index a = 0; a < 2; ++a) {
      RowMatrix plus = nodes, minus = nodes;
      plus(i, a) += h;
      minus(i, a) -= h;
      const double fd = (k.decoded_energy(plus, none) - k.decoded_energy(minus, none)) / (2 * h);
      CHECK(grad(i, a) == doctest::Approx(fd).epsilon(1e-6).scale(1e-6 * grad.cwiseAbs().maxCoeff()));
    }
}

TEST_CASE("pullback: the solvers' metric tensors are G = 2 x (dq/dv at unit vectors) / 2") {
  const PullbackKernel k = gaussian_kernel();
  const RowMatrix z = RowMatrix::Random(4, 2);
  RowMatrix g;
  metric_tensors(k, z, g);  // the kernel's own J^T J
  RowMatrix none(0, 2);
  const RowMatrix reference = metric_at(k, z);
  for (Index a = 0; a < 2; ++a) {
    RowMatrix unit = RowMatrix::Zero(4, 2), dqdz(4, 2), dqdv(4, 2);
    unit.col(a).setOnes();
    Vector q(4);
    k.quadratic_form(z, unit, q, dqdz, dqdv, 1);  // dq/dv = 2 G e_a: column a of G, another code path
    for (Index n = 0; n < 4; ++n)
      for (Index b = 0; b < 2; ++b) {
        const double scale = std::sqrt(reference(n, a * 3) * reference(n, b * 3));  // |J|^T|J| bound (D = 7)
        CHECK(std::abs(g(n, b * 2 + a) - 0.5 * dqdv(n, b)) <= safety * (7 + 2) * eps * 7 * scale);
      }
  }
}

TEST_CASE("pullback: a bernoulli head gives G = sum_i p_i (1 - p_i) w_i w_i^T for logits l = W z + b") {
  const Eigen::MatrixXd w = Eigen::MatrixXd::Random(3, 2);
  const Vector b = 4.0 * Vector::Random(3);
  PullbackKernel k(2, {}, {{dense(w, b), act("bernoulli")}});
  RowMatrix z(3, 2);
  z << 0.3, -1.2, 20.0, 15.0, -400.0, 300.0;  // moderate, saturated (p(1-p) ~ 1e-15), overflowing cosh
  const RowMatrix g = metric_at(k, z);
  RowMatrix values(3, 3), none(0, 0);
  k.evaluate(z, values, none, 1);
  for (Index n = 0; n < 3; ++n) {
    Eigen::Matrix2d expected = Eigen::Matrix2d::Zero();
    for (Index i = 0; i < 3; ++i) {
      const double l = w.row(i).dot(z.row(n)) + b(i), p = 1.0 / (1.0 + std::exp(-l)), q = 1.0 / (1.0 + std::exp(l));
      expected += p * q * w.row(i).transpose() * w.row(i);  // p q = p (1 - p) without cancellation
      const double s = values(n, i);                        // 2 arcsin(sqrt(p)): p = sin^2(s / 2)
      CHECK(std::pow(std::sin(0.5 * s), 2) == doctest::Approx(p).epsilon(1e-13).scale(0.0));
    }
    for (Index e = 0; e < 4; ++e) CHECK(g(n, e) == doctest::Approx(expected(e / 2, e % 2)).epsilon(1e-12).scale(0.0));
  }
  CHECK(g.allFinite());
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
