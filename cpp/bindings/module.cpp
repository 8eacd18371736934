// The private compiled core. CMake builds it once per instruction-set level as
// latentgeo._core_<variant>; latentgeo/_core.py imports the best one the CPU runs.
// The public API is in python/latentgeo.
#include "bindings.hpp"

#ifndef LATENTGEO_MODULE_NAME
#define LATENTGEO_MODULE_NAME _core_generic
#define LATENTGEO_VARIANT "generic"
#endif

namespace py = pybind11;

PYBIND11_MODULE(LATENTGEO_MODULE_NAME, m) {
  m.doc() = "latentgeo's C++ kernels (private; use the latentgeo package)";
  m.attr("variant") = LATENTGEO_VARIANT;
  m.def("openmp_enabled", &latentgeo::openmp_enabled, "True when the core was compiled with OpenMP.");
  m.def("max_threads", &latentgeo::max_threads, "Threads used when n_threads is None.");
  latentgeo_bindings::register_rhvae(m);
  latentgeo_bindings::register_curves(m);
  latentgeo_bindings::register_pullback(m);
  latentgeo_bindings::register_geodesic(m);
  latentgeo_bindings::register_connection(m);
  latentgeo_bindings::register_errors(m);
  latentgeo_bindings::register_statistics(m);
}
