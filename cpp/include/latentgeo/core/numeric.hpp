// Numeric thresholds shared by the kernels and solvers, each named (and explained) once.
#pragma once

#include <Eigen/Cholesky>

namespace latentgeo {

// A Cholesky factor L of G^{-1} (or of G) with a diagonal entry at or below this counts as
// singular: G = (L L^T)^{-1} overflows once an entry of L falls below ~1e-154.
inline constexpr double kSingularPivot = 1e-150;

// Whether a Cholesky factorisation succeeded with every pivot above kSingularPivot (false for NaN).
template <class Llt>
bool cholesky_regular(const Llt& llt) {
  return llt.info() == Eigen::Success && llt.matrixLLT().diagonal().minCoeff() > kSingularPivot;
}

// Sufficient decrease of a damped Newton or line-search step: the residual (or objective) must
// fall by this fraction of the step's predicted decrease (Armijo).
inline constexpr double kArmijo = 1e-4;

}  // namespace latentgeo
