// Curve kernels: quadrature weights, discrete velocities, integrals and gradients.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "latentgeo/numerics/curves.hpp"

using namespace latentgeo;

namespace {
constexpr double eps = std::numeric_limits<double>::epsilon();
constexpr double safety = 16.0;  // on first-order rounding bounds
}  // namespace

TEST_CASE("quadrature weights integrate polynomials") {
  Vector t(7);
  t << 0.0, 0.1, 0.3, 0.35, 0.6, 0.8, 1.0;
  const Vector trap = quadrature_weights(t, Rule::trapezoid);
  const Vector simp = quadrature_weights(t, Rule::simpson);
  // Exact up to rounding: sums of 7 terms (n eps), each from a few operations on t.
  const double sum_tol = safety * 7 * eps;
  CHECK(trap.sum() == doctest::Approx(1.0).epsilon(sum_tol));
  CHECK(trap.dot(t) == doctest::Approx(0.5).epsilon(sum_tol));
  // Simpson on unequal pairs is exact up to quadratics.
  CHECK(simp.dot(t.array().square().matrix()) == doctest::Approx(1.0 / 3.0).epsilon(sum_tol));
  CHECK(simp.dot(t) == doctest::Approx(0.5).epsilon(sum_tol));
  const Vector aetk = quadrature_weights(t, Rule::aetk);
  CHECK(aetk(3) == doctest::Approx(1.0 / 7.0));
  Vector even(4);
  even << 0, 0.2, 0.5, 1.0;
  CHECK_THROWS_AS(quadrature_weights(even, Rule::simpson), std::invalid_argument);
}

TEST_CASE("discrete velocity is exact for quadratics") {
  Vector t(5);
  t << 0.0, 0.2, 0.25, 0.7, 1.0;
  RowMatrix x(5, 1), v(5, 1);
  for (Index i = 0; i < 5; ++i) x(i, 0) = 2 * t(i) * t(i) - 3 * t(i) + 1;
  discrete_velocity(x, t, v, 1);
  // exact up to the rounding of |x| <= 1 divided by the smallest spacing 0.05
  for (Index i = 0; i < 5; ++i) CHECK(v(i, 0) == doctest::Approx(4 * t(i) - 3).epsilon(safety * eps / 0.05));
}

TEST_CASE("integrals and their derivative in q") {
  Vector t = Vector::LinSpaced(5, 0.0, 1.0);
  Vector q(10);
  q << 1, 4, 9, 16, 25, 0, 0, 0, 0, 4;
  const Vector w = quadrature_weights(t, Rule::trapezoid);
  Vector values(2), grad(10);
  integrate(q, w, Integral::length, 1.0, values, grad, 2);
  CHECK(values(0) == doctest::Approx(0.125 * 1 + 0.25 * (2 + 3 + 4) + 0.125 * 5));
  CHECK(grad(1) == doctest::Approx(0.25 / (2 * 2.0)));
  CHECK(grad(5) == 0.0);  // sqrt has no derivative at q = 0
  integrate(q, w, Integral::energy, 0.5, values, grad, 1);
  CHECK(values(1) == doctest::Approx(0.5 * 0.125 * 4));
}

TEST_CASE("finite differences") {
  RowMatrix a(1, 2), b(1, 2), out(1, 2);
  a << 3, 5;
  b << 1, 1;
  finite_difference(a, b, 0.5, out);
  CHECK(out(0, 0) == doctest::Approx(4.0));
  CHECK(out(0, 1) == doctest::Approx(8.0));
}
