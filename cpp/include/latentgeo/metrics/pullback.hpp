// The pullback metric of an MLP decoder f: R^d -> R^D,  G(z) = sum_h J_h(z)^T J_h(z).
//
// The decoder is a trunk (a sequence of dense layers and elementwise activations, possibly
// empty) followed by one or more heads (sequences again); G sums J^T J over the heads. A
// Gaussian decoder's log-sigma head ends with an `exp` activation, so that its Jacobian is
// J_sigma = diag(sigma) J_logsigma. A Bernoulli decoder's mean head ends with a `bernoulli`
// activation on its logits l: s(l) = 2 arcsin(sqrt(sigmoid(l))) = 2 atan(exp(l/2)), whose
// derivative s' = 1/(2 cosh(l/2)) has s'^2 = p(1-p) (p = sigmoid(l)); so J_s^T J_s is the
// Fisher-Rao pullback J_p^T diag(1/(p(1-p))) J_p = J_l^T diag(p(1-p)) J_l, stable for saturated p.
//
// Everything but decoded_energy (reverse mode, see there) is forward mode, one block of B points
// at a time. Along the network we carry the
// layer values h (n x B), the Jacobians J = dh/dz (n x B*d, column b*d+k), a set of r
// directional derivatives U = J V (n x B*r) and their Jacobians S = dU/dz (n x B*r*d, column
// (b*r+s)*d+k). Through an activation y = phi(a):
//   J_y = phi'(a) J_a,  U_y = phi'(a) U_a,  S_y = phi''(a) U_a (x) J_a + phi'(a) S_a.
// quadratic_form uses r = 1 (V = v, so S is the directional second derivative and
// dq/dz = 2 S^T (J v) without forming dG); derivative uses V = I (r = d, U = J).
#pragma once

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "latentgeo/core/common.hpp"

namespace latentgeo {

enum class Activation { identity, tanh, relu, softplus, sigmoid, elu, exp, bernoulli };

inline Activation parse_activation(const std::string& name) {
  if (name == "identity") return Activation::identity;
  if (name == "tanh") return Activation::tanh;
  if (name == "relu") return Activation::relu;
  if (name == "softplus") return Activation::softplus;
  if (name == "sigmoid") return Activation::sigmoid;
  if (name == "elu") return Activation::elu;
  if (name == "exp") return Activation::exp;
  if (name == "bernoulli") return Activation::bernoulli;
  throw std::invalid_argument("activations: unknown activation '" + name +
                              "' (expected identity, tanh, relu, softplus, sigmoid, elu, exp or bernoulli)");
}

// One step of a sequence: a dense layer a = W h + b (W: out x in), or an activation with an
// optional parameter (softplus: beta, log(1 + exp(beta a)) / beta; elu: alpha).
struct PullbackOp {
  bool dense = false;
  Eigen::MatrixXd weight;
  Vector bias;
  Activation activation = Activation::identity;
  double param = 1.0;

  static PullbackOp make_dense(Eigen::MatrixXd w, Vector b) {
    PullbackOp op;
    op.dense = true;
    op.weight = std::move(w);
    op.bias = std::move(b);
    return op;
  }
  static PullbackOp make_activation(Activation a, double param) {
    PullbackOp op;
    op.activation = a;
    op.param = param;
    return op;
  }
};

using PullbackSequence = std::vector<PullbackOp>;

// phi(a), phi'(a) and phi''(a), elementwise, written into value (in place), d1 and d2.
inline void activate(Activation act, double param, Eigen::MatrixXd& value, Eigen::MatrixXd& d1, Eigen::MatrixXd& d2) {
  auto a = value.array();
  d1.resize(value.rows(), value.cols());
  d2.resize(value.rows(), value.cols());
  auto p1 = d1.array();
  auto p2 = d2.array();
  switch (act) {
    case Activation::identity:
      p1.setOnes();
      p2.setZero();
      break;
    case Activation::tanh:
      a = a.tanh();
      p1 = 1.0 - a.square();
      p2 = -2.0 * a * p1;
      break;
    case Activation::relu:
      p1 = (a > 0.0).cast<double>();
      p2.setZero();
      a = a.max(0.0);
      break;
    case Activation::softplus: {
      const double beta = param;
      p1 = 1.0 / (1.0 + (-beta * a).exp());  // sigmoid(beta a)
      p2 = beta * p1 * (1.0 - p1);
      // log(1 + e^x) = max(x, 0) + log1p(e^-|x|), stable for large |x|.
      a = ((beta * a).max(0.0) + (-(beta * a).abs()).exp().log1p()) / beta;
      break;
    }
    case Activation::sigmoid:
      a = 1.0 / (1.0 + (-a).exp());
      p1 = a * (1.0 - a);
      p2 = p1 * (1.0 - 2.0 * a);
      break;
    case Activation::elu: {
      const double alpha = param;
      const auto pos = (a > 0.0).cast<double>();
      const Eigen::ArrayXXd e = alpha * a.min(0.0).exp();
      p1 = pos + (1.0 - pos) * e;
      p2 = (1.0 - pos) * e;
      a = pos * a + (1.0 - pos) * (e - alpha);
      break;
    }
    case Activation::exp:
      a = a.exp();
      p1 = a;
      p2 = a;
      break;
    case Activation::bernoulli: {  // s(l) = 2 atan(e^(l/2)) (accurate for tiny p), s' = sech(l/2)/2
      const Eigen::ArrayXXd sech = 1.0 / (0.5 * a).cosh();  // cosh overflows to inf: sech -> 0
      p1 = 0.5 * sech;
      p2 = -0.25 * sech * (0.5 * a).tanh();
      a = 2.0 * (0.5 * a).exp().atan();
      break;
    }
  }
}

class PullbackKernel {
 public:
  PullbackKernel(Index dim, PullbackSequence trunk, std::vector<PullbackSequence> heads)
      : d_(dim), trunk_(std::move(trunk)), heads_(std::move(heads)) {
    if (d_ < 1) throw std::invalid_argument("dim: must be >= 1");
    if (heads_.empty()) throw std::invalid_argument("heads: need at least one output head");
    const Index width = check_sequence(trunk_, d_, "trunk");
    for (std::size_t h = 0; h < heads_.size(); ++h) {
      const Index out = check_sequence(heads_[h], width, "head " + std::to_string(h));
      head_dims_.push_back(out);
      out_dim_ += out;
    }
  }

  // jet() has analytic derivatives of G up to this order (the connection differentiates Gamma).
  static constexpr int kJetOrder = 1;
  Index dim() const { return d_; }
  Index output_dim() const { return out_dim_; }

  // The connection's jet (RHVAEKernel::jet) up to first order: G and dG; ok = 0 where they are
  // not finite (positive definiteness is the caller's test).
  void jet(const ConstRowMatrixRef& z, int order, RowMatrixRef g, RowMatrixRef dg, RowMatrixRef /*d2g*/,
           std::vector<char>& ok, int n_threads) const {
    if (order > kJetOrder) throw std::invalid_argument("order: the pullback kernel's jet stops at dG");
    metric(z, g, n_threads);
    if (order >= 1) derivative(z, dg, n_threads);
    ok.assign(static_cast<std::size_t>(z.rows()), 1);
    for (Index r = 0; r < z.rows(); ++r)
      ok[static_cast<std::size_t>(r)] = g.row(r).allFinite() && (order < 1 || dg.row(r).allFinite());
  }
  const std::vector<Index>& head_dims() const { return head_dims_; }

  // Every method raises MetricDomainError naming the first point where its output is NaN or Inf
  // (the decoder overflows there, e.g. exp of a large activation), never returns them.

  // Decoder outputs (N x D, heads concatenated) and, when jac is non-empty, the Jacobians
  // (N x D*d, row-major D x d per point).
  void evaluate(const ConstRowMatrixRef& z, RowMatrixRef values, RowMatrixRef jac, int n_threads) const {
    const bool want_jac = jac.rows() > 0;
    run(z, nullptr, want_jac ? Mode::jacobian : Mode::value, n_threads,
        [&](const State& st, Index h, Index n0, Index nb, Index col) {
          const Index dh = head_dims_[h];
          for (Index b = 0; b < nb; ++b) {
            values.block(n0 + b, col, 1, dh) = st.h.col(b).transpose();
            if (want_jac)
              for (Index i = 0; i < dh; ++i) jac.block(n0 + b, (col + i) * d_, 1, d_) = st.J.block(i, b * d_, 1, d_);
          }
        });
    require_finite_rows(values, z, "decoder", kOverflow);
    require_finite_rows(jac, z, "jacobian", kOverflow);
  }

  // out: N x d*d, G row-major per point.
  void metric(const ConstRowMatrixRef& z, RowMatrixRef out, int n_threads) const {
    out.setZero();
    run(z, nullptr, Mode::jacobian, n_threads, [&](const State& st, Index, Index n0, Index nb, Index) {
      for (Index b = 0; b < nb; ++b) {
        const auto jb = st.J.middleCols(b * d_, d_);
        const Eigen::MatrixXd g = jb.transpose() * jb;
        for (Index a = 0; a < d_; ++a) out.block(n0 + b, a * d_, 1, d_) += g.row(a);
      }
    });
    require_finite_rows(out, z, "metric", kOverflow);
  }

  // The solvers' G (the preconditioner's blocks): J^T J from one forward-mode Jacobian per point,
  // not d quadratic forms with their gradients (which would carry d(Jv)/dz for every column).
  void metric_tensors(const ConstRowMatrixRef& z, RowMatrix& g) const {
    g.resize(z.rows(), d_ * d_);
    metric(z, g, 1);
  }

  // out: N x d^3 with layout [a, c, k] = dG_ac/dz_k.
  void derivative(const ConstRowMatrixRef& z, RowMatrixRef out, int n_threads) const {
    out.setZero();
    run(z, nullptr, Mode::full_second, n_threads, [&](const State& st, Index, Index n0, Index nb, Index) {
      const Index dd = d_ * d_;
      for (Index b = 0; b < nb; ++b) {
        // m(c, a*d+k) = sum_i J_ic d^2 f_i / dz_a dz_k;  dG_ac/dz_k = m(c, (a,k)) + m(a, (c,k)).
        const Eigen::MatrixXd m = st.J.middleCols(b * d_, d_).transpose() * st.S.middleCols(b * dd, dd);
        for (Index a = 0; a < d_; ++a)
          for (Index c = 0; c < d_; ++c)
            for (Index k = 0; k < d_; ++k) out(n0 + b, (a * d_ + c) * d_ + k) += m(c, a * d_ + k) + m(a, c * d_ + k);
      }
    });
    require_finite_rows(out, z, "derivative", kOverflow);
  }

  // The energy n sum_i |e(x_{i+1}) - e(x_i)|^2 of the decoded polyline of the nodes (n + 1 x d),
  // e the heads' outputs (G = J^T J), and its gradient (grad: n + 1 x d) by reverse mode: one
  // forward pass over all nodes that keeps phi' of every activation, then dE/de pulled back
  // through each head and the trunk (g <- W^T g, g <- phi' g). Its cost is that of two passes of
  // the decoder, whatever d (forward mode would carry d tangents). One thread: the solver runs
  // pairs in parallel.
  double decoded_energy(const ConstRowMatrixRef& nodes, RowMatrix& grad) const {
    const Index m = nodes.rows();
    Eigen::MatrixXd trunk_out = nodes.transpose();  // width x m, a column per node
    std::vector<Eigen::MatrixXd> trunk_tape;
    forward_taped(trunk_, trunk_out, trunk_tape);
    std::vector<Eigen::MatrixXd> outputs(heads_.size());
    std::vector<std::vector<Eigen::MatrixXd>> head_tapes(heads_.size());
    RowMatrix e(m, out_dim_);
    for (std::size_t h = 0, col = 0; h < heads_.size(); col += static_cast<std::size_t>(head_dims_[h]), ++h) {
      outputs[h] = trunk_out;
      forward_taped(heads_[h], outputs[h], head_tapes[h]);
      e.middleCols(static_cast<Index>(col), head_dims_[h]) = outputs[h].transpose();
    }
    require_finite_rows(e, nodes, "decoder", kOverflow);
    const double segments = static_cast<double>(m - 1);
    double energy = 0.0;
    Eigen::MatrixXd pulled = Eigen::MatrixXd::Zero(trunk_out.rows(), m);  // dE/d(trunk output)
    for (std::size_t h = 0; h < heads_.size(); ++h) {
      const Eigen::MatrixXd chords = outputs[h].rightCols(m - 1) - outputs[h].leftCols(m - 1);
      energy += chords.squaredNorm();
      Eigen::MatrixXd pull = Eigen::MatrixXd::Zero(chords.rows(), m);  // dE/de_h
      pull.rightCols(m - 1) += 2.0 * segments * chords;
      pull.leftCols(m - 1) -= 2.0 * segments * chords;
      backward_taped(heads_[h], head_tapes[h], pull);
      pulled += pull;
    }
    backward_taped(trunk_, trunk_tape, pulled);
    grad = pulled.transpose();
    require_finite_rows(grad, nodes, "decoded energy gradient", kOverflow);
    return segments * energy;
  }

  // q_n = v_n^T G(z_n) v_n = sum_h |J_h v|^2; with non-empty dqdz/dqdv also
  //   dq/dv = 2 sum_h J_h^T (J_h v),  dq/dz = 2 sum_h (d(J_h v)/dz)^T (J_h v).
  void quadratic_form(const ConstRowMatrixRef& z, const ConstRowMatrixRef& v, VectorRef q, RowMatrixRef dqdz,
                      RowMatrixRef dqdv, int n_threads) const {
    const bool want_grad = dqdz.rows() > 0;
    q.setZero();
    if (want_grad) {
      dqdz.setZero();
      dqdv.setZero();
    }
    run(z, &v, want_grad ? Mode::directional_second : Mode::directional, n_threads,
        [&](const State& st, Index, Index n0, Index nb, Index) {
          for (Index b = 0; b < nb; ++b) {
            const auto u = st.U.col(b);
            q(n0 + b) += u.squaredNorm();
            if (!want_grad) continue;
            dqdv.row(n0 + b) += 2.0 * (st.J.middleCols(b * d_, d_).transpose() * u).transpose();
            dqdz.row(n0 + b) += 2.0 * (st.S.middleCols(b * d_, d_).transpose() * u).transpose();
          }
        });
    require_finite_rows(q, z, "quadratic_form", kOverflow);
    require_finite_rows(dqdz, z, "quadratic_form gradient", kOverflow);
    require_finite_rows(dqdv, z, "quadratic_form gradient", kOverflow);
  }

 private:
  // value: h only. directional: h, U = J v. jacobian: h, J. directional_second: h, J, U, S (r = 1).
  // full_second: h, J, S with U = J (r = d).
  enum class Mode { value, directional, jacobian, directional_second, full_second };
  static constexpr const char* kOverflow = "the decoder overflows, e.g. in an exp activation";

  struct State {
    Eigen::MatrixXd h, J, U, S, d1, d2, tmp;
  };

  static bool has_jacobian(Mode m) {
    return m == Mode::jacobian || m == Mode::directional_second || m == Mode::full_second;
  }
  static bool has_directional(Mode m) { return m == Mode::directional || m == Mode::directional_second; }
  static bool has_second(Mode m) { return m == Mode::directional_second || m == Mode::full_second; }

  static Index check_sequence(const PullbackSequence& seq, Index width, const std::string& name) {
    for (const auto& op : seq) {
      if (!op.dense) continue;
      if (op.weight.cols() != width)
        throw std::invalid_argument(name + ": a dense layer expects " + std::to_string(op.weight.cols()) +
                                    " inputs after a layer of width " + std::to_string(width));
      if (op.bias.size() != op.weight.rows())
        throw std::invalid_argument(name + ": bias size does not match the weight's rows");
      width = op.weight.rows();
    }
    return width;
  }

  Index max_width() const {
    Index w = d_;
    auto scan = [&](const PullbackSequence& s) {
      for (const auto& op : s)
        if (op.dense) w = std::max<Index>(w, op.weight.rows());
    };
    scan(trunk_);
    for (const auto& s : heads_) scan(s);
    return w;
  }

  // Points per block: keep the largest carried array near 2^18 doubles (2 MB) per thread.
  Index block_size(Mode mode) const {
    const Index r = mode == Mode::full_second ? d_ : 1;
    const Index per_point = max_width() * (1 + d_ + r + (has_second(mode) ? r * d_ : 0));
    return std::max<Index>(1, std::min<Index>(64, (Index(1) << 18) / std::max<Index>(per_point, 1)));
  }

  // Seeds the state of a block: h = z, J = I, U = v, S = 0.
  void seed(const ConstRowMatrixRef& z, const ConstRowMatrixRef* v, Mode mode, Index n0, Index nb, State& st) const {
    st.h = z.middleRows(n0, nb).transpose();
    if (has_jacobian(mode)) {
      st.J.setZero(d_, nb * d_);
      for (Index b = 0; b < nb; ++b) st.J.middleCols(b * d_, d_).setIdentity();
    }
    if (has_directional(mode)) st.U = v->middleRows(n0, nb).transpose();
    if (has_second(mode)) {
      const Index r = mode == Mode::full_second ? d_ : 1;
      st.S.setZero(d_, nb * r * d_);
    }
  }

  void apply(const PullbackOp& op, Mode mode, Index nb, State& st) const {
    if (op.dense) {
      st.tmp.noalias() = op.weight * st.h;
      st.h.swap(st.tmp);
      st.h.colwise() += op.bias;
      auto mult = [&](Eigen::MatrixXd& m) {
        st.tmp.noalias() = op.weight * m;
        m.swap(st.tmp);
      };
      if (has_jacobian(mode)) mult(st.J);
      if (has_directional(mode)) mult(st.U);
      if (has_second(mode)) mult(st.S);
      return;
    }
    if (op.activation == Activation::identity) return;
    activate(op.activation, op.param, st.h, st.d1, st.d2);
    if (has_second(mode)) {
      // S_y = phi'' U_a (x) J_a + phi' S_a, using the pre-activation U_a and J_a.
      const bool full = mode == Mode::full_second;
      const Index r = full ? d_ : 1;
      for (Index b = 0; b < nb; ++b)
        for (Index s = 0; s < r; ++s) {
          const auto u = full ? st.J.col(b * d_ + s) : st.U.col(b);
          auto block = st.S.middleCols((b * r + s) * d_, d_);
          block.array().colwise() *= st.d1.col(b).array();
          block.array() += (st.J.middleCols(b * d_, d_).array().colwise() * (st.d2.col(b).array() * u.array()));
        }
    }
    if (has_directional(mode)) st.U.array() *= st.d1.array();
    if (has_jacobian(mode))
      for (Index b = 0; b < nb; ++b) st.J.middleCols(b * d_, d_).array().colwise() *= st.d1.col(b).array();
  }

  // Applies a sequence to the columns of h in place, keeping phi' of each activation (the tape of
  // backward_taped; identity activations keep nothing).
  static void forward_taped(const PullbackSequence& seq, Eigen::MatrixXd& h, std::vector<Eigen::MatrixXd>& tape) {
    Eigen::MatrixXd tmp, d2;
    for (const auto& op : seq) {
      if (op.dense) {
        tmp.noalias() = op.weight * h;
        h.swap(tmp);
        h.colwise() += op.bias;
      } else if (op.activation != Activation::identity) {
        tape.emplace_back();
        activate(op.activation, op.param, h, tape.back(), d2);
      }
    }
  }

  // g <- (d seq / d input)^T g for the columns of g, walking the sequence and its tape backwards.
  static void backward_taped(const PullbackSequence& seq, const std::vector<Eigen::MatrixXd>& tape,
                             Eigen::MatrixXd& g) {
    Eigen::MatrixXd tmp;
    auto d1 = tape.rbegin();
    for (auto op = seq.rbegin(); op != seq.rend(); ++op) {
      if (op->dense) {
        tmp.noalias() = op->weight.transpose() * g;
        g.swap(tmp);
      } else if (op->activation != Activation::identity) {
        g.array() *= (d1++)->array();
      }
    }
  }

  // Runs the trunk, then each head, over blocks of points; emit(state, head, n0, nb, output column).
  template <class Emit>
  void run(const ConstRowMatrixRef& z, const ConstRowMatrixRef* v, Mode mode, int n_threads, Emit&& emit) const {
    const Index n = z.rows(), block = block_size(mode);
    const Index blocks = block_count(n, block);
    parallel_for(blocks, n_threads, [&](Index blk) {
      const Index n0 = blk * block, nb = std::min(block, n - n0);
      State trunk_state, st;
      seed(z, v, mode, n0, nb, trunk_state);
      for (const auto& op : trunk_) apply(op, mode, nb, trunk_state);
      Index col = 0;
      for (std::size_t h = 0; h < heads_.size(); ++h) {
        st = trunk_state;
        for (const auto& op : heads_[h]) apply(op, mode, nb, st);
        emit(st, static_cast<Index>(h), n0, nb, col);
        col += head_dims_[h];
      }
    });
  }

  Index d_;
  PullbackSequence trunk_;
  std::vector<PullbackSequence> heads_;
  std::vector<Index> head_dims_;
  Index out_dim_ = 0;
};

}  // namespace latentgeo
