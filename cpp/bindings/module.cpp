// The private compiled module latentgeo._core. The public API is in python/latentgeo.
#include "bindings.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "latentgeo's C++ kernels (private; use the latentgeo package)";
  m.def("openmp_enabled", &latentgeo::openmp_enabled, "True when the core was compiled with OpenMP.");
  m.def("max_threads", &latentgeo::max_threads, "Threads used when n_threads is None.");
  latentgeo_bindings::register_rhvae(m);
  latentgeo_bindings::register_curves(m);
  latentgeo_bindings::register_pullback(m);
  latentgeo_bindings::register_geodesic(m);
  latentgeo_bindings::register_connection(m);
}
