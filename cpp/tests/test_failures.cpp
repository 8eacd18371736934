// Failures stay with their pair (singular, non-finite and throwing metrics) and cancellation
// stops long loops, whatever the thread count.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <stdexcept>

#include "latentgeo/metrics/pullback.hpp"
#include "latentgeo/metrics/rhvae.hpp"
#include "latentgeo/numerics/geodesic.hpp"

using namespace latentgeo;

namespace {

RowVector point(double x, double y) {
  RowVector p(2);
  p << x, y;
  return p;
}

// The two-centroid RHVAE of the reference values with regularization lambda.
RHVAEKernel reference_rhvae(double lambda) {
  RowMatrix c(2, 2);
  c << 0, 0, 1, 1;
  RowMatrix m(2, 3);  // packed L_k L_k^T of L1 = [[1,0],[0.5,2]], L2 = [[0.5,0],[-1,1]]
  m << 1.0, 0.5, 4.25, 0.25, -0.5, 2.0;
  return RHVAEKernel(c, m, 0.8, lambda, 0.5);
}

// The flat metric G = I, except where `bad(z)` holds: there it throws (Mode::domain, Mode::other)
// or returns NaN (Mode::nan).
enum class Mode { domain, other, nan };
struct HoleKernel {
  Mode mode;
  double radius;  // the hole: |z - (5, 5)| < radius
  Index dim() const { return 2; }
  bool bad(const ConstRowMatrixRef& z, Index n) const { return (z.row(n) - point(5.0, 5.0)).norm() < radius; }
  void quadratic_form(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, VectorRef q, RowMatrixRef dqdz,
                      RowMatrixRef dqdv, int) const {
    for (Index n = 0; n < z.rows(); ++n) {
      if (bad(z, n) && mode == Mode::domain) throw MetricDomainError("hole at z = " + format_point(z.row(n)));
      if (bad(z, n) && mode == Mode::other) throw std::runtime_error("broken metric");
      const double nan = bad(z, n) ? std::nan("") : 0.0;
      q(n) = v.row(n).squaredNorm() + nan;
      if (dqdz.rows() == 0) continue;
      dqdz.row(n).setConstant(nan);
      dqdv.row(n) = 2.0 * v.row(n);
    }
  }
};

}  // namespace

// Counts the MetricDomainErrors a kernel throws.
template <class Kernel>
struct CountingThrows {
  const Kernel& k;
  mutable int thrown = 0;
  Index dim() const { return k.dim(); }
  void quadratic_form(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, VectorRef q, RowMatrixRef dqdz,
                      RowMatrixRef dqdv, int n) const {
    try {
      k.quadratic_form(z, v, q, dqdz, dqdv, n);
    } catch (const MetricDomainError&) {
      ++thrown;
      throw;
    }
  }
};

TEST_CASE("a singular metric at trial points backtracks: RHVAE with regularization 0") {
  // G^{-1} vanishes far from the centroids, where the line search's trial points go.
  const RHVAEKernel exact = reference_rhvae(0.0), regularised = reference_rhvae(1e-12);
  const CountingThrows<RHVAEKernel> counting{exact};
  const RowVector a = point(0, 0), b = point(3, 3);
  const GeodesicOptions o;  // max_segments 2048 (latentgeo.geodesics' max_nodes=2049): the curve needs them
  const GeodesicSolution sol = solve_geodesic(counting, a, b, RowMatrix(0, 2), o);
  const GeodesicSolution ref = solve_geodesic(regularised, a, b, RowMatrix(0, 2), o);
  // Whether trial points reach the singular region depends on the step control (the scaled
  // preconditioner rarely overshoots here); backtracking itself is tested on the hole kernel.
  REQUIRE(sol.status == GeodesicStatus::converged);
  REQUIRE(ref.status == GeodesicStatus::converged);
  CHECK(sol.message.empty());
  // dL/dlambda = -(1/2) int v^T G^2 v / sqrt(v^T G v) dt, so |L(0) - L(lambda)| <= (lambda / 2) max|G| L,
  // plus the relative tolerance of the two solves (1e-8 each, taken 10 times).
  RowMatrix g;
  metric_tensors(exact, sol.nodes, g);
  double g_max = 0.0;
  for (Index i = 0; i < g.rows(); ++i)
    g_max = std::max(g_max, Eigen::Map<const Eigen::Matrix2d>(g.row(i).data()).eigenvalues().real().maxCoeff());
  CHECK(std::abs(sol.length - ref.length) <= (0.5e-12 * g_max + 1e-7) * ref.length);
  // The same solve without the counting wrapper (G from the kernel's own routine) agrees.
  const GeodesicSolution direct = solve_geodesic(exact, a, b, RowMatrix(0, 2), o);
  CHECK(direct.status == GeodesicStatus::converged);
  CHECK(direct.length == doctest::Approx(sol.length).epsilon(1e-7));
}

TEST_CASE("an end in a singular region: singular_metric, NaN length, a message naming the point") {
  const RHVAEKernel exact = reference_rhvae(0.0);  // G^{-1} = 0 exactly at (40, 40)
  RowMatrix starts(3, 2), ends(3, 2);
  starts << 0, 0, 0, 0, 0.5, 0.2;
  ends << 3, 3, 40, 40, 1.0, 1.5;
  const RowMatrix none(0, 2);
  const GeodesicOptions o;
  const auto one = solve_geodesics(exact, starts, ends, none, 0, o, 1);
  const auto two = solve_geodesics(exact, starts, ends, none, 0, o, 2);
  CHECK(one[1].status == GeodesicStatus::singular_metric);
  CHECK(std::isnan(one[1].length));
  CHECK(std::isnan(one[1].energy));
  CHECK(std::isinf(one[1].straight_length));
  CHECK(one[1].message.find("singular") != std::string::npos);
  CHECK(one[1].message.find("z = (") != std::string::npos);
  CHECK(one[1].nodes.rows() == 9);  // the initial curve of the first level
  for (const Index i : {0, 2}) {
    CHECK(one[i].status == GeodesicStatus::converged);
    CHECK(std::isfinite(one[i].length));
  }
  for (Index i = 0; i < 3; ++i) {  // the thread count changes nothing, failures included
    CHECK(one[i].status == two[i].status);
    CHECK((std::isnan(one[i].length) ? std::isnan(two[i].length) : one[i].length == two[i].length));
  }
}

TEST_CASE("a hole in the metric: domain errors and NaN backtrack, other errors are metric_error") {
  RowMatrix starts(3, 2), ends(3, 2);
  starts << 0, 0, 5, 5, 2, 0;  // the straight line of pair 0 stays far from the hole, pair 1 starts in it
  ends << 1, 2, 6, 6, 0, 2;
  const RowMatrix none(0, 2);
  for (const Mode mode : {Mode::domain, Mode::nan, Mode::other}) {
    CAPTURE(static_cast<int>(mode));
    const HoleKernel kernel{mode, 0.5};
    for (const int threads : {1, 2}) {
      const auto sols = solve_geodesics(kernel, starts, ends, none, 0, GeodesicOptions{}, threads);
      for (const Index i : {0, 2}) {  // flat metric: the straight line
        CHECK(sols[i].status == GeodesicStatus::converged);
        CHECK(sols[i].length == doctest::Approx((ends.row(i) - starts.row(i)).norm()).epsilon(1e-9));
      }
      CHECK(std::isnan(sols[1].length));
      if (mode == Mode::domain) {
        CHECK(sols[1].status == GeodesicStatus::singular_metric);
        CHECK(sols[1].message.rfind("hole at z = (5", 0) == 0);
      } else if (mode == Mode::nan) {
        CHECK(sols[1].status == GeodesicStatus::non_finite);
        CHECK(sols[1].message.empty());
      } else {
        CHECK(sols[1].status == GeodesicStatus::metric_error);
        CHECK(sols[1].message == "broken metric");
        CHECK_THROWS_WITH_AS(std::rethrow_exception(sols[1].error), "broken metric", std::runtime_error);
      }
    }
  }
}

TEST_CASE("RHVAE: a temperature whose 1/T^2 overflows is rejected; singular points are named") {
  RowMatrix c(1, 2), m(1, 3);
  c << 0, 0;
  m << 1, 0, 1;
  CHECK_THROWS_AS(RHVAEKernel(c, m, 1e-300, 0.1, 1.0), std::invalid_argument);
  CHECK_NOTHROW(RHVAEKernel(c, m, 1e-150, 0.1, 1.0));
  const RHVAEKernel k(c, m, 1.0, 0.0, 1.0);
  RowMatrix z(2, 2), g(2, 4);
  z << 0.5, 0.5, 50, -60;
  Vector logdet(0);
  CHECK_THROWS_WITH_AS(k.metric(z, g, logdet, 1), doctest::Contains("at point 1, z = (50, -60)"), MetricDomainError);
}

TEST_CASE("pullback: an overflowing decoder raises MetricDomainError naming the point") {
  Eigen::MatrixXd w(2, 2);
  w << 900, 0, 0, 1;
  const PullbackKernel k(
      2, {}, {{PullbackOp::make_dense(w, Vector::Zero(2)), PullbackOp::make_activation(Activation::exp, 1.0)}});
  RowMatrix z(2, 2), g(2, 4);
  z << -1, 0, 1, 1;  // exp(-900) is fine, exp(900) overflows
  try {
    k.metric(z, g, 1);
    FAIL("no exception");
  } catch (const MetricDomainError& e) {
    CHECK(e.non_finite());
    CHECK(std::string(e.what()).find("at point 1, z = (1, 1)") != std::string::npos);
  }
  Vector q(2);
  RowMatrix none(0, 2);
  CHECK_THROWS_AS(k.quadratic_form(z, RowMatrix::Ones(2, 2), q, none, none, 2), MetricDomainError);
}

TEST_CASE("cancellation: the calling thread's poll stops parallel_for, on any thread count") {
  for (const int threads : {1, 2}) {
    CAPTURE(threads);
    std::atomic<int> polls{0}, items{0};
    // The poll says "cancel" on its 3rd call; it runs on this thread only, every 8 checks at most.
    Cancellation cancel([&] { return ++polls >= 3; }, std::chrono::milliseconds(0));
    const CancelScope scope(&cancel);
    CHECK_THROWS_AS(parallel_for(20000, threads,
                                 [&](Index) {
                                   ++items;
                                   std::this_thread::sleep_for(std::chrono::microseconds(20));
                                 }),
                    Cancelled);
    CHECK(cancel.requested());
    CHECK(polls.load() >= 3);
    CHECK(items.load() < 2000);  // not 20000
  }
  std::atomic<int> items{0};
  parallel_for(1000, 2, [&](Index) { ++items; });  // the scope is gone: no cancellation
  CHECK(items.load() == 1000);
}

TEST_CASE("cancellation: after a request no thread starts more than one item") {
  for (const int threads : {1, 2}) {
    CAPTURE(threads);
    Cancellation cancel;  // no poll: only request() cancels
    const CancelScope scope(&cancel);
    std::atomic<int> items{0}, late{0};
    CHECK_THROWS_AS(parallel_for(100000, threads,
                                 [&](Index) {
                                   if (cancel.requested()) ++late;  // checked before us, set since
                                   if (++items == 100) cancel.request();
                                 }),
                    Cancelled);
    CHECK(items.load() >= 100);
    CHECK(late.load() <= threads - 1);
  }
}

TEST_CASE("cancellation passes through the geodesic solver and its nested kernel loops") {
  const RHVAEKernel k = reference_rhvae(0.01);
  RowMatrix starts = RowMatrix::Zero(64, 2), ends = RowMatrix::Constant(64, 2, 1.5);
  Cancellation cancel;
  const CancelScope scope(&cancel);
  std::atomic<int> calls{0};
  struct Counting {  // requests cancellation from inside the 40th evaluation
    const RHVAEKernel& k;
    Cancellation& cancel;
    std::atomic<int>& calls;
    Index dim() const { return k.dim(); }
    void quadratic_form(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, VectorRef q, RowMatrixRef dqdz,
                        RowMatrixRef dqdv, int n) const {
      if (++calls == 40) cancel.request();
      k.quadratic_form(z, v, q, dqdz, dqdv, n);  // its block loop sees the request and throws
    }
  } counting{k, cancel, calls};
  CHECK_THROWS_AS(solve_geodesics(counting, starts, ends, RowMatrix(0, 2), 0, GeodesicOptions{}, 2), Cancelled);
  CHECK(calls.load() < 60);  // the other thread stopped at its next block too
}
