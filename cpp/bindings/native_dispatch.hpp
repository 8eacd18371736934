// The one answer to "which C++ kernel is this Python object?" for every native entry point.
//
// visit_kernel(kernel, scale, f) casts `kernel` to RHVAEKernel, ConstantKernel or PullbackKernel
// and calls f(ScaledKernel<K>(k, scale)): the constant factor of a ScaledMetric enters the C++
// solvers in this one way (kernels.hpp, ScaledKernel), for geodesics, the connection and the
// samplers alike; a factor of 1 costs nothing. Any other object is an std::invalid_argument naming
// `kernel`; so is a kernel type that cannot serve the entry point (f throws it, via
// unsupported_kernel). Call with the GIL held; f releases it for the C++ work.
#pragma once

#include <pybind11/pybind11.h>

#include <cmath>
#include <string>

#include "bindings.hpp"
#include "latentgeo/metrics/kernels.hpp"
#include "latentgeo/metrics/pullback.hpp"
#include "latentgeo/metrics/rhvae.hpp"

namespace latentgeo_bindings {

template <class K>
struct KernelName;
template <>
struct KernelName<latentgeo::RHVAEKernel> {
  static constexpr const char* value = "RHVAEKernel";
};
template <>
struct KernelName<latentgeo::ConstantKernel> {
  static constexpr const char* value = "ConstantKernel";
};
template <>
struct KernelName<latentgeo::PullbackKernel> {
  static constexpr const char* value = "PullbackKernel";
};
template <class K>
struct KernelName<latentgeo::ScaledKernel<K>> : KernelName<K> {};

// The std::invalid_argument of an entry point that kernel type K cannot serve.
template <class K>
[[noreturn]] void unsupported_kernel(const std::string& entry_point, const std::string& why) {
  throw std::invalid_argument(std::string("kernel: ") + entry_point + " cannot run on a " + KernelName<K>::value +
                              " (" + why + ")");
}

template <class F>
auto visit_kernel(const pybind11::object& kernel, double scale, F&& f) {
  namespace py = pybind11;
  using latentgeo::ConstantKernel;
  using latentgeo::PullbackKernel;
  using latentgeo::RHVAEKernel;
  using latentgeo::ScaledKernel;
  require(std::isfinite(scale) && scale > 0.0, "scale: must be finite and > 0");
  if (py::isinstance<RHVAEKernel>(kernel))
    return f(ScaledKernel<latentgeo::RHVAEKernel>(kernel.cast<const latentgeo::RHVAEKernel&>(), scale));
  if (py::isinstance<ConstantKernel>(kernel))
    return f(ScaledKernel<latentgeo::ConstantKernel>(kernel.cast<const latentgeo::ConstantKernel&>(), scale));
  if (py::isinstance<PullbackKernel>(kernel))
    return f(ScaledKernel<latentgeo::PullbackKernel>(kernel.cast<const latentgeo::PullbackKernel&>(), scale));
  throw std::invalid_argument("kernel: expected an RHVAEKernel, ConstantKernel or PullbackKernel, got " +
                              py::repr(py::type::of(kernel)).cast<std::string>());
}

}  // namespace latentgeo_bindings
