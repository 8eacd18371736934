// Thin bindings of the samplers (statistics.hpp): Brownian motion and HMC.
//
// The RHVAE kernel runs natively (its volume_jet, the GIL released); any other metric comes as
// one batched Python callback per step (called with the GIL held):
//   brownian: geometry_fn(z (N, d)) -> (G^{-1} (N, d, d), drift (N, d), ok (N,) bool)
//   hmc:      log_density_fn(z (N, d)) -> (log p (N,), grad (N, d), ok (N,) bool)
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>

#include "bindings.hpp"
#include "latentgeo/rhvae.hpp"
#include "latentgeo/statistics.hpp"

namespace py = pybind11;
using latentgeo::ConstRowMatrixRef;
using latentgeo::Index;
using latentgeo::RHVAEKernel;
using latentgeo::RowMatrix;
using latentgeo::Vector;

namespace latentgeo_bindings {

namespace {

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

// The RHVAE's volume jet at z: log det G, its gradient and (with want_inverse) G^{-1}, dG^{-1}.
struct RhvaeJet {
  const RHVAEKernel& kernel;
  Index dim() const { return kernel.dim(); }
  void compute(const ConstRowMatrixRef& z, bool want_inverse, int n_threads, Vector& logdet, RowMatrix& dlogdet,
               RowMatrix& ginv, RowMatrix& dginv) const {
    const Index n = z.rows(), d = kernel.dim();
    logdet.resize(n);
    dlogdet.resize(n, d);
    ginv.resize(want_inverse ? n : 0, d * d);
    dginv.resize(want_inverse ? n : 0, d * d * d);
    kernel.volume_jet(z, logdet, dlogdet, ginv, dginv, n_threads);
  }
};

// density ∝ (det G)^(sign / 2) of the RHVAE.
class RhvaeVolumeTarget {
 public:
  RhvaeVolumeTarget(const RHVAEKernel& k, double sign) : jet_{k}, sign_(sign) {}
  Index dim() const { return jet_.dim(); }
  void evaluate(const ConstRowMatrixRef& z, Vector& logp, RowMatrix& grad, std::vector<char>& ok, int n_threads) const {
    RowMatrix ginv, dginv;
    jet_.compute(z, false, n_threads, logp, grad, ginv, dginv);
    ok.assign(static_cast<std::size_t>(z.rows()), 1);
    for (Index i = 0; i < z.rows(); ++i) ok[static_cast<std::size_t>(i)] = std::isfinite(logp(i)) ? 1 : 0;
    logp *= 0.5 * sign_;
    grad *= 0.5 * sign_;
  }

 private:
  RhvaeJet jet_;
  double sign_;
};

// Brownian motion of scale * G_RHVAE: G^{-1} and the drift scale as 1 / scale.
class RhvaeDiffusion {
 public:
  RhvaeDiffusion(const RHVAEKernel& k, double scale) : jet_{k}, scale_(scale) {}
  Index dim() const { return jet_.dim(); }
  void evaluate(const ConstRowMatrixRef& z, RowMatrix& ginv, RowMatrix& drift, std::vector<char>& ok,
                int n_threads) const {
    const Index n = z.rows(), d = dim();
    Vector logdet;
    RowMatrix dlogdet, dginv;
    jet_.compute(z, true, n_threads, logdet, dlogdet, ginv, dginv);
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
    ginv /= scale_;
    drift /= scale_;
  }

 private:
  RhvaeJet jet_;
  double scale_;
};

// Reads a callback's (N,) bool array of "inside the domain" flags.
std::vector<char> as_flags(const py::handle& h, Index n, const char* fn) {
  auto arr = py::array_t<bool, py::array::c_style | py::array::forcecast>::ensure(h);
  require(arr && arr.ndim() == 1 && arr.shape(0) == n, std::string(fn) + ": ok must have shape (N,)");
  std::vector<char> out(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = arr.at(i) ? 1 : 0;
  return out;
}

RowMatrix as_rows(const py::handle& h, Index n, Index cols, const char* fn, const char* what) {
  auto arr = DoubleArray::ensure(h);
  require(arr && arr.size() == n * cols && arr.ndim() >= 1 && arr.shape(0) == n,
          std::string(fn) + ": " + what + " has the wrong shape");
  return Eigen::Map<const RowMatrix>(arr.data(), n, cols);
}

py::tuple call_checked(const py::object& fn, const ConstRowMatrixRef& z, const char* name) {
  py::object out = fn(RowMatrix(z));
  require(py::isinstance<py::tuple>(out) && py::len(out) == 3, std::string(name) + ": must return a 3-tuple");
  return out.cast<py::tuple>();
}

class PythonTarget {
 public:
  PythonTarget(py::object fn, Index dim) : fn_(std::move(fn)), dim_(dim) {}
  Index dim() const { return dim_; }
  void evaluate(const ConstRowMatrixRef& z, Vector& logp, RowMatrix& grad, std::vector<char>& ok, int) const {
    py::gil_scoped_acquire gil;
    const py::tuple out = call_checked(fn_, z, "log_density_fn");
    logp = as_rows(out[0], z.rows(), 1, "log_density_fn", "log p");
    grad = as_rows(out[1], z.rows(), dim_, "log_density_fn", "grad");
    ok = as_flags(out[2], z.rows(), "log_density_fn");
  }

 private:
  py::object fn_;
  Index dim_;
};

class PythonDiffusion {
 public:
  PythonDiffusion(py::object fn, Index dim) : fn_(std::move(fn)), dim_(dim) {}
  Index dim() const { return dim_; }
  void evaluate(const ConstRowMatrixRef& z, RowMatrix& ginv, RowMatrix& drift, std::vector<char>& ok, int) const {
    py::gil_scoped_acquire gil;
    const py::tuple out = call_checked(fn_, z, "geometry_fn");
    ginv = as_rows(out[0], z.rows(), dim_ * dim_, "geometry_fn", "G^{-1}");
    drift = as_rows(out[1], z.rows(), dim_, "geometry_fn", "drift");
    ok = as_flags(out[2], z.rows(), "geometry_fn");
  }

 private:
  py::object fn_;
  Index dim_;
};

const RHVAEKernel* native_rhvae(const py::object& kernel) {
  return py::isinstance<RHVAEKernel>(kernel) ? &kernel.cast<const RHVAEKernel&>() : nullptr;
}

py::array_t<double> reshape3(const RowMatrix& m, Index a, Index b, Index c) {
  py::array_t<double> out({a, b, c});
  std::copy(m.data(), m.data() + m.size(), out.mutable_data());
  return out;
}

py::dict brownian(const py::object& kernel, double scale, const py::object& geometry_fn, const ConstRowMatrixRef& z0,
                  double dt, Index n_steps, std::uint64_t seed, int n_threads) {
  require(dt > 0.0 && std::isfinite(dt), "dt: must be finite and > 0");
  require(n_steps >= 1, "n_steps: must be >= 1");
  require(scale > 0.0, "scale: must be > 0");
  latentgeo::BrownianResult res;
  const Index d = z0.cols();
  if (const RHVAEKernel* k = native_rhvae(kernel)) {
    require_cols(z0, k->dim(), "z0");
    const RhvaeDiffusion geo(*k, scale);
    run_interruptible(
        [&] { res = latentgeo::brownian_motion(geo, z0, dt, n_steps, seed, n_threads); });  // GIL released
  } else {
    require(!geometry_fn.is_none(), "geometry_fn: needed for a metric without a native kernel");
    const PythonDiffusion geo(geometry_fn, d);
    run_interruptible([&] { res = latentgeo::brownian_motion(geo, z0, dt, n_steps, seed, 1); });  // GIL released
  }
  py::dict out;
  out["paths"] = reshape3(res.paths, z0.rows(), n_steps + 1, d);
  out["status"] = py::array_t<int>(static_cast<py::ssize_t>(res.status.size()), res.status.data());
  out["n_done"] = py::array_t<Index>(static_cast<py::ssize_t>(res.n_done.size()), res.n_done.data());
  return out;
}

py::dict hmc(const py::object& kernel, double sign, const py::object& log_density_fn, const ConstRowMatrixRef& init,
             const Vector& lo, const Vector& hi, Index n_warmup, Index n_draws, Index n_leapfrog, double step_size,
             double target_accept, std::uint64_t seed, int n_threads) {
  const Index d = init.cols();
  require(lo.size() == d && hi.size() == d && (hi - lo).minCoeff() > 0.0, "bounds: need lo < hi in every dimension");
  require(n_warmup >= 0 && n_draws >= 1 && n_leapfrog >= 1, "n_draws, n_leapfrog: must be >= 1");
  require(step_size > 0.0 && target_accept > 0.0 && target_accept < 1.0, "step_size, target_accept: out of range");
  latentgeo::HmcOptions o;
  o.n_warmup = n_warmup;
  o.n_draws = n_draws;
  o.n_leapfrog = n_leapfrog;
  o.step_size = step_size;
  o.target_accept = target_accept;
  o.seed = seed;
  latentgeo::HmcResult res;
  if (const RHVAEKernel* k = native_rhvae(kernel)) {
    require_cols(init, k->dim(), "init");
    const RhvaeVolumeTarget target(*k, sign);
    run_interruptible([&] { res = latentgeo::hmc_sample(target, init, lo, hi, o, n_threads); });  // GIL released
  } else {
    require(!log_density_fn.is_none(), "log_density_fn: needed for a metric without a native kernel");
    const PythonTarget target(log_density_fn, d);
    run_interruptible([&] { res = latentgeo::hmc_sample(target, init, lo, hi, o, 1); });  // GIL released
  }
  py::dict out;
  out["draws"] = reshape3(res.draws, n_draws, init.rows(), d);
  out["accept_prob"] = res.accept_prob;
  out["n_divergent"] = res.n_divergent;
  out["step_size"] = res.step_size;
  return out;
}

// log det G (N,) and its gradient (N, d) of the RHVAE; NaN rows where G^{-1} is singular.
py::tuple log_det_gradient(const RHVAEKernel& k, const ConstRowMatrixRef& z, int n_threads) {
  require_cols(z, k.dim(), "z");
  Vector logdet;
  RowMatrix dlogdet, ginv, dginv;
  run_interruptible(  // GIL released
      [&] { RhvaeJet{k}.compute(z, false, n_threads, logdet, dlogdet, ginv, dginv); });
  return py::make_tuple(logdet, dlogdet);
}

}  // namespace

void register_statistics(py::module_& m) {
  m.def("brownian_motion", &brownian, py::arg("kernel"), py::arg("scale"), py::arg("geometry_fn"), py::arg("z0"),
        py::arg("dt"), py::arg("n_steps"), py::arg("seed"), py::arg("n_threads"));
  m.def("hmc_sample", &hmc, py::arg("kernel"), py::arg("sign"), py::arg("log_density_fn"), py::arg("init"),
        py::arg("lo"), py::arg("hi"), py::arg("n_warmup"), py::arg("n_draws"), py::arg("n_leapfrog"),
        py::arg("step_size"), py::arg("target_accept"), py::arg("seed"), py::arg("n_threads"));
  m.def("rhvae_log_det_gradient", &log_det_gradient, py::arg("kernel"), py::arg("z"), py::arg("n_threads"));
}

}  // namespace latentgeo_bindings
