// A vectorisable exp for the RHVAE weights.
//
// Range reduction x = k ln2 + r (|r| <= ln2/2, Cody-Waite split of ln2), a degree-13
// Taylor polynomial for e^r (truncation < 1e-17 relative) and 2^k built in the exponent
// bits. Branch-free, so GCC/Clang vectorise the loop (with -fno-trapping-math); max
// relative error ~2 ulp against std::exp. Arguments below -708 (where e^x would be
// subnormal, < 2.3e-308) give exactly 0, as IEEE underflow does a little further down.
#pragma once

#include <cstdint>
#include <cstring>

#include "latentgeo/core/common.hpp"

namespace latentgeo {

// x[i] <- exp(factor * x[i]) for i in [0, n); the arguments must be <= ~709.
inline void scaled_exp_inplace(double* x, Index n, double factor) {
  constexpr double log2e = 1.4426950408889634, ln2_hi = 0.6931471803691238, ln2_lo = 1.9082149292705877e-10;
  constexpr double shifter = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
  constexpr double lowest = -708.0;
  for (Index i = 0; i < n; ++i) {
    const double v = factor * x[i];
    const double y = v > lowest ? v : lowest;
    const double t = y * log2e + shifter;
    const double k = t - shifter;
    const double r = (y - k * ln2_hi) - k * ln2_lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    std::uint64_t bits;
    std::memcpy(&bits, &t, sizeof bits);
    bits = (bits + 1023) << 52;  // the low bits of t hold k: 2^k as a double
    double scale;
    std::memcpy(&scale, &bits, sizeof scale);
    const double keep = v >= lowest ? 1.0 : 0.0;
    x[i] = keep * (p * scale);
  }
}

}  // namespace latentgeo
