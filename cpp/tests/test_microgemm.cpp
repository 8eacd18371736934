// The register-tiled product of the RHVAE kernel against a plain triple loop.
#include <doctest/doctest.h>

#include "latentgeo/simd/microgemm.hpp"

using namespace latentgeo;

TEST_CASE("multiply_add equals the plain product for every tile shape and stride") {
  std::srand(3);
  const Index lanes = gemm::kLanes;
  for (const Index m : {1, 3, 8, 9, 17, 40})
    for (const Index vectors : {1, 2, 3, 4, 7})
      for (const bool transposed_a : {false, true}) {
        const Index n = vectors * lanes, depth = 37, ldb = n + lanes, ldc = n + 2 * lanes;
        // A(k, i) at a[k * a_k + i * a_i]: rows of a stored matrix (a_k = 1) or its columns.
        const RowMatrix a_store =
            transposed_a ? RowMatrix(RowMatrix::Random(depth, m + 2)) : RowMatrix(RowMatrix::Random(m, depth + 3));
        const Index a_k = transposed_a ? a_store.cols() : 1, a_i = transposed_a ? 1 : a_store.cols();
        const RowMatrix b = RowMatrix::Random(depth, ldb), c0 = RowMatrix::Random(m, ldc);
        RowMatrix c = c0;
        gemm::multiply_add(m, n, depth, a_store.data(), a_k, a_i, b.data(), ldb, c.data(), ldc);
        for (Index i = 0; i < m; ++i)
          for (Index j = 0; j < ldc; ++j) {
            double expected = c0(i, j);
            if (j < n)
              for (Index k = 0; k < depth; ++k) expected += a_store.data()[k * a_k + i * a_i] * b(k, j);
            CHECK(c(i, j) == doctest::Approx(expected).epsilon(1e-13));
          }
      }
}
