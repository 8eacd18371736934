// Thin bindings of the samplers (statistics/statistics.hpp): Brownian motion and HMC.
//
// A native kernel (dispatched and scaled by native_dispatch.hpp) runs through its volume_jet, the
// GIL released: the RHVAE kernel has one. With kernel = None any other metric comes as one batched
// Python callback per step (python_callbacks.hpp, called with the GIL held):
//   brownian: geometry_fn(z (N, d)) -> (G^{-1} (N, d, d), drift (N, d), ok (N,) bool)
//   hmc:      log_density_fn(z (N, d)) -> (log p (N,), grad (N, d), ok (N,) bool)
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>

#include "bindings.hpp"
#include "latentgeo/statistics/statistics.hpp"
#include "native_dispatch.hpp"
#include "python_callbacks.hpp"

namespace py = pybind11;
using latentgeo::BrownianOptions;
using latentgeo::ConstRowMatrixRef;
using latentgeo::HmcOptions;
using latentgeo::Index;
using latentgeo::RowMatrix;
using latentgeo::Vector;

namespace latentgeo_bindings {

namespace {

// A kernel's volume jet at z: log det G, its gradient and (with want_inverse) G^{-1}, dG^{-1}.
template <class Kernel>
void volume_jet(const Kernel& kernel, const ConstRowMatrixRef& z, bool want_inverse, int n_threads, Vector& logdet,
                RowMatrix& dlogdet, RowMatrix& ginv, RowMatrix& dginv) {
  const Index n = z.rows(), d = kernel.dim();
  logdet.resize(n);
  dlogdet.resize(n, d);
  ginv.resize(want_inverse ? n : 0, d * d);
  dginv.resize(want_inverse ? n : 0, d * d * d);
  kernel.volume_jet(z, logdet, dlogdet, ginv, dginv, n_threads);
}

// density ∝ (det G)^(sign / 2).
template <class Kernel>
class VolumeTarget {
 public:
  VolumeTarget(const Kernel& k, double sign) : k_(k), sign_(sign) {}
  Index dim() const { return k_.dim(); }
  void evaluate(const ConstRowMatrixRef& z, Vector& logp, RowMatrix& grad, std::vector<char>& ok, int n_threads) const {
    RowMatrix ginv, dginv;
    volume_jet(k_, z, false, n_threads, logp, grad, ginv, dginv);
    ok.assign(static_cast<std::size_t>(z.rows()), 1);
    for (Index i = 0; i < z.rows(); ++i) ok[static_cast<std::size_t>(i)] = std::isfinite(logp(i)) ? 1 : 0;
    logp *= 0.5 * sign_;
    grad *= 0.5 * sign_;
  }

 private:
  const Kernel& k_;
  double sign_;
};

// Brownian motion's G^{-1} and drift from the volume jet.
template <class Kernel>
class VolumeDiffusion {
 public:
  explicit VolumeDiffusion(const Kernel& k) : k_(k) {}
  Index dim() const { return k_.dim(); }
  void evaluate(const ConstRowMatrixRef& z, RowMatrix& ginv, RowMatrix& drift, std::vector<char>& ok,
                int n_threads) const {
    const Index n = z.rows(), d = dim();
    Vector logdet;
    RowMatrix dlogdet, dginv;
    volume_jet(k_, z, true, n_threads, logdet, dlogdet, ginv, dginv);
    drift.resize(n, d);
    ok.assign(static_cast<std::size_t>(n), 1);
    for (Index i = 0; i < n; ++i) {
      if (!std::isfinite(logdet(i))) {
        ok[static_cast<std::size_t>(i)] = 0;
        drift.row(i).setZero();
        ginv.row(i).setZero();
        continue;
      }
      latentgeo::brownian_drift(ginv.row(i).data(), dginv.row(i).data(), dlogdet.row(i).data(), d, drift.row(i).data());
    }
  }

 private:
  const Kernel& k_;
};

// Runs native(kernel) for a native kernel with a volume jet (the others: std::invalid_argument
// naming `kernel`), or fallback() for kernel = None.
template <class Native, class Fallback>
void with_sampler(const py::object& kernel, double scale, const char* entry, Native&& native, Fallback&& fallback) {
  if (kernel.is_none()) {
    require(scale == 1.0, "scale: a Python metric carries its own scale (expected 1)");
    return fallback();
  }
  visit_kernel(kernel, scale, [&](const auto& k) {
    using Kernel = std::decay_t<decltype(k)>;
    if constexpr (latentgeo::detail::has_volume_jet<Kernel>::value)
      native(k);
    else
      unsupported_kernel<Kernel>(entry, "no analytic volume jet: pass kernel=None and the callback");
  });
}

py::dict brownian(const py::object& kernel, double scale, const py::object& geometry_fn, const ConstRowMatrixRef& z0,
                  const BrownianOptions& o, int n_threads) {
  latentgeo::validate(o);
  latentgeo::BrownianResult res;
  const Index d = z0.cols();
  with_sampler(
      kernel, scale, "brownian_motion",
      [&](const auto& k) {
        require_cols(z0, k.dim(), "z0");
        const VolumeDiffusion<std::decay_t<decltype(k)>> geo(k);
        run_interruptible([&] { res = latentgeo::brownian_motion(geo, z0, o, n_threads); });  // GIL released
      },
      [&] {
        require(!geometry_fn.is_none(), "geometry_fn: needed for a metric without a native kernel");
        const PythonDiffusion geo(geometry_fn, d);
        run_interruptible([&] { res = latentgeo::brownian_motion(geo, z0, o, 1); });  // GIL released
      });
  py::dict out;
  out["paths"] = reshape3(res.paths, z0.rows(), o.n_steps + 1, d);
  out["status"] = py::array_t<int>(static_cast<py::ssize_t>(res.status.size()), res.status.data());
  out["n_done"] = py::array_t<Index>(static_cast<py::ssize_t>(res.n_done.size()), res.n_done.data());
  return out;
}

py::dict hmc(const py::object& kernel, double scale, double sign, const py::object& log_density_fn,
             const ConstRowMatrixRef& init, const Vector& lo, const Vector& hi, const HmcOptions& o, int n_threads) {
  const Index d = init.cols();
  require(lo.size() == d && hi.size() == d && (hi - lo).minCoeff() > 0.0, "bounds: need lo < hi in every dimension");
  latentgeo::validate(o);
  latentgeo::HmcResult res;
  with_sampler(
      kernel, scale, "hmc_sample",
      [&](const auto& k) {
        require_cols(init, k.dim(), "init");
        const VolumeTarget<std::decay_t<decltype(k)>> target(k, sign);
        run_interruptible([&] { res = latentgeo::hmc_sample(target, init, lo, hi, o, n_threads); });  // GIL released
      },
      [&] {
        require(!log_density_fn.is_none(), "log_density_fn: needed for a metric without a native kernel");
        const PythonTarget target(log_density_fn, d);
        run_interruptible([&] { res = latentgeo::hmc_sample(target, init, lo, hi, o, 1); });  // GIL released
      });
  py::dict out;
  out["draws"] = reshape3(res.draws, o.n_draws, init.rows(), d);
  out["accept_prob"] = res.accept_prob;
  out["n_divergent"] = res.n_divergent;
  out["step_size"] = res.step_size;
  return out;
}

// log det (scale G) (N,) and its gradient (N, d); NaN rows where G^{-1} is singular.
// Whether the samplers run `kernel` natively (it has an analytic volume jet).
bool has_volume_jet(const py::object& kernel) {
  if (kernel.is_none()) return false;
  return visit_kernel(
      kernel, 1.0, [](const auto& k) { return latentgeo::detail::has_volume_jet<std::decay_t<decltype(k)>>::value; });
}

py::tuple log_det_gradient(const py::object& kernel, double scale, const ConstRowMatrixRef& z, int n_threads) {
  Vector logdet;
  RowMatrix dlogdet, ginv, dginv;
  require(!kernel.is_none(), "kernel: needed (a native kernel with a volume jet)");
  with_sampler(
      kernel, scale, "log_det_gradient",
      [&](const auto& k) {
        require_cols(z, k.dim(), "z");
        run_interruptible([&] { volume_jet(k, z, false, n_threads, logdet, dlogdet, ginv, dginv); });  // GIL released
      },
      [] {});
  return py::make_tuple(logdet, dlogdet);
}

}  // namespace

void register_statistics(py::module_& m) {
  py::class_<HmcOptions>(m, "HmcOptions", "Options of hmc_sample (defaults in C++).")
      .def(py::init([](const py::kwargs& kw) { return from_keywords<HmcOptions>(kw, "HmcOptions"); }))
      .def_readwrite("n_warmup", &HmcOptions::n_warmup, "iterations adapting the step size, then discarded")
      .def_readwrite("n_draws", &HmcOptions::n_draws, "iterations recorded per chain")
      .def_readwrite("n_leapfrog", &HmcOptions::n_leapfrog, "leapfrog steps per iteration")
      .def_readwrite("step_size", &HmcOptions::step_size, "initial step in box units")
      .def_readwrite("target_accept", &HmcOptions::target_accept, "target acceptance of the step adaptation")
      .def_readwrite("seed", &HmcOptions::seed, "chain i draws from the stream (seed, i)");
  py::class_<BrownianOptions>(m, "BrownianOptions", "Options of brownian_motion (defaults in C++).")
      .def(py::init([](const py::kwargs& kw) { return from_keywords<BrownianOptions>(kw, "BrownianOptions"); }))
      .def_readwrite("dt", &BrownianOptions::dt, "Euler-Maruyama step")
      .def_readwrite("n_steps", &BrownianOptions::n_steps, "steps per path")
      .def_readwrite("seed", &BrownianOptions::seed, "path i draws from the stream (seed, i)");
  m.def("brownian_motion", &brownian, py::kw_only(), py::arg("kernel"), py::arg("scale"), py::arg("geometry_fn"),
        py::arg("z0"), py::arg("options"), py::arg("n_threads"));
  m.def("hmc_sample", &hmc, py::kw_only(), py::arg("kernel"), py::arg("scale"), py::arg("sign"),
        py::arg("log_density_fn"), py::arg("init"), py::arg("lo"), py::arg("hi"), py::arg("options"),
        py::arg("n_threads"));
  m.def("has_volume_jet", &has_volume_jet, py::arg("kernel"),
        "Whether brownian_motion, hmc_sample and log_det_gradient run this kernel natively.");
  m.def("log_det_gradient", &log_det_gradient, py::kw_only(), py::arg("kernel"), py::arg("scale"), py::arg("z"),
        py::arg("n_threads"));
}

}  // namespace latentgeo_bindings
