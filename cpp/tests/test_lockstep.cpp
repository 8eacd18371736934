// LockstepPool: rounds of requests served together, failures and cancellation without hangs.
#include <doctest/doctest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "latentgeo/core/lockstep.hpp"

using latentgeo::Index;
using latentgeo::LockstepPool;

namespace {

struct Square {
  double x = 0.0, y = 0.0;
};

// Solve i asks for the squares of i + 1, ..., i + steps, one after the other, and adds them up.
struct Squares {
  LockstepPool<Square>& pool;
  int steps;
  std::vector<double>& sums;
  void operator()(Index i) const {
    double sum = 0.0;
    for (int s = 1; s <= steps; ++s) {
      Square r;
      r.x = static_cast<double>(i + s);
      pool.submit(r);
      sum += r.y;
    }
    sums[static_cast<std::size_t>(i)] = sum;
  }
};

double expected_sum(Index i, int steps) {
  double sum = 0.0;
  for (int s = 1; s <= steps; ++s) sum += static_cast<double>((i + s) * (i + s));
  return sum;
}

}  // namespace

TEST_CASE("lockstep: every running solve's request is served in the same round") {
  for (Index width : {1, 4, 64}) {
    LockstepPool<Square> pool;
    const Index n = 10;
    const int steps = 3;
    std::vector<double> sums(n, -1.0);
    std::vector<std::size_t> sizes;
    pool.run(n, width, Squares{pool, steps, sums}, [&](std::vector<Square*>& batch) {
      sizes.push_back(batch.size());
      for (std::size_t k = 1; k < batch.size(); ++k) CHECK(batch[k - 1]->x < batch[k]->x);  // in solve order
      for (Square* r : batch) r->y = r->x * r->x;
    });
    for (Index i = 0; i < n; ++i) CHECK(sums[static_cast<std::size_t>(i)] == expected_sum(i, steps));
    // waves of min(width, n) solves in lockstep: ceil(n / width) waves of `steps` rounds
    const Index w = std::min(width, n);
    CHECK(static_cast<Index>(sizes.size()) == steps * ((n + w - 1) / w));
    CHECK(pool.rounds() == static_cast<Index>(sizes.size()));
    std::size_t total = 0;
    for (std::size_t s : sizes) {
      CHECK(s <= static_cast<std::size_t>(w));
      total += s;
    }
    CHECK(total == static_cast<std::size_t>(n * steps));
  }
}

TEST_CASE("lockstep: an error of the evaluator stops the pool and reaches the caller") {
  LockstepPool<Square> pool;
  std::vector<double> sums(20, -1.0);
  int calls = 0;
  const auto serve = [&](std::vector<Square*>& batch) {
    if (++calls == 2) throw std::runtime_error("evaluator failed");
    for (Square* r : batch) r->y = r->x * r->x;
  };
  CHECK_THROWS_AS(pool.run(20, 4, Squares{pool, 5, sums}, serve), std::runtime_error);
  CHECK(calls == 2);  // nothing served after the failure
  for (double s : sums) CHECK(s == -1.0);
}

TEST_CASE("lockstep: an exception of one solve stops the others") {
  LockstepPool<Square> pool;
  std::atomic<int> finished{0};
  const auto solve = [&](Index i) {
    Square r;
    r.x = 1.0;
    pool.submit(r);
    if (i == 2) throw std::logic_error("solve failed");
    pool.submit(r);
    ++finished;
  };
  const auto serve = [](std::vector<Square*>& batch) {
    for (Square* r : batch) r->y = 1.0;
  };
  CHECK_THROWS_AS(pool.run(8, 4, solve, serve), std::logic_error);
  CHECK(finished.load() < 8);
}

TEST_CASE("lockstep: a cancellation requested during a round stops the call") {
  latentgeo::Cancellation cancel;
  const latentgeo::CancelScope scope(&cancel);
  LockstepPool<Square> pool;
  std::vector<double> sums(6, -1.0);
  int calls = 0;
  const auto serve = [&](std::vector<Square*>& batch) {
    if (++calls == 3) cancel.request();
    for (Square* r : batch) r->y = r->x * r->x;
  };
  CHECK_THROWS_AS(pool.run(6, 3, Squares{pool, 100, sums}, serve), latentgeo::Cancelled);
  CHECK(calls == 3);
}

TEST_CASE("lockstep: no solves, no rounds") {
  LockstepPool<Square> pool;
  int calls = 0;
  pool.run(0, 4, [](Index) {}, [&](std::vector<Square*>&) { ++calls; });
  CHECK(calls == 0);
  std::vector<double> sums(3, -1.0);
  pool.run(3, 8, [](Index) {}, [&](std::vector<Square*>&) { ++calls; });  // solves that need nothing
  CHECK(calls == 0);
}
