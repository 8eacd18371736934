// Thin bindings of the RHVAE kernel: shape checks, GIL release, results as arrays.
#include <pybind11/eigen.h>

#include "bindings.hpp"
#include "latentgeo/metrics/rhvae.hpp"

namespace py = pybind11;
using latentgeo::ConstRowMatrixRef;
using latentgeo::Index;
using latentgeo::RHVAEKernel;
using latentgeo::RowMatrix;
using latentgeo::Vector;

namespace latentgeo_bindings {

namespace {

RowMatrix rhvae_inverse(const RHVAEKernel& k, const ConstRowMatrixRef& z, int n_threads) {
  require_cols(z, k.dim(), "z");
  RowMatrix out(z.rows(), k.dim() * k.dim());
  run_interruptible([&] { k.inverse(z, out, n_threads); });  // GIL released
  return out;
}

// G (N, d*d).
RowMatrix rhvae_metric(const RHVAEKernel& k, const ConstRowMatrixRef& z, int n_threads) {
  require_cols(z, k.dim(), "z");
  RowMatrix g(z.rows(), k.dim() * k.dim());
  Vector no_logdet(0);  // the kernel's convention: an empty output is not computed
  run_interruptible([&] { k.metric(z, g, no_logdet, n_threads); });  // GIL released
  return g;
}

// log det G (N).
Vector rhvae_log_det(const RHVAEKernel& k, const ConstRowMatrixRef& z, int n_threads) {
  require_cols(z, k.dim(), "z");
  RowMatrix no_g(0, k.dim() * k.dim());
  Vector logdet(z.rows());
  run_interruptible([&] { k.metric(z, no_g, logdet, n_threads); });  // GIL released
  return logdet;
}

RowMatrix rhvae_derivative(const RHVAEKernel& k, const ConstRowMatrixRef& z, bool of_inverse, int n_threads) {
  require_cols(z, k.dim(), "z");
  const Index d = k.dim();
  RowMatrix out(z.rows(), d * d * d);
  run_interruptible([&] { k.derivative(z, out, of_inverse, n_threads); });  // GIL released
  return out;
}

}  // namespace

void register_rhvae(py::module_& m) {
  py::class_<RHVAEKernel>(m, "RHVAEKernel")
      .def(py::init<const RowMatrix&, const RowMatrix&, double, double, double>(), py::arg("centroids"),
           py::arg("m_packed"), py::arg("temperature"), py::arg("regularization"), py::arg("scale"))
      .def_property_readonly("dim", &RHVAEKernel::dim)
      .def_property_readonly("n_centroids", &RHVAEKernel::n_centroids)
      .def("inverse", &rhvae_inverse, py::arg("z"), py::arg("n_threads"))
      .def("metric", &rhvae_metric, py::arg("z"), py::arg("n_threads"))
      .def("log_det", &rhvae_log_det, py::arg("z"), py::arg("n_threads"))
      .def("derivative", &rhvae_derivative, py::arg("z"), py::arg("of_inverse"), py::arg("n_threads"))
      .def("quadratic_form", &quadratic_form<RHVAEKernel>, py::arg("z"), py::arg("v"), py::arg("grad"),
           py::arg("n_threads"));
}

}  // namespace latentgeo_bindings
