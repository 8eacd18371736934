// Registration functions of the binding files; module.cpp calls each once.
#pragma once

#include <pybind11/eigen.h>
#include <pybind11/gil_safe_call_once.h>
#include <pybind11/pybind11.h>

#include <exception>
#include <functional>
#include <stdexcept>
#include <string>

#include "latentgeo/cancel.hpp"
#include "latentgeo/common.hpp"

namespace latentgeo_bindings {

void register_rhvae(pybind11::module_& m);
void register_curves(pybind11::module_& m);
void register_pullback(pybind11::module_& m);
void register_geodesic(pybind11::module_& m);
void register_connection(pybind11::module_& m);
void register_errors(pybind11::module_& m);
void register_statistics(pybind11::module_& m);

// latentgeo.errors.MetricDomainError (a ValueError), imported on first use (GIL held).
inline pybind11::handle metric_domain_error_type() {
  PYBIND11_CONSTINIT static pybind11::gil_safe_call_once_and_store<pybind11::object> storage;
  return storage
      .call_once_and_store_result(
          [] { return pybind11::module_::import("latentgeo.errors").attr("MetricDomainError"); })
      .get_stored();
}

// True on Python's main thread, the only one where signal handlers run (GIL held).
inline bool on_main_thread() {
  PYBIND11_CONSTINIT static pybind11::gil_safe_call_once_and_store<unsigned long> main_ident;
  const unsigned long ident =
      main_ident
          .call_once_and_store_result([] {
            return pybind11::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
          })
          .get_stored();
  return PyThread_get_thread_ident() == ident;
}

// Runs work() with the GIL released, interruptible by Ctrl-C. On the main thread a Cancellation
// polls PyErr_CheckSignals every 10 ms (the Python handler runs then: SIGINT raises
// KeyboardInterrupt); the kernels stop at their next block and the handler's exception is
// raised here. work() may only touch Python through gil_scoped_acquire. Call with the GIL held.
template <class Work>
void run_interruptible(Work&& work) {
  std::exception_ptr signal_error;  // what the signal handler raised
  std::function<bool()> poll;
  if (on_main_thread())
    poll = [&signal_error] {
      pybind11::gil_scoped_acquire gil;
      if (PyErr_CheckSignals() == 0) return false;
      signal_error = std::make_exception_ptr(pybind11::error_already_set());
      return true;
    };
  latentgeo::Cancellation cancel(std::move(poll));
  const latentgeo::CancelScope scope(&cancel);
  try {
    pybind11::gil_scoped_release release;
    work();
  } catch (const latentgeo::Cancelled&) {
    if (const auto reason = cancel.reason()) std::rethrow_exception(reason);
    if (signal_error) std::rethrow_exception(signal_error);
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw pybind11::error_already_set();
  }
  if (signal_error) std::rethrow_exception(signal_error);  // polled during the very last block
}

// Throws std::invalid_argument (ValueError in Python) naming the argument.
inline void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

inline void require_cols(const latentgeo::ConstRowMatrixRef& a, latentgeo::Index cols, const char* name) {
  require(a.cols() == cols,
          std::string(name) + ": expected " + std::to_string(cols) + " columns, got " + std::to_string(a.cols()));
}

// q = v^T G(z) v per point, and with grad also dq/dz and dq/dv, for any C++ kernel of the
// metric contract (dim(), quadratic_form(z, v, q, dqdz, dqdv, n_threads)).
template <class Kernel>
pybind11::tuple quadratic_form(const Kernel& k, const latentgeo::ConstRowMatrixRef& z,
                               const latentgeo::ConstRowMatrixRef& v, bool grad, int n_threads) {
  require_cols(z, k.dim(), "z");
  require_cols(v, k.dim(), "v");
  require(v.rows() == z.rows(), "v: expected as many rows as z");
  latentgeo::Vector q(z.rows());
  latentgeo::RowMatrix dqdz(grad ? z.rows() : 0, k.dim()), dqdv(grad ? z.rows() : 0, k.dim());
  run_interruptible([&] { k.quadratic_form(z, v, q, dqdz, dqdv, n_threads); });  // GIL released
  if (!grad) return pybind11::make_tuple(q);
  return pybind11::make_tuple(q, dqdz, dqdv);
}

}  // namespace latentgeo_bindings
