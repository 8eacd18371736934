// A register-blocked matrix product for the RHVAE kernel's chunks,
//   C(i, j) += sum_k A(k, i) B(k, j),   A(k, i) = a[k * a_k + i * a_i],   B(k, j) = b[k * ldb + j],
// with C row-major (ldc) and a column count that is a multiple of kLanes (the callers pad).
//
// Why not Eigen's GEMM: the geodesic solver calls the kernel with 9 to 129 points, and Eigen packs
// both operands on every call; packing a chunk of the K x d(d+1)/2 matrices costs as much as the
// product itself for a few points. Here B is read in place (rows are contiguous), A is broadcast
// element by element, and a tile of kTileRows x 3 vectors of C stays in registers over the whole
// sum. Every C(i, j) is summed over k in order in one accumulator, so the result of a row does not
// depend on the tiling, on the other rows or on the thread count.
#pragma once

#include <array>
#include <cstdint>
#include <utility>

#include "latentgeo/core/common.hpp"

namespace latentgeo {
namespace gemm {

// Doubles per SIMD register (8 with AVX-512, 4 with AVX, 2 with SSE/NEON, 1 without).
constexpr int kLanes =
    Eigen::internal::packet_traits<double>::Vectorizable ? Eigen::internal::packet_traits<double>::size : 1;
using Lanes = Eigen::Array<double, kLanes, 1>;
// Rows of C per tile: tile rows x 3 vectors of accumulators fit the vector registers.
constexpr int kTileRows = kLanes >= 8 ? 8 : 4;
constexpr int kTileVectors = 3;

inline Index round_up(Index n, Index multiple) { return (n + multiple - 1) / multiple * multiple; }

// Rows of B fetched ahead: with few rows of C the product streams B from memory, and the
// hardware prefetcher alone leaves the loads waiting (2x slower at 17 rows, K = 60 000, d = 16).
constexpr Index kPrefetchRows = 64;

// A prefetch hint for the cache line at address + offset bytes (never dereferenced, so an address
// beyond the array is harmless; integer arithmetic keeps it out of pointer arithmetic).
inline void prefetch(const double* address, Index offset) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(
      reinterpret_cast<const void*>(reinterpret_cast<std::uintptr_t>(address) + static_cast<std::uintptr_t>(offset)));
#else
  (void)address;
  (void)offset;
#endif
}

template <int Rows, int Vectors>
void tile(Index depth, const double* a, Index a_k, Index a_i, const double* b, Index ldb, double* c, Index ldc) {
  Lanes sum[Rows][Vectors];
  for (auto& row : sum)
    for (auto& s : row) s.setZero();
  for (Index k = 0; k < depth; ++k) {
    Lanes bk[Vectors];
    for (int v = 0; v < Vectors; ++v) {
      bk[v] = Eigen::Map<const Lanes>(b + k * ldb + v * kLanes);
      prefetch(b + k * ldb + v * kLanes, kPrefetchRows * ldb * static_cast<Index>(sizeof(double)));
    }
    const double* ak = a + k * a_k;
    for (int i = 0; i < Rows; ++i) {
      const Lanes ai = Lanes::Constant(ak[i * a_i]);
      for (int v = 0; v < Vectors; ++v) sum[i][v] += ai * bk[v];
    }
  }
  for (int i = 0; i < Rows; ++i)
    for (int v = 0; v < Vectors; ++v) Eigen::Map<Lanes>(c + i * ldc + v * kLanes) += sum[i][v];
}

using TileFunction = void (*)(Index, const double*, Index, Index, const double*, Index, double*, Index);

template <std::size_t... I>
constexpr std::array<TileFunction, sizeof...(I)> tile_table(std::index_sequence<I...>) {
  return {&tile<static_cast<int>(I / kTileVectors) + 1, static_cast<int>(I % kTileVectors) + 1>...};
}

// tile<rows, vectors> at kTiles[(rows - 1) * kTileVectors + vectors - 1].
constexpr auto kTiles = tile_table(std::make_index_sequence<kTileRows * kTileVectors>{});

// C (m x n) += A^T B as described above; n must be a multiple of kLanes.
inline void multiply_add(Index m, Index n, Index depth, const double* a, Index a_k, Index a_i, const double* b,
                         Index ldb, double* c, Index ldc) {
  for (Index j0 = 0; j0 < n; j0 += kTileVectors * kLanes) {
    const Index vectors = std::min<Index>(kTileVectors, (n - j0) / kLanes);
    for (Index i0 = 0; i0 < m; i0 += kTileRows) {
      const Index rows = std::min<Index>(kTileRows, m - i0);
      kTiles[(rows - 1) * kTileVectors + vectors - 1](depth, a + i0 * a_i, a_k, a_i, b + j0, ldb, c + i0 * ldc + j0,
                                                      ldc);
    }
  }
}

}  // namespace gemm
}  // namespace latentgeo
