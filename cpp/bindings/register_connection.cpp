// Bindings of the connection (connection/connection.hpp): Christoffel symbols, curvature, exp/log
// maps and parallel transport. Every function takes a native kernel and its scale (an
// RHVAEKernel, ConstantKernel or PullbackKernel, dispatched by native_dispatch.hpp, scaled there)
// or, with kernel = None, the batched Python callback `geometry_fn(z, want_derivative) -> (G, dG
// or None, ok)` of latentgeo.connection. C++ work runs with the GIL released; the callback takes it
// back for each batched call, and its model runs on one thread with all trajectories in one
// lockstep block (one call per stage).
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "latentgeo/connection/connection.hpp"
#include "native_dispatch.hpp"
#include "python_callbacks.hpp"

namespace py = pybind11;
using latentgeo::ConnectionOptions;
using latentgeo::ConstRowMatrixRef;
using latentgeo::Index;
using latentgeo::OdeStats;
using latentgeo::RowMatrix;
using latentgeo::Vector;

namespace latentgeo_bindings {

namespace {

// Runs body(model, options, n_threads) on the connection model of the native kernel (kernel,
// scale), or with kernel = None on the Python callback's model (one thread, one lockstep block of
// `batch` trajectories), with the GIL released.
template <class Body>
auto with_model(const py::object& kernel, double scale, const py::object& geometry_fn, Index dim, ConnectionOptions o,
                int n_threads, Index batch, Body&& body) {
  auto run = [&](const auto& m, const ConnectionOptions& opts, int threads) {
    require(m.dim() == dim, "z: dimension " + std::to_string(dim) + " does not match the metric's dimension " +
                                std::to_string(m.dim()));
    py::gil_scoped_release release;  // GIL released for every connection call (callbacks retake it)
    return body(m, opts, threads);
  };
  if (!kernel.is_none())
    return visit_kernel(kernel, scale, [&](const auto& k) {
      using Kernel = std::decay_t<decltype(k)>;
      return run(latentgeo::KernelModel<Kernel>(k, o.fd_step), o, n_threads);
    });
  require(!geometry_fn.is_none(), "geometry_fn: needed for a metric without a native kernel");
  require(scale == 1.0, "scale: a Python metric carries its own scale (expected 1)");
  o.block = std::max<Index>(o.block, batch);
  return run(latentgeo::MetricSourceModel<PythonSource>(PythonSource(geometry_fn, dim), o.fd_step), o, 1);
}

// status, n_steps, n_rejected and the time reached of each trajectory.
void add_stats(py::dict& out, const std::vector<OdeStats>& stats) {
  const auto b = static_cast<py::ssize_t>(stats.size());
  py::array_t<int> status(b);
  py::array_t<Index> steps(b), rejected(b);
  py::array_t<double> reached(b);
  for (py::ssize_t i = 0; i < b; ++i) {
    const auto& s = stats[static_cast<std::size_t>(i)];
    status.mutable_at(i) = static_cast<int>(s.status);
    steps.mutable_at(i) = s.n_steps;
    rejected.mutable_at(i) = s.n_rejected;
    reached.mutable_at(i) = s.t;
  }
  out["status"] = status;
  out["n_steps"] = steps;
  out["n_rejected"] = rejected;
  out["t_reached"] = reached;
}

void check_times(const Vector& t_out, double t_end) {
  for (Index j = 0; j < t_out.size(); ++j) {
    require(std::isfinite(t_out(j)) && t_out(j) >= 0.0 && t_out(j) <= t_end, "t: times must lie in [0, t_end]");
    require(j == 0 || t_out(j) > t_out(j - 1), "t: times must be strictly increasing");
  }
}

void check_options(const ConnectionOptions& o) {
  require(o.rtol > 0.0 && o.rtol < 1.0, "rtol: must be in (0, 1)");
  require(o.max_steps >= 1, "max_steps: must be >= 1");
  require(o.tol > 0.0, "tol: must be > 0");
  require(o.max_iter >= 1, "max_iter: must be >= 1");
  require(o.jacobian_rtol > 0.0 && o.jacobian_rtol < 1.0, "jacobian_rtol: must be in (0, 1)");
  require(o.fd_step > 0.0 && o.fd_step < 1.0, "fd_step: must be in (0, 1)");
  require(o.block >= 1, "block: must be >= 1");
}

py::tuple christoffel(const py::object& kernel, double scale, const py::object& geometry_fn, const ConstRowMatrixRef& z,
                      const ConnectionOptions& o, int n_threads) {
  check_options(o);
  std::vector<char> ok;
  RowMatrix gamma = with_model(kernel, scale, geometry_fn, z.cols(), o, n_threads, z.rows(),
                               [&](const auto& m, const ConnectionOptions& opts, int threads) {
                                 return latentgeo::christoffel(m, z, ok, opts, threads);
                               });
  return py::make_tuple(gamma, to_flags(ok));
}

py::tuple curvature(const py::object& kernel, double scale, const py::object& geometry_fn, const ConstRowMatrixRef& z,
                    const ConnectionOptions& o, int n_threads) {
  check_options(o);
  std::vector<char> ok;
  RowMatrix ricci;
  Vector scalar;
  with_model(kernel, scale, geometry_fn, z.cols(), o, n_threads, z.rows(),
             [&](const auto& m, const ConnectionOptions& opts, int threads) {
               latentgeo::curvature(m, z, ricci, scalar, ok, opts, threads);
               return 0;
             });
  return py::make_tuple(ricci, scalar, to_flags(ok));
}

py::dict exp_map(const py::object& kernel, double scale, const py::object& geometry_fn, const ConstRowMatrixRef& z,
                 const ConstRowMatrixRef& v, double t_end, const Vector& t_out, const ConnectionOptions& o,
                 int n_threads) {
  check_options(o);
  require(v.rows() == z.rows() && v.cols() == z.cols(), "v: expected the shape of z");
  require(std::isfinite(t_end) && t_end > 0.0, "t: the end time must be > 0");
  check_times(t_out, t_end);
  const latentgeo::ExpOutput e = with_model(kernel, scale, geometry_fn, z.cols(), o, n_threads, z.rows(),
                                            [&](const auto& m, const ConnectionOptions& opts, int threads) {
                                              return latentgeo::exp_map(m, z, v, t_end, t_out, opts, threads);
                                            });
  py::dict out;
  out["points"] = e.points;
  out["velocities"] = e.velocities;
  out["curves"] = e.curves;
  out["curve_velocities"] = e.curve_velocities;
  out["speed_drift"] = e.speed_drift;
  add_stats(out, e.stats);
  return out;
}

py::dict log_map(const py::object& kernel, double scale, const py::object& geometry_fn, const ConstRowMatrixRef& z0,
                 const ConstRowMatrixRef& z1, const ConstRowMatrixRef& v_init, const ConnectionOptions& o,
                 int n_threads) {
  check_options(o);
  require(z1.rows() == z0.rows() && z1.cols() == z0.cols(), "z1: expected the shape of z0");
  require(v_init.rows() == z0.rows() && v_init.cols() == z0.cols(), "v_init: expected the shape of z0");
  const latentgeo::ShootingOutput s = with_model(kernel, scale, geometry_fn, z0.cols(), o, n_threads, z0.rows(),
                                                 [&](const auto& m, const ConnectionOptions& opts, int threads) {
                                                   return latentgeo::shoot(m, z0, z1, v_init, opts, threads);
                                                 });
  py::dict out;
  out["vectors"] = s.vectors;
  out["residual"] = s.residual;
  out["status"] = py::array_t<int>(static_cast<py::ssize_t>(s.status.size()), s.status.data());
  out["n_iter"] = py::array_t<int>(static_cast<py::ssize_t>(s.n_iter.size()), s.n_iter.data());
  return out;
}

py::dict pack_transport(const latentgeo::TransportOutput& t) {
  py::dict out;
  out["vectors"] = t.vectors;
  out["along"] = t.along;
  out["points"] = t.points;
  add_stats(out, t.stats);
  return out;
}

void check_vectors(const ConstRowMatrixRef& w, Index rows, Index d) {
  require(w.rows() == rows && d > 0 && w.cols() % d == 0 && w.cols() > 0, "vectors: expected (B, V * d) rows");
}

py::dict transport_geodesic(const py::object& kernel, double scale, const py::object& geometry_fn,
                            const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, const ConstRowMatrixRef& w,
                            double t_end, const Vector& t_out, const ConnectionOptions& o, int n_threads) {
  check_options(o);
  require(v.rows() == z.rows() && v.cols() == z.cols(), "v: expected the shape of z");
  check_vectors(w, z.rows(), z.cols());
  require(std::isfinite(t_end) && t_end > 0.0, "t: the end time must be > 0");
  check_times(t_out, t_end);
  return pack_transport(with_model(kernel, scale, geometry_fn, z.cols(), o, n_threads, z.rows(),
                                   [&](const auto& m, const ConnectionOptions& opts, int threads) {
                                     return latentgeo::transport_geodesic(m, z, v, w, t_end, t_out, opts, threads);
                                   }));
}

// Along the C^1 Hermite interpolants of node arrays (n_i, d), one per row of w, on [0, 1].
py::dict transport_nodes(const py::object& kernel, double scale, const py::object& geometry_fn,
                         const std::vector<RowMatrix>& nodes, const ConstRowMatrixRef& w, const Vector& t_out,
                         const ConnectionOptions& o, int n_threads) {
  check_options(o);
  require(!nodes.empty(), "curve: no curves");
  const Index d = nodes.front().cols();
  for (const auto& x : nodes) require(x.cols() == d && x.allFinite(), "curve: node arrays must be finite (n, d)");
  check_vectors(w, static_cast<Index>(nodes.size()), d);
  check_times(t_out, 1.0);
  const latentgeo::HermiteCurves curves(nodes);
  return pack_transport(with_model(kernel, scale, geometry_fn, d, o, n_threads, w.rows(),
                                   [&](const auto& m, const ConnectionOptions& opts, int threads) {
                                     return latentgeo::transport_curve(m, curves, w, 1.0, t_out, opts, threads);
                                   }));
}

// Along one Python curve on [0, 1]: curve_fn(t) -> (points, velocities); w is (1, V d).
py::dict transport_callable(const py::object& kernel, double scale, const py::object& geometry_fn,
                            const py::object& curve_fn, Index dim, const ConstRowMatrixRef& w, const Vector& t_out,
                            const ConnectionOptions& o) {
  check_options(o);
  check_vectors(w, 1, dim);
  check_times(t_out, 1.0);
  const PythonCurve curve(curve_fn, dim);
  return pack_transport(
      with_model(kernel, scale, geometry_fn, dim, o, 1, 1, [&](const auto& m, const ConnectionOptions& opts, int) {
        return latentgeo::transport_curve(m, curve, w, 1.0, t_out, opts, 1);
      }));
}

}  // namespace

void register_connection(py::module_& m) {
  py::class_<ConnectionOptions>(m, "ConnectionOptions", "Options of the connection operations (defaults in C++).")
      .def(py::init([](const py::kwargs& kw) { return from_keywords<ConnectionOptions>(kw, "ConnectionOptions"); }))
      .def_readwrite("rtol", &ConnectionOptions::rtol)
      .def_readwrite("max_steps", &ConnectionOptions::max_steps)
      .def_readwrite("tol", &ConnectionOptions::tol)
      .def_readwrite("max_iter", &ConnectionOptions::max_iter)
      .def_readwrite("jacobian_rtol", &ConnectionOptions::jacobian_rtol)
      .def_readwrite("fd_step", &ConnectionOptions::fd_step)
      .def_readwrite("block", &ConnectionOptions::block);
  m.def("connection_status_names", [] {
    std::vector<std::string> names;
    for (int s = 0; s < latentgeo::kConnectionStatusCount; ++s)
      names.emplace_back(latentgeo::connection_status_name(s));
    return names;
  });
  m.def("christoffel", &christoffel, py::kw_only(), py::arg("kernel"), py::arg("scale"), py::arg("geometry_fn"),
        py::arg("z"), py::arg("options"), py::arg("n_threads"));
  m.def("curvature", &curvature, py::kw_only(), py::arg("kernel"), py::arg("scale"), py::arg("geometry_fn"),
        py::arg("z"), py::arg("options"), py::arg("n_threads"));
  m.def("exp_map", &exp_map, py::kw_only(), py::arg("kernel"), py::arg("scale"), py::arg("geometry_fn"), py::arg("z"),
        py::arg("v"), py::arg("t_end"), py::arg("t_out"), py::arg("options"), py::arg("n_threads"));
  m.def("log_map", &log_map, py::kw_only(), py::arg("kernel"), py::arg("scale"), py::arg("geometry_fn"), py::arg("z0"),
        py::arg("z1"), py::arg("v_init"), py::arg("options"), py::arg("n_threads"));
  m.def("transport_geodesic", &transport_geodesic, py::kw_only(), py::arg("kernel"), py::arg("scale"),
        py::arg("geometry_fn"), py::arg("z"), py::arg("v"), py::arg("w"), py::arg("t_end"), py::arg("t_out"),
        py::arg("options"), py::arg("n_threads"));
  m.def("transport_nodes", &transport_nodes, py::kw_only(), py::arg("kernel"), py::arg("scale"), py::arg("geometry_fn"),
        py::arg("nodes"), py::arg("w"), py::arg("t_out"), py::arg("options"), py::arg("n_threads"));
  m.def("transport_callable", &transport_callable, py::kw_only(), py::arg("kernel"), py::arg("scale"),
        py::arg("geometry_fn"), py::arg("curve_fn"), py::arg("dim"), py::arg("w"), py::arg("t_out"),
        py::arg("options"));
}

}  // namespace latentgeo_bindings
