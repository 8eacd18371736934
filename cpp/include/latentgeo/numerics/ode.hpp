// Adaptive Dormand-Prince 5(4) for batches of independent ODE systems, with dense output.
//
// Each trajectory y_b(t), t in [0, t_end], has its own step size, error control and status; the
// trajectories of a block advance in lockstep, stage by stage, so that one call of the system
// evaluates a stage for the whole block (a batched metric evaluation: one GEMM for the RHVAE, one
// Python call for a callback metric). A step is accepted when the RMS of the embedded error
// estimate over the controlled components, each divided by atol_i + rtol * max(|y_i|, |y_new_i|),
// is <= 1. The continuous extension is Dormand-Prince's fourth-order interpolant (Hairer,
// Norsett & Wanner, "Solving ODEs I", II.6), used for the output times.
//
// The system contract:
//   Index size() const;         state length n
//   Index controlled() const;   the first `controlled` components enter the error norm
//   void rhs(const std::vector<Index>& ids, const Vector& t, const RowMatrix& y, RowMatrix& dy,
//            std::vector<char>& ok) const;
//       dy = f(t, y) for the rows of y (trajectories `ids`); ok[r] = 0 where f is not defined
//       (a point outside the metric's domain). It must not throw for such points.
//   double next_break(Index id, double t) const;
//       the first time > t where f is not smooth (a node of a piecewise curve), or +inf.
// A failed evaluation rejects the step and shrinks it; a trajectory whose step falls below
// ~1e-13 t_end because of failed evaluations has left the domain (domain_exit).
#pragma once

#include <cmath>
#include <limits>
#include <vector>

#include "latentgeo/core/common.hpp"

namespace latentgeo {

enum class OdeStatus : int {
  converged = 0,       // reached t_end
  max_steps = 1,       // accepted + rejected steps reached max_steps
  domain_exit = 2,     // the trajectory left the metric's domain (non-finite or singular G)
  step_underflow = 3,  // the step size fell below the resolution of t (a singularity or stiffness)
};

struct OdeOptions {
  double rtol = 1e-10;      // relative tolerance of each step
  Index max_steps = 20000;  // accepted + rejected steps per trajectory
  Index block = 4;          // trajectories advanced in lockstep by one evaluation per stage
};

struct OdeStats {
  OdeStatus status = OdeStatus::converged;
  double t = 0.0;  // time reached
  Index n_steps = 0, n_rejected = 0;
};

namespace dopri {

constexpr double c[7] = {0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0, 1.0};
constexpr double a[7][6] = {
    {0, 0, 0, 0, 0, 0},
    {0.2, 0, 0, 0, 0, 0},
    {3.0 / 40.0, 9.0 / 40.0, 0, 0, 0, 0},
    {44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0, 0, 0},
    {19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0, 0, 0},
    {9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0, 0},
    {35.0 / 384.0, 0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0},  // = b (FSAL)
};
// b - b*: the embedded error estimate.
constexpr double e[7] = {71.0 / 57600.0, 0,          -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0,
                         22.0 / 525.0,   -1.0 / 40.0};
// The dense-output coefficients.
constexpr double d[7] = {-12715105075.0 / 11282082432.0,  0,
                         87487479700.0 / 32700410799.0,   -10690763975.0 / 1880347072.0,
                         701980252875.0 / 199316789632.0, -1453857185.0 / 822651844.0,
                         69997945.0 / 29380423.0};

}  // namespace dopri

// Integrates the trajectories of one block in lockstep. Rows of the caller's matrices belong to
// trajectories first .. first + m - 1.
template <class System>
class DopriBlock {
 public:
  DopriBlock(const System& sys, Index first, Index m, double t_end, const Vector& t_out, const OdeOptions& o)
      : sys_(sys), first_(first), m_(m), n_(sys.size()), nc_(sys.controlled()), t_end_(t_end), t_out_(t_out), o_(o) {}

  // y: the block's initial states (m x n), overwritten with the final ones. atol: m x n absolute
  // tolerances. dense (m x len(t_out)*n, may be null) receives the states at the output times.
  void run(Eigen::Ref<RowMatrix> y, const Eigen::Ref<const RowMatrix>& atol, RowMatrix* dense, OdeStats* stats) {
    y_ = y;
    atol_ = atol;
    dense_ = dense;
    stats_ = stats;
    for (auto& k : k_) k.resize(m_, n_);
    ynew_.resize(m_, n_);
    t_.setZero(m_);
    h_.setZero(m_);
    next_out_.assign(static_cast<std::size_t>(m_), 0);
    fresh_.assign(static_cast<std::size_t>(m_), 1);
    rejected_last_.assign(static_cast<std::size_t>(m_), 0);
    finished_.assign(static_cast<std::size_t>(m_), 0);
    failed_.assign(static_cast<std::size_t>(m_), 0);
    std::vector<Index> active(static_cast<std::size_t>(m_));
    for (Index r = 0; r < m_; ++r) {
      active[static_cast<std::size_t>(r)] = r;
      stats_[r] = OdeStats{};
      write_outputs_at_start(r);
    }
    if (!(t_end_ > 0.0)) {
      y = y_;
      return;
    }
    start(active);
    while (!active.empty()) {
      step(active);
      std::vector<Index> still;
      for (Index r : active)
        if (!done(r)) still.push_back(r);
      active.swap(still);
    }
    y = y_;
  }

 private:
  bool done(Index r) const { return finished_[static_cast<std::size_t>(r)] != 0; }

  // k1 = f(y) at the rows that need it; rows whose evaluation fails are finished with domain_exit.
  void evaluate_first(std::vector<Index>& rows) {
    if (rows.empty()) return;
    gather(rows, [&](Index r, RowMatrix& ys, Index i) { ys.row(i) = y_.row(r); });
    call(rows);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Index r = rows[i];
      if (ok_[i]) {
        k_[0].row(r) = dy_.row(static_cast<Index>(i));
        fresh_[static_cast<std::size_t>(r)] = 0;
      } else {
        finish(r, OdeStatus::domain_exit);
      }
    }
  }

  // The first evaluation and Hairer's initial step size (one extra evaluation after an Euler step).
  void start(std::vector<Index>& active) {
    evaluate_first(active);
    std::vector<Index> rows;
    for (Index r : active)
      if (!done(r)) rows.push_back(r);
    std::vector<double> d0(rows.size()), d1(rows.size()), h0(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Index r = rows[i];
      d0[i] = scaled_norm(r, y_.row(r), y_.row(r));
      d1[i] = scaled_norm(r, k_[0].row(r), y_.row(r));
      h0[i] = (d0[i] < 1e-5 || d1[i] < 1e-5) ? 1e-6 * t_end_ : 0.01 * d0[i] / d1[i];
      h0[i] = std::min(h0[i], t_end_);
    }
    gather(rows, [&](Index r, RowMatrix& ys, Index i) { ys.row(i) = y_.row(r) + h0[i] * k_[0].row(r); });
    call(rows);
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const Index r = rows[i];
      double h1 = std::max(1e-6 * t_end_, 1e-3 * h0[i]);
      if (ok_[i]) {
        const double d2 = scaled_norm(r, dy_.row(static_cast<Index>(i)) - k_[0].row(r), y_.row(r)) / h0[i];
        const double dmax = std::max(d1[i], d2);
        if (dmax > 1e-15) h1 = std::pow(0.01 / dmax, 0.2);
      }
      h_(r) = std::min({100.0 * h0[i], h1, t_end_});
      if (!std::isfinite(h_(r)) || h_(r) <= 0.0) h_(r) = 1e-6 * t_end_;
    }
  }

  // One attempted step of every active trajectory.
  void step(const std::vector<Index>& active) {
    std::vector<Index> restart;
    for (Index r : active)
      if (fresh_[static_cast<std::size_t>(r)]) restart.push_back(r);
    evaluate_first(restart);
    std::vector<Index> alive;
    std::vector<double> stop(static_cast<std::size_t>(m_), t_end_);
    for (Index r : active) {
      if (done(r)) continue;
      const double t = t_(r);
      const double end = std::min(t_end_, sys_.next_break(first_ + r, t));
      stop[static_cast<std::size_t>(r)] = end;
      // Land exactly on the break (or the end) rather than leave a sliver for the next step.
      if (t + 1.01 * h_(r) >= end) h_(r) = end - t;
      alive.push_back(r);
    }
    const std::vector<Index> attempted = alive;
    for (int s = 1; s < 7 && !alive.empty(); ++s) {
      gather(
          alive,
          [&](Index r, RowMatrix& ys, Index i) {
            auto row = ys.row(i);
            row = y_.row(r);
            for (int j = 0; j < s; ++j)
              if (dopri::a[s][j] != 0.0) row += (h_(r) * dopri::a[s][j]) * k_[j].row(r);
            if (s == 6) ynew_.row(r) = row;
            times_(i) = t_(r) + dopri::c[s] * h_(r);
          },
          false);
      call(alive);
      std::vector<Index> next;
      for (std::size_t i = 0; i < alive.size(); ++i) {
        const Index r = alive[i];
        if (ok_[i]) {
          k_[s].row(r) = dy_.row(static_cast<Index>(i));
          next.push_back(r);
        } else {
          failed_[static_cast<std::size_t>(r)] = 1;
        }
      }
      alive.swap(next);
    }
    for (Index r : attempted) {
      if (failed_[static_cast<std::size_t>(r)]) {
        failed_[static_cast<std::size_t>(r)] = 0;
        on_failed_evaluation(r);
      } else {
        decide(r, stop[static_cast<std::size_t>(r)]);
      }
    }
  }

  void on_failed_evaluation(Index r) {
    ++stats_[r].n_rejected;
    rejected_last_[static_cast<std::size_t>(r)] = 1;
    h_(r) *= 0.25;
    if (h_(r) < min_step(r)) {
      finish(r, OdeStatus::domain_exit);
      return;
    }
    check_budget(r);
  }

  void decide(Index r, double stop) {
    double err = 0.0;
    for (Index i = 0; i < nc_; ++i) {
      double est = 0.0;
      for (int j = 0; j < 7; ++j)
        if (dopri::e[j] != 0.0) est += dopri::e[j] * k_[j](r, i);
      est *= h_(r);
      const double sc = atol_(r, i) + o_.rtol * std::max(std::abs(y_(r, i)), std::abs(ynew_(r, i)));
      const double ratio = sc > 0.0 ? est / sc : (est == 0.0 ? 0.0 : std::numeric_limits<double>::infinity());
      err += ratio * ratio;
    }
    err = nc_ > 0 ? std::sqrt(err / static_cast<double>(nc_)) : 0.0;
    if (!std::isfinite(err)) {
      on_failed_evaluation(r);
      return;
    }
    const double factor = err > 0.0 ? 0.9 * std::pow(err, -0.2) : 5.0;
    if (err <= 1.0) {
      accept(r, stop);
      if (done(r)) return;
      const double grow = rejected_last_[static_cast<std::size_t>(r)] ? 1.0 : 5.0;
      rejected_last_[static_cast<std::size_t>(r)] = 0;
      h_(r) *= std::min(grow, std::max(0.2, factor));
    } else {
      ++stats_[r].n_rejected;
      rejected_last_[static_cast<std::size_t>(r)] = 1;
      h_(r) *= std::max(0.2, factor);
      if (h_(r) < min_step(r)) {
        finish(r, OdeStatus::step_underflow);
        return;
      }
    }
    check_budget(r);
  }

  void accept(Index r, double stop) {
    const double t_old = t_(r), h = h_(r);
    const bool at_stop = t_old + h >= stop;
    const double t_new = at_stop ? stop : t_old + h;
    write_outputs(r, t_old, t_new);
    y_.row(r) = ynew_.row(r);
    k_[0].row(r) = k_[6].row(r);
    t_(r) = t_new;
    stats_[r].t = t_new;
    ++stats_[r].n_steps;
    if (t_new >= t_end_) {
      finish(r, OdeStatus::converged);
      return;
    }
    if (at_stop) fresh_[static_cast<std::size_t>(r)] = 1;  // past a break f is a new smooth function
  }

  void check_budget(Index r) {
    if (!done(r) && stats_[r].n_steps + stats_[r].n_rejected >= o_.max_steps) finish(r, OdeStatus::max_steps);
  }

  double min_step(Index r) const { return 1e-13 * std::max(t_end_, std::abs(t_(r))); }

  void finish(Index r, OdeStatus status) {
    stats_[r].status = status;
    stats_[r].t = t_(r);
    finished_[static_cast<std::size_t>(r)] = 1;
  }

  // Output times equal to 0 get the initial state.
  void write_outputs_at_start(Index r) {
    if (!dense_) return;
    auto& next = next_out_[static_cast<std::size_t>(r)];
    while (next < t_out_.size() && t_out_(next) <= 0.0) {
      dense_->block(first_ + r, next * n_, 1, n_) = y_.row(r);
      ++next;
    }
  }

  // Dense output on (t_old, t_new] from the step just accepted (k_[6] = f(y_new)).
  void write_outputs(Index r, double t_old, double t_new) {
    if (!dense_) return;
    auto& next = next_out_[static_cast<std::size_t>(r)];
    if (next >= t_out_.size() || t_out_(next) > t_new) return;
    const double h = h_(r);
    RowVector diff = ynew_.row(r) - y_.row(r);
    RowVector bspl = h * k_[0].row(r) - diff;
    RowVector r4 = diff - h * k_[6].row(r) - bspl;
    RowVector r5 = RowVector::Zero(n_);
    for (int j = 0; j < 7; ++j)
      if (dopri::d[j] != 0.0) r5 += (h * dopri::d[j]) * k_[j].row(r);
    while (next < t_out_.size() && t_out_(next) <= t_new) {
      const double theta = std::min(1.0, (t_out_(next) - t_old) / h), theta1 = 1.0 - theta;
      dense_->block(first_ + r, next * n_, 1, n_) =
          y_.row(r) + theta * (diff + theta1 * (bspl + theta * (r4 + theta1 * r5)));
      ++next;
    }
  }

  // Fills ys_ (and times_ unless `keep_times`) for the rows, one per trajectory.
  template <class Fill>
  void gather(const std::vector<Index>& rows, Fill&& fill, bool set_times = true) {
    const Index count = static_cast<Index>(rows.size());
    ys_.resize(count, n_);
    times_.resize(count);
    for (Index i = 0; i < count; ++i) {
      const Index r = rows[static_cast<std::size_t>(i)];
      fill(r, ys_, i);
      if (set_times) times_(i) = t_(r);
    }
  }

  void call(const std::vector<Index>& rows) {
    ids_.resize(rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) ids_[i] = first_ + rows[i];
    dy_.resize(static_cast<Index>(rows.size()), n_);
    ok_.assign(rows.size(), 1);
    sys_.rhs(ids_, times_, ys_, dy_, ok_);
    for (std::size_t i = 0; i < rows.size(); ++i)
      if (ok_[i] && !dy_.row(static_cast<Index>(i)).allFinite()) ok_[i] = 0;
  }

  template <class X, class Y>
  double scaled_norm(Index r, const X& x, const Y& y) const {
    double sum = 0.0;
    for (Index i = 0; i < nc_; ++i) {
      const double sc = atol_(r, i) + o_.rtol * std::abs(y(i));
      const double v = sc > 0.0 ? x(i) / sc : 0.0;
      sum += v * v;
    }
    return nc_ > 0 ? std::sqrt(sum / static_cast<double>(nc_)) : 0.0;
  }

  const System& sys_;
  Index first_, m_, n_, nc_;
  double t_end_;
  const Vector& t_out_;
  OdeOptions o_;
  RowMatrix y_, atol_, ynew_, ys_, dy_;
  RowMatrix k_[7];
  Vector t_, h_, times_;
  RowMatrix* dense_ = nullptr;
  OdeStats* stats_ = nullptr;
  std::vector<Index> next_out_, ids_;
  std::vector<char> fresh_, rejected_last_, ok_, finished_, failed_;
};

// Integrates the B rows of y (B x n, overwritten with the final states) from t = 0 to t_end, with
// absolute tolerances atol (B x n). With `dense` (resized to B x len(t_out)*n) the states at the
// increasing output times t_out in [0, t_end]. Blocks of o.block trajectories run in parallel;
// results do not depend on n_threads.
template <class System>
std::vector<OdeStats> integrate(const System& sys, RowMatrix& y, const RowMatrix& atol, double t_end,
                                const Vector& t_out, RowMatrix* dense, const OdeOptions& o, int n_threads) {
  const Index b = y.rows(), n = sys.size();
  std::vector<OdeStats> stats(static_cast<std::size_t>(b));
  if (dense) dense->setZero(b, t_out.size() * n);
  const Index block = std::max<Index>(1, o.block);
  parallel_for(block_count(b, block), n_threads, [&](Index blk) {
    const Index first = blk * block, m = std::min(block, b - first);
    DopriBlock<System> runner(sys, first, m, t_end, t_out, o);
    runner.run(y.middleRows(first, m), atol.middleRows(first, m), dense, stats.data() + first);
  });
  return stats;
}

inline const char* ode_status_name(OdeStatus s) {
  switch (s) {
    case OdeStatus::converged:
      return "converged";
    case OdeStatus::max_steps:
      return "max_steps";
    case OdeStatus::domain_exit:
      return "domain_exit";
    case OdeStatus::step_underflow:
      return "step_underflow";
  }
  return "unknown";
}

}  // namespace latentgeo
