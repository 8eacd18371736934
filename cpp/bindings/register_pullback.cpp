// Thin bindings of the pullback kernel: parse the layer description, check shapes, release the GIL.
#include <pybind11/eigen.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "latentgeo/metrics/pullback.hpp"

namespace py = pybind11;
using latentgeo::ConstRowMatrixRef;
using latentgeo::Index;
using latentgeo::PullbackKernel;
using latentgeo::PullbackOp;
using latentgeo::PullbackSequence;
using latentgeo::RowMatrix;
using latentgeo::Vector;

namespace latentgeo_bindings {

namespace {

// A sequence is a list of ("dense", W (out, in), b (out,)) and ("act", name, param) tuples.
PullbackSequence parse_sequence(const py::list& ops, const std::string& name) {
  PullbackSequence seq;
  for (const auto& item : ops) {
    const auto op = item.cast<py::tuple>();
    require(op.size() == 3, name + ": each step must be a 3-tuple");
    const auto kind = op[0].cast<std::string>();
    if (kind == "dense") {
      seq.push_back(PullbackOp::make_dense(op[1].cast<Eigen::MatrixXd>(), op[2].cast<Vector>()));
    } else if (kind == "act") {
      seq.push_back(
          PullbackOp::make_activation(latentgeo::parse_activation(op[1].cast<std::string>()), op[2].cast<double>()));
    } else {
      throw std::invalid_argument(name + ": unknown step kind '" + kind + "'");
    }
  }
  return seq;
}

PullbackKernel make_kernel(Index dim, const py::list& trunk, const py::list& heads) {
  std::vector<PullbackSequence> parsed;
  for (std::size_t h = 0; h < heads.size(); ++h)
    parsed.push_back(parse_sequence(heads[h].cast<py::list>(), "head " + std::to_string(h)));
  return PullbackKernel(dim, parse_sequence(trunk, "trunk"), std::move(parsed));
}

// The decoder's outputs (N, output_dim).
RowMatrix evaluate(const PullbackKernel& k, const ConstRowMatrixRef& z, int n_threads) {
  require_cols(z, k.dim(), "z");
  RowMatrix values(z.rows(), k.output_dim());
  RowMatrix no_jacobian(0, k.output_dim() * k.dim());  // the kernel's convention: an empty output is not computed
  run_interruptible([&] { k.evaluate(z, values, no_jacobian, n_threads); });  // GIL released
  return values;
}

// The decoder's Jacobians (N, output_dim * d), row-major per point.
RowMatrix jacobian(const PullbackKernel& k, const ConstRowMatrixRef& z, int n_threads) {
  require_cols(z, k.dim(), "z");
  RowMatrix values(z.rows(), k.output_dim());
  RowMatrix jac(z.rows(), k.output_dim() * k.dim());
  run_interruptible([&] { k.evaluate(z, values, jac, n_threads); });  // GIL released
  return jac;
}

RowMatrix pullback_metric(const PullbackKernel& k, const ConstRowMatrixRef& z, int n_threads) {
  require_cols(z, k.dim(), "z");
  RowMatrix out(z.rows(), k.dim() * k.dim());
  run_interruptible([&] { k.metric(z, out, n_threads); });  // GIL released
  return out;
}

RowMatrix pullback_derivative(const PullbackKernel& k, const ConstRowMatrixRef& z, int n_threads) {
  require_cols(z, k.dim(), "z");
  const Index d = k.dim();
  RowMatrix out(z.rows(), d * d * d);
  run_interruptible([&] { k.derivative(z, out, n_threads); });  // GIL released
  return out;
}

// The energies of P decoded polylines stacked in z (counts[p] nodes for curve p) and their
// gradients (N, d), as PullbackMetric.decoded_energies documents.
py::tuple decoded_energies(const PullbackKernel& k, const ConstRowMatrixRef& z, const std::vector<Index>& counts) {
  require_cols(z, k.dim(), "z");
  Index total = 0;
  for (const Index c : counts) {
    require(c >= 2, "counts: expected integers >= 2 (points per curve)");
    total += c;
  }
  require(total == z.rows(), "counts: must sum to the rows of z");
  Vector energies(static_cast<Index>(counts.size()));
  RowMatrix grad(z.rows(), k.dim());
  run_interruptible([&] {  // GIL released
    Index row = 0;
    for (std::size_t p = 0; p < counts.size(); ++p) {
      RowMatrix g;
      energies(static_cast<Index>(p)) = k.decoded_energy(z.middleRows(row, counts[p]), g);
      grad.middleRows(row, counts[p]) = g;
      row += counts[p];
    }
  });
  return py::make_tuple(energies, grad);
}

}  // namespace

void register_pullback(py::module_& m) {
  py::class_<PullbackKernel>(m, "PullbackKernel")
      .def(py::init(&make_kernel), py::arg("dim"), py::arg("trunk"), py::arg("heads"))
      .def_property_readonly("dim", &PullbackKernel::dim)
      .def_property_readonly("output_dim", &PullbackKernel::output_dim)
      .def_property_readonly("head_dims", &PullbackKernel::head_dims)
      .def("evaluate", &evaluate, py::arg("z"), py::arg("n_threads"))
      .def("jacobian", &jacobian, py::arg("z"), py::arg("n_threads"))
      .def("metric", &pullback_metric, py::arg("z"), py::arg("n_threads"))
      .def("derivative", &pullback_derivative, py::arg("z"), py::arg("n_threads"))
      .def("decoded_energies", &decoded_energies, py::arg("z"), py::arg("counts"))
      .def("quadratic_form", &quadratic_form<PullbackKernel>, py::arg("z"), py::arg("v"), py::arg("grad"),
           py::arg("n_threads"));
}

}  // namespace latentgeo_bindings
