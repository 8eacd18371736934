// Registration functions of the binding files; module.cpp calls each once.
#pragma once

#include <pybind11/eigen.h>
#include <pybind11/gil_safe_call_once.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "latentgeo/core/cancel.hpp"
#include "latentgeo/core/common.hpp"

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

// ---------------------------------------------------------------------------------------------
// Array converters of every binding file (GIL held)
// ---------------------------------------------------------------------------------------------
using DoubleArray = pybind11::array_t<double, pybind11::array::c_style | pybind11::array::forcecast>;
using BoolArray = pybind11::array_t<bool, pybind11::array::c_style | pybind11::array::forcecast>;

// A (rows, ...) array of rows * cols doubles as a rows x cols matrix; otherwise
// std::invalid_argument "<who>: <what> has the wrong shape".
inline latentgeo::RowMatrix as_rows(const pybind11::handle& h, latentgeo::Index rows, latentgeo::Index cols,
                                    const std::string& who, const std::string& what) {
  const DoubleArray arr = DoubleArray::ensure(h);
  require(arr && arr.size() == rows * cols && arr.ndim() >= 1 && arr.shape(0) == rows,
          who + ": " + what + " has the wrong shape");
  return Eigen::Map<const latentgeo::RowMatrix>(arr.data(), rows, cols);
}

// An (n,) bool array of "inside the domain" flags as 0/1.
inline std::vector<char> as_flags(const pybind11::handle& h, latentgeo::Index n, const std::string& who) {
  const BoolArray arr = BoolArray::ensure(h);
  require(arr && arr.ndim() == 1 && arr.shape(0) == n, who + ": ok must have shape (N,)");
  std::vector<char> out(static_cast<std::size_t>(n));
  for (latentgeo::Index i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = arr.data()[i] ? 1 : 0;
  return out;
}

// 0/1 flags as an (n,) bool array.
inline pybind11::array_t<bool> to_flags(const std::vector<char>& ok) {
  pybind11::array_t<bool> out(static_cast<pybind11::ssize_t>(ok.size()));
  for (std::size_t i = 0; i < ok.size(); ++i) out.mutable_at(static_cast<pybind11::ssize_t>(i)) = ok[i] != 0;
  return out;
}

// A (rows x a*b*c... ) matrix as an (a, b, c) array.
inline pybind11::array_t<double> reshape3(const latentgeo::RowMatrix& m, latentgeo::Index a, latentgeo::Index b,
                                          latentgeo::Index c) {
  pybind11::array_t<double> out({a, b, c});
  std::copy(m.data(), m.data() + m.size(), out.mutable_data());
  return out;
}

// An options struct T from keyword arguments: a default-constructed T (C++ is the one home of each
// default) with the given attributes set through its Python class (which checks their types);
// an unknown name is an std::invalid_argument naming it. The class of T must be registered.
template <class T>
T from_keywords(const pybind11::dict& kwargs, const char* type_name) {
  pybind11::object obj = pybind11::cast(T());
  for (const auto& item : kwargs) {
    const std::string name = pybind11::str(item.first);
    require(!name.empty() && name[0] != '_' && pybind11::hasattr(obj, name.c_str()),
            name + ": not an option of " + type_name);
    obj.attr(item.first) = item.second;
  }
  return obj.cast<T>();
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
