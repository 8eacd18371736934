// Curve kernels: quadrature weights, discrete velocities, integrals and gradients.
#include <doctest/doctest.h>

#include <cmath>

#include "latentgeo/curves.hpp"

using namespace latentgeo;

TEST_CASE("quadrature weights integrate polynomials") {
  Vector t(7);
  t << 0.0, 0.1, 0.3, 0.35, 0.6, 0.8, 1.0;
  const Vector trap = quadrature_weights(t, Rule::trapezoid);
  const Vector simp = quadrature_weights(t, Rule::simpson);
  CHECK(trap.sum() == doctest::Approx(1.0).epsilon(1e-14));
  CHECK(trap.dot(t) == doctest::Approx(0.5).epsilon(1e-14));
  // Simpson on unequal pairs is exact up to quadratics.
  CHECK(simp.dot(t.array().square().matrix()) == doctest::Approx(1.0 / 3.0).epsilon(1e-13));
  CHECK(simp.dot(t) == doctest::Approx(0.5).epsilon(1e-14));
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
  for (Index i = 0; i < 5; ++i) CHECK(v(i, 0) == doctest::Approx(4 * t(i) - 3).epsilon(1e-12));
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
