// Thin bindings of the discrete geodesic solver: dispatch on the metric's C++ kernel, shape
// checks, GIL release, results as arrays.
//
// Kernels solved natively (pairs in parallel, the GIL released): RHVAEKernel, ConstantKernel,
// PullbackKernel.
// Any other metric object of the protocol goes through PythonKernel, which calls
// metric.quadratic_form(z, v, grad=...) with the GIL held, so its pairs run one after the other.
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "latentgeo/geodesic.hpp"
#include "latentgeo/pullback.hpp"
#include "latentgeo/rhvae.hpp"

namespace py = pybind11;
using latentgeo::ConstantKernel;
using latentgeo::ConstRowMatrixRef;
using latentgeo::GeodesicOptions;
using latentgeo::GeodesicSolution;
using latentgeo::Index;
using latentgeo::PullbackKernel;
using latentgeo::RHVAEKernel;
using latentgeo::RowMatrix;
using latentgeo::Vector;

namespace latentgeo_bindings {

namespace {

// A metric implemented in Python, seen as a kernel. Every call takes the GIL. What the metric
// raises is sorted out here, on the calling thread with the GIL held: MetricDomainError becomes
// the C++ MetricDomainError (an infinite energy for the solver), an Exception stays a
// py::error_already_set (the pair's metric_error), and anything else (KeyboardInterrupt,
// SystemExit) cancels the whole call and is re-raised by run_interruptible.
class PythonKernel {
 public:
  PythonKernel(py::object metric, Index dim) : metric_(std::move(metric)), dim_(dim) {}
  Index dim() const { return dim_; }

  void quadratic_form(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, latentgeo::VectorRef q,
                      latentgeo::RowMatrixRef dqdz, latentgeo::RowMatrixRef dqdv, int /*n_threads*/) const {
    py::gil_scoped_acquire gil;
    const bool grad = dqdz.rows() > 0;
    py::object out =
        call([&] { return metric_.attr("quadratic_form")(RowMatrix(z), RowMatrix(v), py::arg("grad") = grad); });
    if (!grad) {
      q = as_vector(out, z.rows());
      return;
    }
    py::tuple parts = out.cast<py::tuple>();
    require(parts.size() == 3, "metric: quadratic_form(z, v, grad=True) must return (q, dq_dz, dq_dv)");
    q = as_vector(parts[0], z.rows());
    dqdz = as_matrix(parts[1], z.rows(), "dq_dz");
    dqdv = as_matrix(parts[2], z.rows(), "dq_dv");
    require_positive(z, v, q, dqdv);
  }

  // G from metric.metric(z) (N, d, d): one call instead of d quadratic forms.
  void metric_tensors(const ConstRowMatrixRef& z, RowMatrix& g) const {
    py::gil_scoped_acquire gil;
    auto arr = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(
        call([&] { return metric_.attr("metric")(RowMatrix(z)); }));
    require(arr && arr.ndim() == 3 && arr.shape(0) == z.rows() && arr.shape(1) == dim_ && arr.shape(2) == dim_,
            "metric: metric(z) must return an array of shape (N, d, d)");
    g = Eigen::Map<const RowMatrix>(arr.data(), z.rows(), dim_ * dim_);
  }

 private:
  template <class F>
  static py::object call(F&& f) {
    try {
      return f();
    } catch (py::error_already_set& e) {
      if (e.matches(metric_domain_error_type()))
        throw latentgeo::MetricDomainError(py::str(e.value()).cast<std::string>(),
                                           py::getattr(e.value(), "non_finite", py::bool_(false)).cast<bool>());
      if (!e.matches(PyExc_Exception)) {
        latentgeo::Cancellation* cancel = latentgeo::current_cancellation();
        if (cancel == nullptr) throw;
        cancel->request(std::make_exception_ptr(e));
        throw latentgeo::Cancelled();
      }
      throw;
    }
  }
  // v^T G v < 0 beyond rounding (|q| <= |v| |G v| = |v| |dq/dv| / 2) means G is not positive
  // definite there: a point where the metric is not defined.
  static void require_positive(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v,
                               const latentgeo::ConstVectorRef& q, const ConstRowMatrixRef& dqdv) {
    for (Index i = 0; i < z.rows(); ++i)
      if (q(i) < -1e-8 * v.row(i).norm() * dqdv.row(i).norm())
        throw latentgeo::MetricDomainError("metric: quadratic_form returned v^T G v < 0 at z = " +
                                           latentgeo::format_point(z.row(i)) + " (G is not positive definite)");
  }
  static Vector as_vector(const py::handle& h, Index n) {
    Vector out = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(h).cast<Vector>();
    require(out.size() == n, "metric: quadratic_form returned q of the wrong size");
    return out;
  }
  RowMatrix as_matrix(const py::handle& h, Index n, const char* name) const {
    RowMatrix out = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(h).cast<RowMatrix>();
    require(out.rows() == n && out.cols() == dim_,
            std::string("metric: quadratic_form returned ") + name + " of the wrong shape");
    return out;
  }

  py::object metric_;
  Index dim_;
};

template <class Kernel>
std::vector<GeodesicSolution> run(const Kernel& kernel, double scale, const ConstRowMatrixRef& starts,
                                  const ConstRowMatrixRef& ends, const ConstRowMatrixRef& init, Index n0,
                                  const GeodesicOptions& o, int n_threads) {
  const latentgeo::ScaledKernel<Kernel> scaled(kernel, scale);
  return latentgeo::solve_geodesics(scaled, starts, ends, init, n0, o, n_threads);
}

// Solves on the C++ kernel of type Kernel, GIL released, when `kernel` holds one.
template <class Kernel>
bool solve_native(const py::object& kernel, double scale, const ConstRowMatrixRef& starts,
                  const ConstRowMatrixRef& ends, const ConstRowMatrixRef& init, Index n0, const GeodesicOptions& o,
                  int n_threads, std::vector<GeodesicSolution>& sols) {
  if (!py::isinstance<Kernel>(kernel)) return false;
  const Kernel& k = kernel.cast<const Kernel&>();
  require(k.dim() == starts.cols(), "starts: dimension does not match the metric");
  run_interruptible([&] { sols = run(k, scale, starts, ends, init, n0, o, n_threads); });  // GIL released
  return true;
}

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

// The state of the options, in the order of kOptionNames (repr, equality and pickling).
constexpr std::array<const char*, 9> kOptionNames = {"n_segments", "min_segments", "max_segments", "length_tol", "ftol",
                                                     "gtol",       "max_iter",     "history",      "simpson"};

py::tuple option_state(const GeodesicOptions& o) {
  return py::make_tuple(o.n_segments, o.min_segments, o.max_segments, o.length_tol, o.ftol, o.gtol, o.max_iter,
                        o.history, o.simpson);
}

GeodesicOptions options_from_state(const py::tuple& t) {
  require(t.size() == kOptionNames.size(), "GeodesicOptions: expected a state of 9 values");
  GeodesicOptions o;
  o.n_segments = t[0].cast<Index>();
  o.min_segments = t[1].cast<Index>();
  o.max_segments = t[2].cast<Index>();
  o.length_tol = t[3].cast<double>();
  o.ftol = t[4].cast<std::optional<double>>();
  o.gtol = t[5].cast<std::optional<double>>();
  o.max_iter = t[6].cast<int>();
  o.history = t[7].cast<int>();
  o.simpson = t[8].cast<bool>();
  return o;
}

std::string option_repr(const GeodesicOptions& o) {
  const py::tuple state = option_state(o);
  std::string out = "GeodesicOptions(";
  for (std::size_t i = 0; i < kOptionNames.size(); ++i)
    out += std::string(i > 0 ? ", " : "") + kOptionNames[i] + "=" + py::repr(state[i]).cast<std::string>();
  return out + ")";
}

py::dict geodesic_batch(py::object metric, py::object kernel, double scale, const ConstRowMatrixRef& starts,
                        const ConstRowMatrixRef& ends, const ConstRowMatrixRef& init, Index n0,
                        const GeodesicOptions& o, int n_threads) {
  const Index d = starts.cols();
  require(ends.rows() == starts.rows() && ends.cols() == d, "ends: expected the shape of starts");
  require(n0 == 0 || (n0 >= 2 && init.rows() == starts.rows() * n0 && init.cols() == d),
          "init: expected (B * n0, d) rows");
  latentgeo::validate(o);
  require(scale > 0, "scale: must be > 0");
  std::vector<GeodesicSolution> sols;
  const bool native = solve_native<RHVAEKernel>(kernel, scale, starts, ends, init, n0, o, n_threads, sols) ||
                      solve_native<ConstantKernel>(kernel, scale, starts, ends, init, n0, o, n_threads, sols) ||
                      solve_native<PullbackKernel>(kernel, scale, starts, ends, init, n0, o, n_threads, sols);
  if (!native) {
    // Python metric: every evaluation needs the GIL, so the pairs run serially. The GIL is released
    // in between and retaken by each callback.
    const PythonKernel k(metric, d);
    run_interruptible([&] { sols = run(k, 1.0, starts, ends, init, n0, o, 1); });  // the metric carries its scale
  }
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
      .def(py::init<>())
      .def_readwrite("n_segments", &GeodesicOptions::n_segments, "> 0: fixed final number of segments; 0: adaptive")
      .def_readwrite("min_segments", &GeodesicOptions::min_segments, "segments of the first level")
      .def_readwrite("max_segments", &GeodesicOptions::max_segments, "adaptive refinement stops here")
      .def_readwrite("length_tol", &GeodesicOptions::length_tol, "relative accuracy target of the length")
      .def_readwrite("ftol", &GeodesicOptions::ftol, "relative energy change of a level's last step (None: length_tol)")
      .def_readwrite("gtol", &GeodesicOptions::gtol, "decrement relative to the energy (None: 0.01 length_tol)")
      .def_readwrite("max_iter", &GeodesicOptions::max_iter, "L-BFGS iterations per level")
      .def_readwrite("history", &GeodesicOptions::history, "L-BFGS curvature pairs")
      .def_readwrite("simpson", &GeodesicOptions::simpson, "Simpson's rule per segment (else the midpoint rule)")
      .def("__repr__", &option_repr)
      .def("__eq__",
           [](const GeodesicOptions& a, const GeodesicOptions& b) { return option_state(a).equal(option_state(b)); })
      .def(py::pickle(&option_state, &options_from_state));
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
