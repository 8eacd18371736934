// Thin bindings of the curve kernels: velocities, quadrature weights, integrals.
#include <pybind11/eigen.h>

#include "bindings.hpp"
#include "latentgeo/numerics/curves.hpp"

namespace py = pybind11;
using latentgeo::ConstRowMatrixRef;
using latentgeo::ConstVectorRef;
using latentgeo::Index;
using latentgeo::Integral;
using latentgeo::RowMatrix;
using latentgeo::Rule;
using latentgeo::Vector;

namespace latentgeo_bindings {

namespace {

Rule parse_rule(const std::string& rule) {
  if (rule == "trapezoid") return Rule::trapezoid;
  if (rule == "simpson") return Rule::simpson;
  if (rule == "aetk") return Rule::aetk;
  throw std::invalid_argument("rule: expected 'trapezoid', 'simpson' or 'aetk', got '" + rule + "'");
}

Integral parse_integral(const std::string& integral) {
  if (integral == "length") return Integral::length;
  if (integral == "energy") return Integral::energy;
  throw std::invalid_argument("integral: expected 'length' or 'energy', got '" + integral + "'");
}

RowMatrix finite_difference(const ConstRowMatrixRef& ahead, const ConstRowMatrixRef& behind, double step) {
  require(ahead.rows() == behind.rows() && ahead.cols() == behind.cols(), "curve: inconsistent output shapes");
  require(step > 0.0, "eps: must be > 0");
  RowMatrix out(ahead.rows(), ahead.cols());
  py::gil_scoped_release release;  // GIL released (one fast pass, not interruptible)
  latentgeo::finite_difference(ahead, behind, step, out);
  return out;
}

RowMatrix discrete_velocity(const ConstRowMatrixRef& points, const ConstVectorRef& t, int n_threads) {
  require(t.size() >= 2, "t: need at least 2 times");
  require(points.rows() % t.size() == 0, "points: number of points per curve must equal len(t)");
  RowMatrix out(points.rows(), points.cols());
  run_interruptible([&] { latentgeo::discrete_velocity(points, t, out, n_threads); });  // GIL released
  return out;
}

Vector quadrature_weights(const ConstVectorRef& t, const std::string& rule) {
  return latentgeo::quadrature_weights(t, parse_rule(rule));
}

// Values of the integral for each curve (integrate_with_grad for the gradients).
Vector integrate(const ConstVectorRef& q, const ConstVectorRef& weights, const std::string& integral,
                 double energy_factor, int n_threads) {
  const Integral kind = parse_integral(integral);
  require(weights.size() > 0 && q.size() % weights.size() == 0, "q: size must be a multiple of len(t)");
  Vector values(q.size() / weights.size());
  Vector no_grad(0);  // the kernel's convention: an empty output is not computed
  run_interruptible(  // GIL released
      [&] { latentgeo::integrate(q, weights, kind, energy_factor, values, no_grad, n_threads); });
  return values;
}

// Fused: values and gradients with respect to the points and velocities.
py::tuple integrate_with_grad(const ConstVectorRef& q, RowMatrix dqdz, RowMatrix dqdv, const ConstVectorRef& weights,
                              const std::string& integral, double energy_factor, int n_threads) {
  const Integral kind = parse_integral(integral);
  require(weights.size() > 0 && q.size() % weights.size() == 0, "q: size must be a multiple of len(t)");
  require(dqdz.rows() == q.size() && dqdv.rows() == q.size(), "dqdz: one row per point expected");
  Vector values(q.size() / weights.size());
  Vector grad_q(q.size());
  run_interruptible([&] {  // GIL released
    latentgeo::integrate(q, weights, kind, energy_factor, values, grad_q, n_threads);
    latentgeo::chain_quadratic_form(grad_q, dqdz, dqdv);
  });
  return py::make_tuple(values, dqdz, dqdv);
}

RowMatrix hermite_tangents(const RowMatrix& nodes) {
  require(nodes.rows() >= 5, "nodes: the Hermite curve needs at least 5 nodes, got " + std::to_string(nodes.rows()));
  RowMatrix m;
  latentgeo::detail::hermite_tangents(nodes, m);
  return m;
}

// Points and velocities of the curve at times t in [0, 1] (checked by the caller).
py::tuple hermite_curve(const RowMatrix& nodes, const ConstVectorRef& t) {
  const RowMatrix m = hermite_tangents(nodes);
  const Index n = nodes.rows() - 1;
  RowMatrix points(t.size(), nodes.cols()), velocities(t.size(), nodes.cols());
  for (Index k = 0; k < t.size(); ++k) {
    const double u = t(k) * static_cast<double>(n);
    const Index i = std::min<Index>(static_cast<Index>(u), n - 1);
    latentgeo::detail::hermite_eval(nodes, m, i, u - static_cast<double>(i), 1.0 / static_cast<double>(n),
                                    points.row(k), velocities.row(k));
  }
  return py::make_tuple(points, velocities);
}

}  // namespace

void register_curves(py::module_& m) {
  m.def("hermite_tangents", &hermite_tangents, py::arg("nodes"));
  m.def("hermite_curve", &hermite_curve, py::arg("nodes"), py::arg("t"));
  m.def("finite_difference", &finite_difference, py::arg("ahead"), py::arg("behind"), py::arg("step"));
  m.def("discrete_velocity", &discrete_velocity, py::arg("points"), py::arg("t"), py::arg("n_threads"));
  m.def("quadrature_weights", &quadrature_weights, py::arg("t"), py::arg("rule"));
  m.def("integrate", &integrate, py::arg("q"), py::arg("weights"), py::arg("integral"), py::arg("energy_factor"),
        py::arg("n_threads"));
  m.def("integrate_with_grad", &integrate_with_grad, py::arg("q"), py::arg("dqdz"), py::arg("dqdv"), py::arg("weights"),
        py::arg("integral"), py::arg("energy_factor"), py::arg("n_threads"));
}

}  // namespace latentgeo_bindings
