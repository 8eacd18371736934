// Preconditioned L-BFGS with a strong-Wolfe line search (Nocedal & Wright, Alg. 7.4, 3.5, 3.6).
//
// The problem type supplies
//   double value_and_gradient(const Vector& x, Vector& g)   // f(x) and its gradient; may return inf/NaN
//   void apply_h0(const Vector& g, Vector& r) const           // r = H0 g, H0 an SPD inverse-Hessian guess
//   void refresh(const Vector& x)                              // rebuild H0 at x (called every refresh_every)
//
// Convergence is tested per call and is invariant to the scale of f: the last accepted step
// must have changed f by at most ftol * |f| and the quasi-Newton decrement -g^T d (an estimate
// of 2 (f - f*)) must be at most gtol * |f|.
#pragma once

#include <cmath>
#include <deque>
#include <limits>

#include "latentgeo/core/common.hpp"

namespace latentgeo {

enum class LbfgsStatus : int { converged = 0, max_iter = 1, line_search_failed = 2, non_finite = 3 };

struct LbfgsOptions {
  int max_iter = 200;        // iterations (accepted steps)
  int history = 8;           // stored curvature pairs
  int max_evaluations = 25;  // per line search
  int refresh_every = 10;    // rebuild H0 every this many iterations (0: never)
  double ftol = 1e-9;        // relative change of f of the last step
  double gtol = 1e-11;       // decrement relative to |f|
  double c1 = kArmijo, c2 = 0.9;
};

struct LbfgsResult {
  LbfgsStatus status = LbfgsStatus::max_iter;
  int n_iter = 0;
  int n_evaluations = 0;
  double f = std::numeric_limits<double>::quiet_NaN();
  double decrement = std::numeric_limits<double>::quiet_NaN();
};

namespace detail {

// Minimiser of the cubic through (a, fa, da), (b, fb, db), clamped to the inner 80% of [a, b].
inline double cubic_step(double a, double fa, double da, double b, double fb, double db) {
  const double lo = std::min(a, b), hi = std::max(a, b), margin = 0.1 * (hi - lo);
  const double d1 = da + db - 3.0 * (fa - fb) / (a - b);
  const double disc = d1 * d1 - da * db;
  double x = 0.5 * (a + b);
  if (disc >= 0.0) {
    const double d2 = std::copysign(std::sqrt(disc), b - a);
    const double denom = db - da + 2.0 * d2;
    if (denom != 0.0) {
      const double cand = b - (b - a) * (db + d2 - d1) / denom;
      if (std::isfinite(cand)) x = cand;
    }
  }
  return std::min(std::max(x, lo + margin), hi - margin);
}

}  // namespace detail

template <class Problem>
class Lbfgs {
 public:
  Lbfgs(Problem& problem, const LbfgsOptions& options) : p_(problem), o_(options) {}

  // Minimises from x (overwritten with the result).
  LbfgsResult minimize(Vector& x) {
    LbfgsResult res;
    const Index n = x.size();
    g_.resize(n);
    xt_.resize(n);
    gt_.resize(n);
    d_.resize(n);
    s_.clear();
    y_.clear();
    rho_.clear();
    double f = evaluate(x, g_, res);
    if (!std::isfinite(f) || !g_.allFinite()) {
      res.status = LbfgsStatus::non_finite;
      res.f = f;
      return res;
    }
    if (n == 0) {
      res.status = LbfgsStatus::converged;
      res.f = f;
      res.decrement = 0.0;
      return res;
    }
    p_.refresh(x);
    direction();
    double decrement = -g_.dot(d_);
    for (;;) {
      res.f = f;
      res.decrement = decrement;
      if (res.n_iter >= o_.max_iter) {
        res.status = LbfgsStatus::max_iter;
        return res;
      }
      if (!(decrement > 0.0)) {  // not a descent direction: restart from H0
        reset_memory();
        direction();
        decrement = -g_.dot(d_);
        if (!(decrement > 0.0)) {
          res.status = decrement == 0.0 ? LbfgsStatus::converged : LbfgsStatus::line_search_failed;
          return res;
        }
      }
      double f_new = f;
      if (!line_search(x, f, f_new, res)) {
        // Rounding limits the line search near the minimum: accept when the decrement is tiny.
        res.status =
            decrement <= 1e3 * o_.gtol * std::abs(f) ? LbfgsStatus::converged : LbfgsStatus::line_search_failed;
        return res;
      }
      ++res.n_iter;
      if (!std::isfinite(f_new)) {
        res.status = LbfgsStatus::non_finite;
        return res;
      }
      update_memory(x);
      const double change = f - f_new;
      x.swap(xt_);
      g_.swap(gt_);
      f = f_new;
      if (o_.refresh_every > 0 && res.n_iter % o_.refresh_every == 0) p_.refresh(x);
      direction();
      decrement = -g_.dot(d_);
      if (std::abs(change) <= o_.ftol * std::abs(f) && decrement >= 0.0 && decrement <= o_.gtol * std::abs(f)) {
        res.f = f;
        res.decrement = decrement;
        res.status = LbfgsStatus::converged;
        return res;
      }
    }
  }

 private:
  double evaluate(const Vector& x, Vector& g, LbfgsResult& res) {
    ++res.n_evaluations;
    return p_.value_and_gradient(x, g);
  }

  void reset_memory() {
    s_.clear();
    y_.clear();
    rho_.clear();
  }

  // d = -H g by the two-loop recursion with H0 from the problem.
  void direction() {
    const int m = static_cast<int>(s_.size());
    alpha_.resize(m);
    q_ = g_;
    for (int i = m - 1; i >= 0; --i) {
      alpha_[i] = rho_[i] * s_[i].dot(q_);
      q_ -= alpha_[i] * y_[i];
    }
    p_.apply_h0(q_, d_);
    d_ *= h0_scale_;
    for (int i = 0; i < m; ++i) {
      const double beta = rho_[i] * y_[i].dot(d_);
      d_ += (alpha_[i] - beta) * s_[i];
    }
    d_ = -d_;
  }

  // Stores the pair (xt - x, gt - g) when it has positive curvature.
  void update_memory(const Vector& x) {
    Vector s = xt_ - x, y = gt_ - g_;
    const double sy = s.dot(y);
    if (!(sy > 1e-14 * y.squaredNorm()) || !std::isfinite(sy)) return;
    if (static_cast<int>(s_.size()) >= o_.history) {
      s_.pop_front();
      y_.pop_front();
      rho_.pop_front();
    }
    s_.push_back(std::move(s));
    y_.push_back(std::move(y));
    rho_.push_back(1.0 / sy);
    // H0 = gamma * (the problem's H0), gamma = s^T y / y^T H0 y from the newest pair (Nocedal &
    // Wright eq. 7.20 with a preconditioner): a guess that misses part of the curvature (the metric
    // Laplacian ignores the variation of G, which between the clusters of an RHVAE makes the
    // energy several times stiffer) would otherwise make every unit step overshoot. Kept across
    // minimize() calls: the next level of the same curve has the same mismatch.
    p_.apply_h0(y_.back(), hy_);
    const double gamma = sy / y_.back().dot(hy_);
    if (std::isfinite(gamma) && gamma > 0.0) h0_scale_ = std::min(std::max(gamma, 1e-4), 1e4);
  }

  // phi(a) = f(x + a d) into xt_/gt_; returns phi and its slope.
  double trial(const Vector& x, double a, double& slope, LbfgsResult& res) {
    xt_ = x + a * d_;
    const double phi = evaluate(xt_, gt_, res);
    slope = gt_.dot(d_);
    return (std::isfinite(phi) && std::isfinite(slope)) ? phi : std::numeric_limits<double>::infinity();
  }

  // Strong-Wolfe line search along d_ from x (value f). On success xt_/gt_ hold the accepted
  // point and f_new its value. When only sufficient decrease could be reached, that point is
  // accepted (the curvature pair is then skipped if it has no positive curvature).
  bool line_search(const Vector& x, double f, double& f_new, LbfgsResult& res) {
    const double slope0 = g_.dot(d_);
    double a_prev = 0.0, phi_prev = f, slope_prev = slope0;
    double a = 1.0;
    int evals = 0;
    while (evals < o_.max_evaluations) {
      double slope;
      const double phi = trial(x, a, slope, res);
      ++evals;
      if (!std::isfinite(phi) || phi > f + o_.c1 * a * slope0 || (evals > 1 && phi >= phi_prev))
        return zoom(x, f, slope0, a_prev, phi_prev, slope_prev, a, phi, slope, evals, f_new, res);
      if (std::abs(slope) <= -o_.c2 * slope0) {
        f_new = phi;
        return true;
      }
      if (slope >= 0.0) return zoom(x, f, slope0, a, phi, slope, a_prev, phi_prev, slope_prev, evals, f_new, res);
      a_prev = a;
      phi_prev = phi;
      slope_prev = slope;
      a *= 2.0;
    }
    return false;
  }

  bool zoom(const Vector& x, double f, double slope0, double lo, double phi_lo, double slope_lo, double hi,
            double phi_hi, double slope_hi, int evals, double& f_new, LbfgsResult& res) {
    while (evals < o_.max_evaluations) {
      const double a =
          std::isfinite(phi_hi) ? detail::cubic_step(lo, phi_lo, slope_lo, hi, phi_hi, slope_hi) : lo + 0.5 * (hi - lo);
      double slope;
      const double phi = trial(x, a, slope, res);
      ++evals;
      if (!std::isfinite(phi) || phi > f + o_.c1 * a * slope0 || phi >= phi_lo) {
        hi = a;
        phi_hi = phi;
        slope_hi = slope;
      } else {
        if (std::abs(slope) <= -o_.c2 * slope0) {
          f_new = phi;
          return true;
        }
        if (slope * (hi - lo) >= 0.0) {
          hi = lo;
          phi_hi = phi_lo;
          slope_hi = slope_lo;
        }
        lo = a;
        phi_lo = phi;
        slope_lo = slope;
      }
      if (std::abs(hi - lo) <= 1e-14 * std::max(1.0, std::abs(lo))) break;
    }
    if (lo > 0.0) {  // sufficient decrease without the curvature condition
      double slope;
      f_new = trial(x, lo, slope, res);
      return std::isfinite(f_new) && f_new < f;
    }
    return false;
  }

  Problem& p_;
  LbfgsOptions o_;
  Vector g_, xt_, gt_, d_, q_, hy_;
  double h0_scale_ = 1.0;
  std::vector<double> alpha_;
  std::deque<Vector> s_, y_;
  std::deque<double> rho_;
};

}  // namespace latentgeo
