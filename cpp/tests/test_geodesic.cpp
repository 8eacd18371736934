// The discrete geodesic solver against closed forms.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "latentgeo/numerics/geodesic.hpp"

using namespace latentgeo;

namespace {

// The Poincare half-plane, G = I / y^2.
struct PoincareKernel {
  Index dim() const { return 2; }
  void quadratic_form(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, VectorRef q, RowMatrixRef dqdz,
                      RowMatrixRef dqdv, int) const {
    for (Index n = 0; n < z.rows(); ++n) {
      const double y = z(n, 1), vv = v.row(n).squaredNorm();
      q(n) = vv / (y * y);
      if (dqdz.rows() == 0) continue;
      dqdz(n, 0) = 0.0;
      dqdz(n, 1) = -2.0 * vv / (y * y * y);
      dqdv.row(n) = 2.0 * v.row(n) / (y * y);
    }
  }
};

double poincare_distance(const RowVector& a, const RowVector& b) {
  return std::acosh(1.0 + (a - b).squaredNorm() / (2.0 * a(1) * b(1)));
}

// The unit sphere through the inverse stereographic projection e(z) = (2z, |z|^2 - 1) / (1 + |z|^2),
// G = 4 I / (1 + |z|^2)^2, with its decoder: geodesics are great circles.
struct SphereDecoderKernel {
  Index dim() const { return 2; }
  void quadratic_form(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, VectorRef q, RowMatrixRef dqdz,
                      RowMatrixRef dqdv, int) const {
    for (Index n = 0; n < z.rows(); ++n) {
      const double s = 1.0 + z.row(n).squaredNorm(), c = 4.0 / (s * s), vv = v.row(n).squaredNorm();
      q(n) = c * vv;
      if (dqdz.rows() == 0) continue;
      dqdz.row(n) = -4.0 * c * vv / s * z.row(n);
      dqdv.row(n) = 2.0 * c * v.row(n);
    }
  }
  static Eigen::RowVector3d decode(const RowVector& z) {
    const double s = 1.0 + z.squaredNorm();
    return Eigen::RowVector3d(2.0 * z(0) / s, 2.0 * z(1) / s, (z.squaredNorm() - 1.0) / s);
  }
  // Rows of de/dz: d e_k / d z_a.
  static Eigen::Matrix<double, 2, 3> jacobian(const RowVector& z) {
    const double s = 1.0 + z.squaredNorm();
    Eigen::Matrix<double, 2, 3> j;
    for (Index a = 0; a < 2; ++a) {
      for (Index k = 0; k < 2; ++k) j(a, k) = 2.0 * ((a == k ? 1.0 : 0.0) * s - 2.0 * z(k) * z(a)) / (s * s);
      j(a, 2) = 4.0 * z(a) / (s * s);
    }
    return j;
  }
  double decoded_energy(const ConstRowMatrixRef& nodes, RowMatrix& grad) const {
    const Index n = nodes.rows() - 1;
    grad.setZero(nodes.rows(), 2);
    double e = 0.0;
    for (Index i = 0; i < n; ++i) {
      const Eigen::RowVector3d chord = decode(nodes.row(i + 1)) - decode(nodes.row(i));
      e += static_cast<double>(n) * chord.squaredNorm();
      grad.row(i + 1) += 2.0 * static_cast<double>(n) * (jacobian(nodes.row(i + 1)) * chord.transpose()).transpose();
      grad.row(i) -= 2.0 * static_cast<double>(n) * (jacobian(nodes.row(i)) * chord.transpose()).transpose();
    }
    return e;
  }
};

// The great-circle distance of the decoded points.
double sphere_distance(const RowVector& a, const RowVector& b) {
  return std::acos(SphereDecoderKernel::decode(a).dot(SphereDecoderKernel::decode(b)));
}

RowVector point(double x, double y) {
  RowVector p(2);
  p << x, y;
  return p;
}

}  // namespace

TEST_CASE("constant metric: the straight line, length sqrt(D^T A D)") {
  RowMatrix a(2, 2);
  a << 4.0, 1.0, 1.0, 2.0;
  const ConstantKernel kernel(a);
  const RowVector s = point(-1.0, 0.5), e = point(2.0, 1.5);
  const GeodesicSolution sol = solve_geodesic(kernel, s, e, RowMatrix(0, 2), GeodesicOptions{});
  const RowVector delta = e - s;
  CHECK(sol.status == GeodesicStatus::converged);
  CHECK(sol.length == doctest::Approx(std::sqrt(delta * a * delta.transpose())).epsilon(1e-10));
  for (Index i = 0; i < sol.nodes.rows(); ++i) {
    const double t = double(i) / double(sol.nodes.rows() - 1);
    CHECK((sol.nodes.row(i) - (s + t * delta)).norm() < 1e-7);
  }
}

TEST_CASE("Poincare half-plane: length and curve of the exact geodesic, both quadratures") {
  const PoincareKernel kernel;
  const RowVector s = point(-1.0, 1.0), e = point(1.0, 1.0);
  for (const Quadrature quadrature : {Quadrature::simpson, Quadrature::midpoint}) {
    CAPTURE(static_cast<int>(quadrature));
    GeodesicOptions options;
    options.quadrature = quadrature;
    const GeodesicSolution sol = solve_geodesic(kernel, s, e, RowMatrix(0, 2), options);
    CHECK(sol.status == GeodesicStatus::converged);
    CHECK(sol.length == doctest::Approx(poincare_distance(s, e)).epsilon(1e-6));
    CHECK(sol.straight_length == doctest::Approx(2.0).epsilon(1e-6));
    for (Index i = 0; i < sol.nodes.rows(); ++i)
      CHECK(sol.nodes.row(i).norm() == doctest::Approx(std::sqrt(2.0)).epsilon(1e-4));
  }
}

TEST_CASE("decoded energy: great circles of the stereographic sphere, refined like the other quadratures") {
  const SphereDecoderKernel kernel;
  const RowVector s = point(-0.8, 0.3), e = point(1.1, 0.9);
  for (const double tol : {1e-5, 1e-9}) {
    CAPTURE(tol);
    GeodesicOptions options;
    options.quadrature = Quadrature::decoded;
    options.length_tol = tol;
    const GeodesicSolution sol = solve_geodesic(kernel, s, e, RowMatrix(0, 2), options);
    CHECK(sol.status == GeodesicStatus::converged);
    // The tolerance bounds the estimated error; allow a factor 10 for the estimate itself.
    CHECK(std::abs(sol.length - sphere_distance(s, e)) <= 10.0 * tol * sphere_distance(s, e));
    CHECK(sol.length < sol.straight_length);
  }
}

TEST_CASE("decoded energy: a kernel without a decoder is a metric_error naming the option") {
  GeodesicOptions options;
  options.quadrature = Quadrature::decoded;
  const GeodesicSolution sol =
      solve_geodesic(PoincareKernel{}, point(0.0, 1.0), point(1.0, 1.0), RowMatrix(0, 2), options);
  CHECK(sol.status == GeodesicStatus::metric_error);
  CHECK(sol.message.find("quadrature") != std::string::npos);
}

TEST_CASE("batched pairs do not depend on the thread count, identical ends give distance 0") {
  const PoincareKernel kernel;
  RowMatrix starts(4, 2), ends(4, 2);
  starts << -1, 1, 0, 0.5, 2, 2, 0.3, 0.7;
  ends << 1, 1, 0.5, 3, -1, 0.5, 0.3, 0.7;
  const RowMatrix none(0, 2);
  const auto one = solve_geodesics(kernel, starts, ends, none, 0, GeodesicOptions{}, 1);
  const auto two = solve_geodesics(kernel, starts, ends, none, 0, GeodesicOptions{}, 2);
  for (Index i = 0; i < 3; ++i) {
    CHECK(one[i].length == doctest::Approx(poincare_distance(starts.row(i), ends.row(i))).epsilon(1e-6));
    CHECK(one[i].length == two[i].length);
    CHECK((one[i].nodes - two[i].nodes).cwiseAbs().maxCoeff() == 0.0);
  }
  CHECK(one[3].length == 0.0);
  CHECK(one[3].status == GeodesicStatus::converged);
}

TEST_CASE("level statistics add up to the totals") {
  const PoincareKernel kernel;
  const GeodesicSolution sol =
      solve_geodesic(kernel, point(-1.0, 1.0), point(1.0, 1.0), RowMatrix(0, 2), GeodesicOptions{});
  REQUIRE(static_cast<int>(sol.levels.size()) == sol.n_levels);
  int iterations = 0, evaluations = 0;
  for (std::size_t l = 0; l < sol.levels.size(); ++l) {
    const GeodesicLevel& level = sol.levels[l];
    CHECK(level.segments == 8 << l);
    // Each energy evaluation has 2n + 1 Simpson points; the length adds 3n, the preconditioner n.
    CHECK(level.kernel_points >= level.n_evaluations * (2 * level.segments + 1) + 3 * level.segments);
    CHECK(level.kernel_seconds >= 0.0);
    CHECK(std::isfinite(level.length));
    iterations += level.n_iter;
    evaluations += level.n_evaluations;
  }
  CHECK(iterations == sol.n_iter);
  CHECK(evaluations == sol.n_evaluations);
  CHECK(sol.levels.back().length == sol.length);
}

TEST_CASE("refinement stops on Richardson's length estimate and the nodes' move") {
  const double length = 2.0, tol = 1e-6, span = 1.0, nan = std::numeric_limits<double>::quiet_NaN();
  // No observed ratio yet: the change itself is the estimate.
  CHECK(level_converged(length, 0.9 * tol * length, nan, 0.0, span, tol));
  CHECK_FALSE(level_converged(length, 1.1 * tol * length, nan, 0.0, span, tol));
  // Observed fourth order (ratio >= 16): 15 tol; a slow ratio of 2 allows only 1 tol.
  CHECK(level_converged(length, 14.0 * tol * length, 1e3 * tol, 0.0, span, tol));
  CHECK_FALSE(level_converged(length, 2.0 * tol * length, 4.0 * tol * length, 0.0, span, tol));
  // Where G jumps (max_ratio 2) a large observed ratio is not believed: the change must be below tol.
  CHECK_FALSE(level_converged(length, 14.0 * tol * length, 1e3 * tol, 0.0, span, tol, 2.0));
  CHECK(level_converged(length, 0.9 * tol * length, 1e3 * tol, 0.0, span, tol, 2.0));
  // The nodes must also have settled to sqrt(tol) of the span.
  CHECK_FALSE(level_converged(length, 0.0, nan, 1.1e-3 * span, span, tol));
  CHECK(level_converged(length, 0.0, nan, 0.9e-3 * span, span, tol));
}

TEST_CASE("options: ftol and gtol follow length_tol unless set; out-of-range values name the argument") {
  GeodesicOptions o;
  o.length_tol = 1e-6;
  CHECK(lbfgs_options(o).ftol == 1e-6);
  CHECK(lbfgs_options(o).gtol == doctest::Approx(1e-8).epsilon(1e-15));
  o.ftol = 3e-7;
  o.gtol = 2e-9;
  CHECK(lbfgs_options(o).ftol == 3e-7);
  CHECK(lbfgs_options(o).gtol == 2e-9);
  CHECK(lbfgs_options(o).max_iter == o.max_iter);
  CHECK(lbfgs_options(o).history == o.history);
  CHECK_NOTHROW(validate(o));
  const auto message_of = [](const GeodesicOptions& bad) {
    try {
      validate(bad);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  GeodesicOptions bad;
  bad.gtol = std::numeric_limits<double>::quiet_NaN();
  CHECK(message_of(bad).rfind("gtol:", 0) == 0);
  bad = GeodesicOptions{};
  bad.ftol = 0.0;
  CHECK(message_of(bad).rfind("ftol:", 0) == 0);
  bad = GeodesicOptions{};
  bad.max_segments = bad.min_segments - 1;
  CHECK(message_of(bad).rfind("min_nodes, max_nodes:", 0) == 0);
  bad = GeodesicOptions{};
  bad.history = 0;
  CHECK(message_of(bad).rfind("history:", 0) == 0);
  for (const double ratio : {1.5, 17.0, std::numeric_limits<double>::quiet_NaN()}) {
    bad = GeodesicOptions{};
    bad.max_ratio = ratio;
    CHECK(message_of(bad).rfind("max_ratio:", 0) == 0);
  }
}

TEST_CASE("status names: one per code, the optimiser's codes first") {
  CHECK(std::string(kGeodesicStatusNames[static_cast<int>(GeodesicStatus::converged)]) == "converged");
  CHECK(std::string(kGeodesicStatusNames[static_cast<int>(LbfgsStatus::line_search_failed)]) == "line_search_failed");
  CHECK(std::string(kGeodesicStatusNames[static_cast<int>(GeodesicStatus::metric_error)]) == "metric_error");
}

TEST_CASE("chord preconditioner: H0 solves the scalar tridiagonal operator of G along the segments") {
  const PoincareKernel kernel;
  RowVector start(2), end(2);
  start << -1.0, 1.0;
  end << 2.0, 0.5;
  DiscreteGeodesicProblem<PoincareKernel> problem(kernel, start, end, Quadrature::simpson, true);
  const Index n = 6, m = n - 1;
  problem.set_segments(n, false);
  RowMatrix nodes(n + 1, 2);
  for (Index i = 0; i <= n; ++i) {
    const double t = static_cast<double>(i) / n;
    nodes.row(i) = (1 - t) * start + t * end;
    if (i > 0 && i < n) nodes(i, 1) += 0.3 * std::sin(3.0 * t);  // bent: the scalars differ per segment
  }
  Vector x, g = Vector::Random(m * 2), r;
  problem.to_free(nodes, x);
  problem.refresh(x);
  problem.apply_h0(g, r);
  // T by hand: g_i = 1 / y(m_i)^2 for G = I / y^2, diagonal 2n (g_j + g_{j+1}), off-diagonal -2n g_{j+1}.
  Eigen::MatrixXd t = Eigen::MatrixXd::Zero(m, m);
  for (Index j = 0; j < m; ++j) {
    auto weight = [&](Index i) {
      const double y = 0.5 * (nodes(i, 1) + nodes(i + 1, 1));
      return 1.0 / (y * y);
    };
    t(j, j) = 2.0 * n * (weight(j) + weight(j + 1));
    if (j + 1 < m) t(j, j + 1) = t(j + 1, j) = -2.0 * n * weight(j + 1);
  }
  const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, 2, Eigen::RowMajor>> rm(r.data(), m, 2),
      gm(g.data(), m, 2);
  const Eigen::MatrixXd residual = t * rm - gm;
  // A well-conditioned 5 x 5 solve: the residual is a few eps times |T| |r|.
  const double bound = 64 * std::numeric_limits<double>::epsilon() * (t.cwiseAbs() * rm.cwiseAbs()).maxCoeff();
  CHECK(residual.cwiseAbs().maxCoeff() <= bound);
}
