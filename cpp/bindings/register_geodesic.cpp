// Thin bindings of the discrete geodesic solver: dispatch on the metric's C++ kernel
// (native_dispatch.hpp), shape checks, GIL release, results as arrays.
//
// Kernels solved natively (pairs in parallel, the GIL released): RHVAEKernel, ConstantKernel,
// PullbackKernel, each as ScaledKernel with the metric's scale.
// Any other metric object of the protocol (kernel = None) goes through PythonKernel (python_callbacks.hpp), which
// calls metric.quadratic_form(z, v, grad=...) with the GIL held; its pairs are solved in lockstep so
// that one call serves the evaluations of all of them.
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "latentgeo/numerics/geodesic.hpp"
#include "native_dispatch.hpp"
#include "python_callbacks.hpp"

namespace py = pybind11;
using latentgeo::ConstantKernel;
using latentgeo::ConstRowMatrixRef;
using latentgeo::GeodesicOptions;
using latentgeo::GeodesicSolution;
using latentgeo::Index;
using latentgeo::RowMatrix;
using latentgeo::Vector;

namespace latentgeo_bindings {

namespace {

// The Python exception behind a metric_error (None for other statuses or a C++ error).
py::object python_error(const GeodesicSolution& s) {
  if (!s.error) return py::none();
  try {
    std::rethrow_exception(s.error);
  } catch (py::error_already_set& e) {
    return e.value();
  } catch (...) {
    return py::none();
  }
}

py::dict pack(const std::vector<GeodesicSolution>& sols, Index d) {
  const Index b = static_cast<Index>(sols.size());
  Index max_nodes = 0;
  for (const auto& s : sols) max_nodes = std::max<Index>(max_nodes, s.nodes.rows());
  py::array_t<double> nodes({b, max_nodes, d});
  py::array_t<Index> n_nodes(b);
  py::array_t<double> length(b), energy(b), straight(b);
  py::array_t<int> n_iter(b), n_eval(b), n_levels(b), status(b);
  py::list message, error;
  auto nd = nodes.mutable_unchecked<3>();
  for (Index i = 0; i < b; ++i) {
    const auto& s = sols[static_cast<std::size_t>(i)];
    for (Index r = 0; r < max_nodes; ++r)
      for (Index c = 0; c < d; ++c) nd(i, r, c) = r < s.nodes.rows() ? s.nodes(r, c) : std::nan("");
    n_nodes.mutable_at(i) = s.nodes.rows();
    length.mutable_at(i) = s.length;
    energy.mutable_at(i) = s.energy;
    straight.mutable_at(i) = s.straight_length;
    n_iter.mutable_at(i) = s.n_iter;
    n_eval.mutable_at(i) = s.n_evaluations;
    n_levels.mutable_at(i) = s.n_levels;
    status.mutable_at(i) = static_cast<int>(s.status);
    message.append(py::reinterpret_steal<py::str>(
        PyUnicode_DecodeUTF8(s.message.data(), static_cast<Py_ssize_t>(s.message.size()), "replace")));
    error.append(python_error(s));
  }
  py::dict out;
  out["nodes"] = nodes;
  out["n_nodes"] = n_nodes;
  out["length"] = length;
  out["energy"] = energy;
  out["straight_length"] = straight;
  out["n_iter"] = n_iter;
  out["n_evaluations"] = n_eval;
  out["n_levels"] = n_levels;
  out["status"] = status;
  out["message"] = message;  // non-empty where an error of the metric decided the status
  out["error"] = error;      // the metric's Python exception of a metric_error, else None
  py::list levels;  // per pair and level: (segments, n_iter, n_evaluations, kernel_points, kernel_seconds, length)
  for (const auto& s : sols) {
    py::list per_pair;
    for (const auto& l : s.levels)
      per_pair.append(
          py::make_tuple(l.segments, l.n_iter, l.n_evaluations, l.kernel_points, l.kernel_seconds, l.length));
    levels.append(per_pair);
  }
  out["levels"] = levels;
  return out;
}

// The options' attribute names (repr, equality and pickling, whose state is a dict by name).
constexpr std::array<const char*, 12> kOptionNames = {"n_segments", "min_segments",   "max_segments", "length_tol",
                                                      "ftol",       "gtol",           "max_iter",     "history",
                                                      "quadrature", "pairs_per_call", "max_ratio",    "preconditioner"};

// An option that is an enum, by the names of its table (index = value); errors name the option.
template <class Enum, std::size_t N>
Enum enum_of(const std::array<const char*, N>& names, const std::string& name, const char* option) {
  std::string known;
  for (std::size_t i = 0; i < N; ++i) {
    if (name == names[i]) return static_cast<Enum>(i);
    known += std::string(i ? ", '" : "'") + names[i] + "'";
  }
  throw std::invalid_argument(std::string(option) + ": expected one of " + known + ", got '" + name + "'");
}

py::dict option_state(const GeodesicOptions& o) {
  const py::object obj = py::cast(o);
  py::dict state;
  for (const char* name : kOptionNames) state[name] = obj.attr(name);
  return state;
}

std::string option_repr(const GeodesicOptions& o) {
  const py::dict state = option_state(o);
  std::string out = "GeodesicOptions(";
  for (std::size_t i = 0; i < kOptionNames.size(); ++i)
    out +=
        std::string(i > 0 ? ", " : "") + kOptionNames[i] + "=" + py::repr(state[kOptionNames[i]]).cast<std::string>();
  return out + ")";
}

// A Python metric: up to o.pairs_per_call pairs are solved at once on worker threads, and each round of
// their evaluations is one call of the metric on the calling thread (which takes the GIL only for
// that call). The metric carries its own scale.
std::vector<GeodesicSolution> solve_in_lockstep(const py::object& metric, const ConstRowMatrixRef& starts,
                                                const ConstRowMatrixRef& ends, const ConstRowMatrixRef& init, Index n0,
                                                const GeodesicOptions& o) {
  const Index b = starts.rows(), d = starts.cols();
  const PythonKernel direct(metric, d);
  latentgeo::LockstepPool<MetricRequest> pool;
  const LockstepKernel kernel(pool, d);
  std::vector<GeodesicSolution> sols(static_cast<std::size_t>(b));
  const auto solve = [&](Index i) {
    const RowMatrix pair_init = n0 > 0 ? RowMatrix(init.middleRows(i * n0, n0)) : RowMatrix(0, d);
    sols[static_cast<std::size_t>(i)] = latentgeo::solve_geodesic(kernel, starts.row(i), ends.row(i), pair_init, o);
  };
  run_interruptible(
      [&] { pool.run(b, o.pairs_per_call, solve, RoundServer(direct)); });  // GIL released but in the calls
  return sols;
}

// Native kernels (kernel, scale) solve pairs in parallel with the GIL released; kernel = None
// solves the Python metric in lockstep (the metric carries its own scale).
py::dict geodesic_batch(py::object metric, py::object kernel, double scale, const ConstRowMatrixRef& starts,
                        const ConstRowMatrixRef& ends, const ConstRowMatrixRef& init, Index n0,
                        const GeodesicOptions& o, int n_threads) {
  const Index d = starts.cols();
  require(ends.rows() == starts.rows() && ends.cols() == d, "ends: expected the shape of starts");
  require(n0 == 0 || (n0 >= 2 && init.rows() == starts.rows() * n0 && init.cols() == d),
          "init: expected (B * n0, d) rows");
  latentgeo::validate(o);
  std::vector<GeodesicSolution> sols;
  if (kernel.is_none()) {
    require(scale == 1.0, "scale: a Python metric carries its own scale (expected 1)");
    sols = solve_in_lockstep(metric, starts, ends, init, n0, o);
    return pack(sols, d);
  }
  visit_kernel(kernel, scale, [&](const auto& k) {
    using Kernel = std::decay_t<decltype(k)>;
    // The decoded energy needs a decoder: of the native kernels only PullbackKernel has one.
    if constexpr (!latentgeo::detail::has_decoded_energy<Kernel>::value)
      if (o.quadrature == latentgeo::Quadrature::decoded)
        unsupported_kernel<Kernel>("quadrature 'decoded'", "no decoder");
    require(k.dim() == d, "starts: dimension does not match the metric");
    run_interruptible(  // GIL released
        [&] { sols = latentgeo::solve_geodesics(k, starts, ends, init, n0, o, n_threads); });
  });
  return pack(sols, d);
}

}  // namespace

void register_geodesic(py::module_& m) {
  py::class_<ConstantKernel>(m, "ConstantKernel")
      .def(py::init<const RowMatrix&>(), py::arg("A"))
      .def_property_readonly("dim", &ConstantKernel::dim)
      .def_property_readonly("A", &ConstantKernel::matrix);
  py::class_<GeodesicOptions>(m, "GeodesicOptions",
                              "Options of the discrete geodesic solver; the defaults are latentgeo.geodesics'.")
      .def(py::init([](const py::kwargs& kw) { return from_keywords<GeodesicOptions>(kw, "GeodesicOptions"); }))
      .def_readwrite("n_segments", &GeodesicOptions::n_segments, "> 0: fixed final number of segments; 0: adaptive")
      .def_readwrite("min_segments", &GeodesicOptions::min_segments, "segments of the first level")
      .def_readwrite("max_segments", &GeodesicOptions::max_segments, "adaptive refinement stops here")
      .def_readwrite("length_tol", &GeodesicOptions::length_tol, "relative accuracy target of the length")
      .def_readwrite("ftol", &GeodesicOptions::ftol, "relative energy change of a level's last step (None: length_tol)")
      .def_readwrite("gtol", &GeodesicOptions::gtol, "decrement relative to the energy (None: 0.01 length_tol)")
      .def_readwrite("max_iter", &GeodesicOptions::max_iter, "L-BFGS iterations per level")
      .def_readwrite("history", &GeodesicOptions::history, "L-BFGS curvature pairs")
      .def_property(
          "quadrature",
          [](const GeodesicOptions& o) { return latentgeo::kQuadratureNames[static_cast<std::size_t>(o.quadrature)]; },
          [](GeodesicOptions& o, const std::string& name) {
            o.quadrature = enum_of<latentgeo::Quadrature>(latentgeo::kQuadratureNames, name, "quadrature");
          },
          "the energy of a level: 'simpson', 'midpoint' or 'decoded' (a decoder's polyline)")
      .def_property(
          "preconditioner",
          [](const GeodesicOptions& o) {
            return latentgeo::kPreconditionerNames[static_cast<std::size_t>(o.preconditioner)];
          },
          [](GeodesicOptions& o, const std::string& name) {
            o.preconditioner =
                enum_of<latentgeo::Preconditioner>(latentgeo::kPreconditionerNames, name, "preconditioner");
          },
          "L-BFGS's initial inverse Hessian: 'metric' (G's blocks), 'chord' (G along each segment, O(n d)) or "
          "'auto' (chord for decoders of high dimension, see kChordDim)")
      .def_readwrite("max_ratio", &GeodesicOptions::max_ratio,
                     "the length error estimate's largest convergence ratio: 16 smooth metrics, 2 where G jumps")
      .def_property(
          "smooth", [](const GeodesicOptions& o) { return o.max_ratio == latentgeo::kSmoothRatio; },
          [](GeodesicOptions& o, bool smooth) {
            o.max_ratio = smooth ? latentgeo::kSmoothRatio : latentgeo::kJumpRatio;
          },
          "whether G is smooth: sets max_ratio to its smooth (16) or jump (2) value")
      .def_readwrite("pairs_per_call", &GeodesicOptions::pairs_per_call,
                     "metrics without a C++ kernel: pairs whose evaluations share one call")
      .def("__repr__", &option_repr)
      .def("__eq__",
           [](const GeodesicOptions& a, const GeodesicOptions& b) { return option_state(a).equal(option_state(b)); })
      .def(py::pickle(&option_state,
                      [](const py::dict& state) { return from_keywords<GeodesicOptions>(state, "GeodesicOptions"); }));
  m.def("geodesic_batch", &geodesic_batch, py::arg("metric"), py::arg("kernel"), py::arg("scale"), py::arg("starts"),
        py::arg("ends"), py::arg("init"), py::arg("n0"), py::arg("options"), py::arg("n_threads"),
        "Discrete geodesics of B pairs (private; use latentgeo.geodesics).");
  m.def(
      "geodesic_status_names",
      [] {
        return std::vector<std::string>(latentgeo::kGeodesicStatusNames.begin(), latentgeo::kGeodesicStatusNames.end());
      },
      "The solver's status names, index = status code.");
}

}  // namespace latentgeo_bindings
