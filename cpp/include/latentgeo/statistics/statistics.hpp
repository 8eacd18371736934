// Per-path and per-chain work of latentgeo.statistics: Brownian motion on the manifold
// (Euler-Maruyama) and Hamiltonian Monte Carlo for the Riemannian volume densities.
//
// Both run all paths (chains) in lock step: one batched evaluation of the geometry at the current
// points of every path per step (the kernels are parallel over points), then the cheap per-path
// update. Every path draws its normals from its own counter-based stream seeded by (seed, path),
// so the results do not depend on the thread count nor on the batching.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "latentgeo/core/common.hpp"

namespace latentgeo {

// SplitMix64 on its own start per stream: state_0 = mix(seed * phi + mix(stream + 1)), then
// x_i = mix(state_0 + i * phi). Statistically sound (SplitMix64 passes BigCrush) and cheap to
// seed, so that each path or chain owns a stream.
class StreamRng {
 public:
  StreamRng(std::uint64_t seed, std::uint64_t stream) : state_(mix(seed * kGolden + mix(stream + 1))) {}

  std::uint64_t next() {
    state_ += kGolden;
    return mix(state_);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Standard normal (Box-Muller, both values used).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double radius = std::sqrt(-2.0 * std::log(1.0 - uniform()));  // 1 - u in (0, 1]
    const double angle = 2.0 * kPi * uniform();
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }

  static std::uint64_t mix(std::uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
  }

 private:
  static constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;
  static constexpr double kPi = 3.14159265358979323846;
  std::uint64_t state_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// ---------------------------------------------------------------------------------------------
// Brownian motion
// ---------------------------------------------------------------------------------------------
// A diffusion geometry has
//   Index dim() const;
//   void evaluate(const ConstRowMatrixRef& z, RowMatrix& ginv, RowMatrix& drift, std::vector<char>& ok,
//                 int n_threads) const;
// filling G^{-1} (N x d^2, row-major) and the drift b (N x d) of Brownian motion in coordinates,
//   b^k = -1/2 G^{ij} Gamma^k_ij = 1/2 d_i G^{ik} + 1/4 G^{ki} d_i log det G,
// with ok = 0 at points outside the metric's domain.

// The drift from G^{-1}, dG^{-1} (layout [a, b, k] = d_k G^{-1}_ab) and d log det G at one point.
inline void brownian_drift(const double* ginv, const double* dginv, const double* dlogdet, Index d, double* drift) {
  for (Index k = 0; k < d; ++k) {
    double v = 0.0;
    for (Index i = 0; i < d; ++i) v += 0.5 * dginv[(i * d + k) * d + i] + 0.25 * ginv[k * d + i] * dlogdet[i];
    drift[k] = v;
  }
}

// The options of brownian_motion; the defaults exist here only.
struct BrownianOptions {
  double dt = 0.01;        // Euler-Maruyama step
  Index n_steps = 100;     // steps per path
  std::uint64_t seed = 0;  // path i draws from the stream (seed, i)
};

inline void validate(const BrownianOptions& o) {
  if (!(o.dt > 0.0 && std::isfinite(o.dt))) throw std::invalid_argument("dt: must be finite and > 0");
  if (o.n_steps < 1) throw std::invalid_argument("n_steps: must be >= 1");
}

enum class PathStatus : int { completed = 0, left_domain = 1, non_finite = 2 };

struct BrownianResult {
  RowMatrix paths;            // n_paths x (n_steps + 1) * d
  std::vector<int> status;    // PathStatus per path
  std::vector<Index> n_done;  // steps completed per path (n_steps when completed)
};

// Drops the rows of stopped paths (keep = 0) from the batch.
inline void compact(std::vector<Index>& alive, RowMatrix& z, const std::vector<char>& keep) {
  Index w = 0;
  for (Index r = 0; r < static_cast<Index>(alive.size()); ++r) {
    if (!keep[static_cast<std::size_t>(r)]) continue;
    alive[static_cast<std::size_t>(w)] = alive[static_cast<std::size_t>(r)];
    if (w != r) z.row(w) = z.row(r);
    ++w;
  }
  alive.resize(static_cast<std::size_t>(w));
  z.conservativeResize(w, Eigen::NoChange);
}

// Euler-Maruyama: z_{n+1} = z_n + b(z_n) dt + sqrt(dt) L(z_n) xi_n, L L^T = G^{-1}(z_n) (Cholesky;
// any square root gives the same law), xi_n ~ N(0, I) from the path's stream. A path whose point
// leaves the domain (or whose G^{-1} is not positive definite) stops there: its status says why,
// that point is its last (n_done steps) and the rest of its row is NaN.
template <class Geometry>
BrownianResult brownian_motion(const Geometry& geo, const ConstRowMatrixRef& z0, const BrownianOptions& o,
                               int n_threads) {
  const double dt = o.dt;
  const Index n_steps = o.n_steps;
  const std::uint64_t seed = o.seed;
  const Index p = z0.rows(), d = geo.dim();
  BrownianResult out;
  out.paths.setConstant(p, (n_steps + 1) * d, std::numeric_limits<double>::quiet_NaN());
  out.paths.leftCols(d) = z0;
  out.status.assign(static_cast<std::size_t>(p), static_cast<int>(PathStatus::completed));
  out.n_done.assign(static_cast<std::size_t>(p), 0);
  std::vector<StreamRng> rngs;
  rngs.reserve(static_cast<std::size_t>(p));
  for (Index i = 0; i < p; ++i) rngs.emplace_back(seed, static_cast<std::uint64_t>(i));

  std::vector<Index> alive(static_cast<std::size_t>(p));
  for (Index i = 0; i < p; ++i) alive[static_cast<std::size_t>(i)] = i;
  RowMatrix z = z0, ginv, drift;
  std::vector<char> ok;
  const double sqrt_dt = std::sqrt(dt);
  for (Index step = 0; step < n_steps && !alive.empty(); ++step) {
    check_cancelled();
    geo.evaluate(z, ginv, drift, ok, n_threads);
    const Index m = static_cast<Index>(alive.size());
    std::vector<char> keep(static_cast<std::size_t>(m), 1);
    parallel_for(
        m, n_threads,
        [&](Index r) {
          const Index path = alive[static_cast<std::size_t>(r)];
          auto fail = [&](PathStatus s) {
            out.status[static_cast<std::size_t>(path)] = static_cast<int>(s);
            keep[static_cast<std::size_t>(r)] = 0;
          };
          if (!ok[static_cast<std::size_t>(r)]) return fail(PathStatus::left_domain);
          const Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> gi(
              ginv.row(r).data(), d, d);
          Eigen::LLT<Eigen::MatrixXd> llt(gi);
          if (llt.info() != Eigen::Success) return fail(PathStatus::left_domain);
          Vector xi(d);
          for (Index j = 0; j < d; ++j) xi(j) = rngs[static_cast<std::size_t>(path)].normal();
          const Vector noise = llt.matrixL() * xi;
          const Vector next = z.row(r).transpose() + dt * drift.row(r).transpose() + sqrt_dt * noise;
          if (!next.allFinite()) return fail(PathStatus::non_finite);
          z.row(r) = next.transpose();
          out.paths.block(path, (step + 1) * d, 1, d) = next.transpose();
          out.n_done[static_cast<std::size_t>(path)] = step + 1;
        },
        256);
    compact(alive, z, keep);
  }
  // The last points too must lie in the domain for a path to count as completed.
  if (!alive.empty()) {
    geo.evaluate(z, ginv, drift, ok, n_threads);
    for (std::size_t r = 0; r < alive.size(); ++r)
      if (!ok[r]) out.status[static_cast<std::size_t>(alive[r])] = static_cast<int>(PathStatus::left_domain);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Hamiltonian Monte Carlo
// ---------------------------------------------------------------------------------------------
// A log-density target has
//   Index dim() const;
//   void evaluate(const ConstRowMatrixRef& z, Vector& logp, RowMatrix& grad, std::vector<char>& ok,
//                 int n_threads) const;
// (log density up to a constant, its gradient, ok = 0 outside the domain).

struct HmcOptions {
  Index n_warmup = 200;    // iterations adapting the step size (dual averaging), then discarded
  Index n_draws = 1;       // iterations recorded per chain
  Index n_leapfrog = 10;   // leapfrog steps per iteration
  double step_size = 0.1;  // initial step in box units (each side of the box has length 1)
  double target_accept = 0.8;
  std::uint64_t seed = 0;
};

// Throws std::invalid_argument naming the option out of range.
inline void validate(const HmcOptions& o) {
  if (o.n_warmup < 0) throw std::invalid_argument("n_warmup: must be >= 0");
  if (o.n_draws < 1) throw std::invalid_argument("n_draws: must be >= 1");
  if (o.n_leapfrog < 1) throw std::invalid_argument("n_leapfrog: must be >= 1");
  if (!(o.step_size > 0.0 && std::isfinite(o.step_size)))
    throw std::invalid_argument("step_size: must be finite and > 0");
  if (!(o.target_accept > 0.0 && o.target_accept < 1.0))
    throw std::invalid_argument("target_accept: must lie in (0, 1)");
}

struct HmcResult {
  RowMatrix draws;         // n_draws x (n_chains * d), draw-major
  Vector accept_prob;      // per chain, mean acceptance probability of the recorded iterations
  Index n_divergent = 0;   // recorded iterations whose trajectory left the domain or blew up
  double step_size = 0.0;  // the adapted step (box units)
};

namespace detail {

// Folds u into [0, 1] by reflection at the walls; returns -1 when the momentum flips (odd count).
inline double reflect_unit(double& u) {
  const double k = std::floor(u);
  const double r = u - k;
  const bool odd = std::fmod(std::fabs(k), 2.0) == 1.0;
  u = odd ? 1.0 - r : r;
  return odd ? -1.0 : 1.0;
}

// Dual averaging of log(step) (Hoffman & Gelman 2014, algorithm 5) on the chains' mean acceptance.
class StepAdapter {
 public:
  StepAdapter(double step, double target) : mu_(std::log(10.0 * step)), target_(target), log_step_(std::log(step)) {}
  double step() const { return std::exp(log_step_); }
  double final_step() const { return std::exp(log_bar_); }
  void update(double accept) {
    ++t_;
    const double w = 1.0 / (t_ + kT0);
    h_bar_ = (1.0 - w) * h_bar_ + w * (target_ - accept);
    log_step_ = mu_ - std::sqrt(static_cast<double>(t_)) / kGamma * h_bar_;
    const double eta = std::pow(static_cast<double>(t_), -kKappa);
    log_bar_ = eta * log_step_ + (1.0 - eta) * log_bar_;
  }

 private:
  static constexpr double kGamma = 0.05, kT0 = 10.0, kKappa = 0.75;
  double mu_, target_, log_step_, log_bar_ = 0.0, h_bar_ = 0.0;
  Index t_ = 0;
};

}  // namespace detail

// HMC with an identity mass in the coordinates u = (z - lo) / (hi - lo) of the box, reflecting
// at its walls (reflection keeps the leapfrog map reversible and volume preserving, so the
// chains target the density restricted to the box). Each iteration draws the momentum and a
// +-10% jitter of the step from the chain's stream. `init` holds one start per chain.
template <class Target>
HmcResult hmc_sample(const Target& target, const ConstRowMatrixRef& init, const Vector& lo, const Vector& hi,
                     const HmcOptions& o, int n_threads) {
  const Index c = init.rows(), d = target.dim();
  const Vector width = hi - lo;
  std::vector<StreamRng> rngs;
  for (Index i = 0; i < c; ++i) rngs.emplace_back(o.seed, static_cast<std::uint64_t>(i));
  RowMatrix u = (init.rowwise() - lo.transpose()).array().rowwise() / width.transpose().array();

  // log density and gradient in u (the gradient in z times the width).
  Vector logp(c), logp_new;
  RowMatrix grad(c, d), grad_new;
  std::vector<char> ok, ok_new;
  auto evaluate = [&](const RowMatrix& uu, Vector& lp, RowMatrix& g, std::vector<char>& okk) {
    RowMatrix z = (uu.array().rowwise() * width.transpose().array()).rowwise() + lo.transpose().array();
    target.evaluate(z, lp, g, okk, n_threads);
    g.array().rowwise() *= width.transpose().array();
  };
  evaluate(u, logp, grad, ok);
  for (Index i = 0; i < c; ++i)
    if (!ok[static_cast<std::size_t>(i)] || !std::isfinite(logp(i)))
      throw std::invalid_argument("init: the density is not defined at the start of chain " + std::to_string(i));

  HmcResult out;
  out.draws.resize(o.n_draws, c * d);
  out.accept_prob.setZero(c);
  detail::StepAdapter adapter(o.step_size, o.target_accept);
  RowMatrix p(c, d), u_new(c, d);
  Vector step(c), accept(c);
  std::vector<char> diverged(static_cast<std::size_t>(c));
  const Index total = o.n_warmup + o.n_draws;
  double final_step = o.step_size;
  for (Index it = 0; it < total; ++it) {
    check_cancelled();
    const bool warmup = it < o.n_warmup;
    const double eps = warmup ? adapter.step() : final_step;
    for (Index i = 0; i < c; ++i) {
      auto& rng = rngs[static_cast<std::size_t>(i)];
      for (Index j = 0; j < d; ++j) p(i, j) = rng.normal();
      step(i) = eps * (0.9 + 0.2 * rng.uniform());
    }
    const Vector h0 = -logp + 0.5 * p.rowwise().squaredNorm();
    std::fill(diverged.begin(), diverged.end(), 0);
    u_new = u;
    grad_new = grad;
    for (Index l = 0; l < o.n_leapfrog; ++l) {
      for (Index i = 0; i < c; ++i) {
        p.row(i) += 0.5 * step(i) * grad_new.row(i);
        for (Index j = 0; j < d; ++j) {
          u_new(i, j) += step(i) * p(i, j);
          p(i, j) *= detail::reflect_unit(u_new(i, j));
        }
      }
      evaluate(u_new, logp_new, grad_new, ok_new);
      for (Index i = 0; i < c; ++i) {
        if (!ok_new[static_cast<std::size_t>(i)] || !std::isfinite(logp_new(i)) || !grad_new.row(i).allFinite()) {
          diverged[static_cast<std::size_t>(i)] = 1;
          grad_new.row(i).setZero();  // keeps the arithmetic finite; the proposal is rejected
          logp_new(i) = -std::numeric_limits<double>::infinity();
        }
        p.row(i) += 0.5 * step(i) * grad_new.row(i);
      }
    }
    for (Index i = 0; i < c; ++i) {
      const double h1 = -logp_new(i) + 0.5 * p.row(i).squaredNorm();
      const bool bad = diverged[static_cast<std::size_t>(i)] || !std::isfinite(h1) || h1 - h0(i) > 1000.0;
      accept(i) = bad ? 0.0 : std::min(1.0, std::exp(h0(i) - h1));
      if (rngs[static_cast<std::size_t>(i)].uniform() < accept(i)) {
        u.row(i) = u_new.row(i);
        logp(i) = logp_new(i);
        grad.row(i) = grad_new.row(i);
      }
      if (!warmup && bad) ++out.n_divergent;
    }
    if (warmup) {
      adapter.update(accept.mean());
      if (it + 1 == o.n_warmup) final_step = adapter.final_step();
      continue;
    }
    out.accept_prob += accept;
    const Index r = it - o.n_warmup;
    for (Index i = 0; i < c; ++i)
      out.draws.block(r, i * d, 1, d) = (u.row(i).array() * width.transpose().array()) + lo.transpose().array();
  }
  out.accept_prob /= static_cast<double>(std::max<Index>(o.n_draws, 1));
  out.step_size = final_step;
  return out;
}

}  // namespace latentgeo
