// Translation of the kernels' MetricDomainError into Python's latentgeo.errors.MetricDomainError
// (a ValueError with the attribute non_finite).
#include "bindings.hpp"

namespace py = pybind11;

namespace latentgeo_bindings {

void register_errors(py::module_& /*m*/) {
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const latentgeo::MetricDomainError& e) {
      const py::object error = metric_domain_error_type()(e.what(), py::bool_(e.non_finite()));
      PyErr_SetObject(metric_domain_error_type().ptr(), error.ptr());
    }
  });
}

}  // namespace latentgeo_bindings
