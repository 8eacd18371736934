// Every adapter of a Python callback to a C++ contract, in one place:
//   PythonKernel, LockstepKernel (+ MetricRequest, RoundServer)  a Python metric for the geodesic
//                                    solver (kernels.hpp), many pairs sharing each call (core/lockstep.hpp);
//   PythonSource                     G and dG of a Python metric for the connection (MetricSourceModel);
//   PythonCurve                      a curve gamma(t), gamma'(t) for parallel transport;
//   PythonTarget, PythonDiffusion    the samplers' log density and diffusion geometry (statistics.hpp).
// Each call takes the GIL; every reply is read by the converters of bindings.hpp, so that a reply
// of the wrong shape is an std::invalid_argument naming the callback and the quantity.
#pragma once

#include <pybind11/numpy.h>

#include <exception>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "latentgeo/core/lockstep.hpp"

namespace latentgeo_bindings {

namespace py = pybind11;
using latentgeo::ConstRowMatrixRef;
using latentgeo::Index;
using latentgeo::RowMatrix;
using latentgeo::Vector;

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

  // metric.decoded_energies(z, counts): the energies of P decoded polylines whose nodes are the
  // rows of z, counts[p] of them for curve p, and the energies' gradients (N, d).
  void decoded_energies(const ConstRowMatrixRef& z, const std::vector<Index>& counts, Vector& e,
                        RowMatrix& grad) const {
    py::gil_scoped_acquire gil;
    py::object out = call([&] { return metric_.attr("decoded_energies")(RowMatrix(z), counts); });
    py::tuple parts = out.cast<py::tuple>();
    require(parts.size() == 2, "metric: decoded_energies(z, counts) must return (energies, gradient)");
    e = DoubleArray::ensure(parts[0]).cast<Vector>();
    require(e.size() == static_cast<Index>(counts.size()),
            "metric: decoded_energies returned energies of the wrong size");
    grad = as_matrix(parts[1], z.rows(), "gradient");
  }

  // G from metric.metric(z) (N, d, d): one call instead of d quadratic forms.
  void metric_tensors(const ConstRowMatrixRef& z, RowMatrix& g) const {
    py::gil_scoped_acquire gil;
    auto arr = DoubleArray::ensure(call([&] { return metric_.attr("metric")(RowMatrix(z)); }));
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
    Vector out = DoubleArray::ensure(h).cast<Vector>();
    require(out.size() == n, "metric: quadratic_form returned q of the wrong size");
    return out;
  }
  RowMatrix as_matrix(const py::handle& h, Index n, const char* name) const {
    RowMatrix out = DoubleArray::ensure(h).cast<RowMatrix>();
    require(out.rows() == n && out.cols() == dim_, std::string("metric: returned ") + name + " of the wrong shape");
    return out;
  }

  py::object metric_;
  Index dim_;
};

// One evaluation that a solve asks of a Python metric (see latentgeo/lockstep.hpp).
struct MetricRequest {
  enum class Kind { value, gradient, tensors, decoded };
  Kind kind = Kind::value;
  RowMatrix z, v;            // the solve's points (and vectors); decoded: the nodes of one curve
  Vector q;                  // value, gradient; decoded: the energy (one entry)
  RowMatrix dqdz, dqdv, g;   // gradient (decoded: the energy's); tensors (N x d*d)
  std::exception_ptr error;  // instead of the outputs when the metric failed on them
};

// The kernel a solve sees: every evaluation becomes a request served with the other solves'.
class LockstepKernel {
 public:
  LockstepKernel(latentgeo::LockstepPool<MetricRequest>& pool, Index dim) : pool_(pool), dim_(dim) {}
  Index dim() const { return dim_; }

  void quadratic_form(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, latentgeo::VectorRef q,
                      latentgeo::RowMatrixRef dqdz, latentgeo::RowMatrixRef dqdv, int /*n_threads*/) const {
    MetricRequest r;
    r.kind = dqdz.rows() > 0 ? MetricRequest::Kind::gradient : MetricRequest::Kind::value;
    r.z = z;
    r.v = v;
    ask(r);
    q = r.q;
    if (r.kind == MetricRequest::Kind::value) return;
    dqdz = r.dqdz;
    dqdv = r.dqdv;
  }

  void metric_tensors(const ConstRowMatrixRef& z, RowMatrix& g) const {
    MetricRequest r;
    r.kind = MetricRequest::Kind::tensors;
    r.z = z;
    ask(r);
    g = std::move(r.g);
  }

  double decoded_energy(const ConstRowMatrixRef& nodes, RowMatrix& grad) const {
    MetricRequest r;
    r.kind = MetricRequest::Kind::decoded;
    r.z = nodes;
    ask(r);
    grad = std::move(r.dqdz);
    return r.q(0);
  }

 private:
  void ask(MetricRequest& r) const {
    pool_.submit(r);
    if (r.error) std::rethrow_exception(r.error);
  }
  latentgeo::LockstepPool<MetricRequest>& pool_;
  Index dim_;
};

// Serves one round: per kind one call of the metric on the points of all its requests. When that
// call fails, each request is evaluated alone, so that the failure stays with its own pair.
class RoundServer {
 public:
  explicit RoundServer(const PythonKernel& metric) : metric_(metric) {}

  // Points per call at most (a request larger than that gets a call of its own): the cost per
  // point of some metrics grows with the call (torch convolutions on large batches), while the
  // saving of fewer calls levels off at a few hundred points.
  static constexpr Index kRowsPerCall = 256;

  void operator()(std::vector<MetricRequest*>& batch) const {
    using Kind = MetricRequest::Kind;
    for (auto kind : {Kind::value, Kind::gradient, Kind::tensors, Kind::decoded}) {
      std::vector<MetricRequest*> group;
      Index rows = 0;
      for (MetricRequest* r : batch) {
        if (r->kind != kind) continue;
        if (!group.empty() && rows + r->z.rows() > kRowsPerCall) {
          serve_group(group);
          group.clear();
          rows = 0;
        }
        group.push_back(r);
        rows += r->z.rows();
      }
      if (!group.empty()) serve_group(group);
    }
  }

 private:
  void serve_group(std::vector<MetricRequest*>& group) const {
    try {
      evaluate(group);
    } catch (const latentgeo::Cancelled&) {
      throw;
    } catch (...) {
      for (MetricRequest* r : group) evaluate_alone(*r);
    }
  }

  void evaluate_alone(MetricRequest& r) const {
    std::vector<MetricRequest*> one{&r};
    try {
      evaluate(one);
    } catch (const latentgeo::Cancelled&) {
      throw;
    } catch (...) {
      r.error = std::current_exception();
    }
  }

  // The requests' rows stacked, evaluated in one call, and split again.
  void evaluate(std::vector<MetricRequest*>& group) const {
    const Index d = metric_.dim();
    Index n = 0;
    for (const MetricRequest* r : group) n += r->z.rows();
    RowMatrix z(n, d), v;
    const MetricRequest::Kind kind = group.front()->kind;
    const bool vectors = kind == MetricRequest::Kind::value || kind == MetricRequest::Kind::gradient;
    if (vectors) v.resize(n, d);
    Index row = 0;
    for (const MetricRequest* r : group) {
      z.middleRows(row, r->z.rows()) = r->z;
      if (v.size() > 0) v.middleRows(row, r->z.rows()) = r->v;
      row += r->z.rows();
    }
    Vector q;
    RowMatrix dqdz, dqdv, g;
    if (kind == MetricRequest::Kind::tensors) {
      metric_.metric_tensors(z, g);
    } else if (kind == MetricRequest::Kind::decoded) {
      std::vector<Index> counts;
      for (const MetricRequest* r : group) counts.push_back(r->z.rows());
      metric_.decoded_energies(z, counts, q, dqdz);
    } else {
      const bool grad = kind == MetricRequest::Kind::gradient;
      q.resize(n);
      dqdz.resize(grad ? n : 0, d);
      dqdv.resize(grad ? n : 0, d);
      metric_.quadratic_form(z, v, q, dqdz, dqdv, 1);
    }
    row = 0;
    for (std::size_t i = 0; i < group.size(); ++i) {
      MetricRequest* r = group[i];
      const Index m = r->z.rows();
      switch (kind) {
        case MetricRequest::Kind::tensors:
          r->g = g.middleRows(row, m);
          break;
        case MetricRequest::Kind::decoded:
          r->q = q.segment(static_cast<Index>(i), 1);
          r->dqdz = dqdz.middleRows(row, m);
          break;
        case MetricRequest::Kind::gradient:
          r->dqdz = dqdz.middleRows(row, m);
          r->dqdv = dqdv.middleRows(row, m);
          [[fallthrough]];
        case MetricRequest::Kind::value:
          r->q = q.segment(row, m);
          break;
      }
      row += m;
    }
  }

  const PythonKernel& metric_;
};

// fn(args...) with the GIL held, which must return a tuple of `size` items ("<who>: must return <shape>").
template <class... Args>
py::tuple call_tuple(const py::object& fn, std::size_t size, const char* who, const char* shape, Args&&... args) {
  py::object out = fn(std::forward<Args>(args)...);
  require(py::isinstance<py::tuple>(out) && py::len(out) == size, std::string(who) + ": must return " + shape);
  return out.cast<py::tuple>();
}

// A batched Python callback of (N, d) points seen through `dim`: the common part of the adapters below.
class PythonCallback {
 public:
  PythonCallback(py::object fn, Index dim) : fn_(std::move(fn)), dim_(dim) {}
  Index dim() const { return dim_; }

 protected:
  py::object fn_;
  Index dim_;
};

// G and dG of a Python metric through latentgeo.connection's batched callback
// geometry_fn(z, want_derivative) -> (G, dG or None, ok): a MetricSourceModel source.
class PythonSource : public PythonCallback {
 public:
  using PythonCallback::PythonCallback;
  void operator()(const ConstRowMatrixRef& z, bool want_derivative, RowMatrix& g, RowMatrix& dg,
                  std::vector<char>& ok) const {
    const Index n = z.rows(), d = dim_;
    py::gil_scoped_acquire gil;
    const py::tuple out =
        call_tuple(fn_, 3, "metric", "(G, dG, ok) from the geometry callback", RowMatrix(z), want_derivative);
    g = as_rows(out[0], n, d * d, "metric", "G");
    if (want_derivative) dg = as_rows(out[1], n, d * d * d, "metric", "dG");
    ok = as_flags(out[2], n, "metric");
  }
};

// gamma(t) and gamma'(t) of one Python curve: curve_fn(t (N,)) -> (points (N, d), velocities (N, d)).
class PythonCurve : public PythonCallback {
 public:
  using PythonCallback::PythonCallback;
  double next_break(Index, double) const { return std::numeric_limits<double>::infinity(); }
  void evaluate(const std::vector<Index>&, const Vector& t, RowMatrix& z, RowMatrix& v, std::vector<char>& ok) const {
    const Index n = t.size();
    py::gil_scoped_acquire gil;
    const py::tuple out = call_tuple(fn_, 2, "curve", "(points, velocities) from the curve callback", t);
    z = as_rows(out[0], n, dim_, "curve", "curve points");
    v = as_rows(out[1], n, dim_, "curve", "curve velocities");
    for (Index r = 0; r < n; ++r) ok[static_cast<std::size_t>(r)] = z.row(r).allFinite() && v.row(r).allFinite();
  }
};

// The samplers' log density: log_density_fn(z (N, d)) -> (log p (N,), grad (N, d), ok (N,) bool).
class PythonTarget : public PythonCallback {
 public:
  using PythonCallback::PythonCallback;
  void evaluate(const ConstRowMatrixRef& z, Vector& logp, RowMatrix& grad, std::vector<char>& ok, int) const {
    py::gil_scoped_acquire gil;
    const py::tuple out = call_tuple(fn_, 3, "log_density_fn", "a 3-tuple", RowMatrix(z));
    logp = as_rows(out[0], z.rows(), 1, "log_density_fn", "log p");
    grad = as_rows(out[1], z.rows(), dim_, "log_density_fn", "grad");
    ok = as_flags(out[2], z.rows(), "log_density_fn");
  }
};

// Brownian motion's geometry: geometry_fn(z (N, d)) -> (G^{-1} (N, d, d), drift (N, d), ok (N,) bool).
class PythonDiffusion : public PythonCallback {
 public:
  using PythonCallback::PythonCallback;
  void evaluate(const ConstRowMatrixRef& z, RowMatrix& ginv, RowMatrix& drift, std::vector<char>& ok, int) const {
    py::gil_scoped_acquire gil;
    const py::tuple out = call_tuple(fn_, 3, "geometry_fn", "a 3-tuple", RowMatrix(z));
    ginv = as_rows(out[0], z.rows(), dim_ * dim_, "geometry_fn", "G^{-1}");
    drift = as_rows(out[1], z.rows(), dim_, "geometry_fn", "drift");
    ok = as_flags(out[2], z.rows(), "geometry_fn");
  }
};

}  // namespace latentgeo_bindings
