// Registration functions of the binding files; module.cpp calls each once.
#pragma once

#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>

#include "latentgeo/common.hpp"

namespace latentgeo_bindings {

void register_rhvae(pybind11::module_& m);
void register_curves(pybind11::module_& m);
void register_pullback(pybind11::module_& m);

// Throws std::invalid_argument (ValueError in Python) naming the argument.
inline void require(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

inline void require_cols(const latentgeo::ConstRowMatrixRef& a, latentgeo::Index cols, const char* name) {
  require(a.cols() == cols, std::string(name) + ": expected " + std::to_string(cols) + " columns, got " +
                                std::to_string(a.cols()));
}

}  // namespace latentgeo_bindings
