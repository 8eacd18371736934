// The vectorised exp against std::exp.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "latentgeo/simd/fastexp.hpp"

TEST_CASE("scaled_exp_inplace matches std::exp to a few ulp and underflows to 0") {
  std::vector<double> x, y;
  for (int i = 0; i <= 200000; ++i) x.push_back(-720.0 + 730.0 * i / 200000.0);
  y = x;
  latentgeo::scaled_exp_inplace(y.data(), static_cast<latentgeo::Index>(y.size()), 1.0);
  double worst = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] < -708.0) {
      CHECK(y[i] == 0.0);
      continue;
    }
    const double exact = std::exp(x[i]);
    worst = std::max(worst, std::abs(y[i] - exact) / exact);
  }
  // ~2 ulp of our own, and std::exp may be up to an ulp off itself (libm differs between systems)
  constexpr double eps = std::numeric_limits<double>::epsilon();
  CHECK(worst <= 3 * eps);
  std::vector<double> z = {2.0, 0.0, -3.0};
  latentgeo::scaled_exp_inplace(z.data(), 3, -0.5);
  CHECK(z[0] == doctest::Approx(std::exp(-1.0)).epsilon(3 * eps));
  CHECK(z[1] == 1.0);  // exact by construction: r = 0, 2^0
  CHECK(z[2] == doctest::Approx(std::exp(1.5)).epsilon(3 * eps));
}
