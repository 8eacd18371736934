// Registration functions of the binding files; module.cpp calls each once.
#pragma once

#include <pybind11/eigen.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "latentgeo/common.hpp"

namespace latentgeo_bindings {

void register_rhvae(pybind11::module_& m);
void register_curves(pybind11::module_& m);
void register_pullback(pybind11::module_& m);
void register_geodesic(pybind11::module_& m);
void register_connection(pybind11::module_& m);

// Throws std::invalid_argument (ValueError in Python) naming the argument.
inline void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

inline void require_cols(const latentgeo::ConstRowMatrixRef& a, latentgeo::Index cols, const char* name) {
  require(a.cols() == cols, std::string(name) + ": expected " + std::to_string(cols) + " columns, got " +
                                std::to_string(a.cols()));
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
  {
    pybind11::gil_scoped_release release;
    k.quadratic_form(z, v, q, dqdz, dqdv, n_threads);
  }
  if (!grad) return pybind11::make_tuple(q);
  return pybind11::make_tuple(q, dqdz, dqdv);
}

}  // namespace latentgeo_bindings
