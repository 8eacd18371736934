"""The Python layer's contracts between modules: native dispatch, one saved-file layout (and the
earlier one), validation at the entry point only, and the seed's names."""

from __future__ import annotations

from importlib import import_module

import latentgeo as lg
import numpy as np
import pytest
from conftest import PoincareHalfPlane, reference_rhvae
from latentgeo import _core, _validation
from latentgeo.metrics import native_kernel
from latentgeo.metrics.pullback import CallablePullbackMetric, PullbackMetric


def _pullback():
    rng = np.random.default_rng(4)
    return PullbackMetric([rng.normal(size=(3, 2))], [rng.normal(size=3)], ["tanh"])


# -- native dispatch ------------------------------------------------------------------------------


def test_metrics_with_a_kernel_name_it_themselves():
    rhvae, pullback = reference_rhvae(), _pullback()
    assert rhvae._native() == (rhvae._kernel, 1.0) and isinstance(rhvae._kernel, _core.RHVAEKernel)
    assert pullback._native() == (pullback._kernel, 1.0) and isinstance(pullback._kernel, _core.PullbackKernel)
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    kernel, scale = lg.ConstantMetric(a)._native()
    assert isinstance(kernel, _core.ConstantKernel) and scale == 1.0
    np.testing.assert_array_equal(kernel.A, a)


def test_scaled_metric_multiplies_the_scale_and_keeps_the_kernel():
    rhvae = reference_rhvae()
    kernel, scale = rhvae.scaled(3.0).scaled(0.5)._native()
    assert kernel is rhvae._kernel and scale == 1.5
    assert PoincareHalfPlane().scaled(2.0)._native() is None  # a base without a kernel: callback path


def test_metrics_without_a_kernel_take_the_callback_path():
    callable_pullback = PullbackMetric.from_callable(lambda z: np.tanh(z), 2)
    assert isinstance(callable_pullback, lg.Metric) and not isinstance(callable_pullback, PullbackMetric)
    assert isinstance(callable_pullback, CallablePullbackMetric)
    dense = lg.DenseMetric(lambda z: np.broadcast_to(np.eye(2), (len(z), 2, 2)), dim=2)
    for metric in (callable_pullback, dense, PoincareHalfPlane(), object()):
        assert native_kernel(metric) == (None, 1.0)
    rhvae = reference_rhvae()
    assert native_kernel(rhvae.scaled(2.0)) == (rhvae._kernel, 2.0)


def test_constant_kernel_survives_pickling():
    import pickle

    clone = pickle.loads(pickle.dumps(lg.ConstantMetric(np.diag([1.0, 4.0]))))
    np.testing.assert_array_equal(clone._native()[0].A, np.diag([1.0, 4.0]))
    # The straight line is the geodesic of a constant metric: length √(Δᵀ A Δ).
    res = lg.geodesic(clone, [0.0, 0.0], [1.0, 1.0])
    np.testing.assert_allclose(res.length, np.sqrt(5.0), rtol=1e-8)


# -- saved files ----------------------------------------------------------------------------------


def test_every_saved_object_has_the_same_header(tmp_path):
    reference_rhvae().save(tmp_path / "metric.npz")
    lg.NeuralGeodesic([0.0, 0.0], [1.0, 1.0], hidden=(4,), seed=1).save(tmp_path / "curve.npz")
    kinds = {}
    for name in ("metric", "curve"):
        with np.load(tmp_path / f"{name}.npz", allow_pickle=False) as data:
            assert data["format_version"].dtype == np.int64 and int(data["format_version"]) == 1
            kinds[name] = str(data["kind"])
    assert kinds == {"metric": "rhvae", "curve": "neural_geodesic"}
    with pytest.raises(ValueError, match=r"^kind: expected 'rhvae', got 'neural_geodesic'"):
        lg.RHVAEMetric.load(tmp_path / "curve.npz")


def test_curves_saved_in_the_earlier_layout_still_load(tmp_path):
    curve = lg.NeuralGeodesic(
        [0.1, -0.3], [1.0, 0.4], hidden=(5, 3), activation="softplus", seed=2, min_span=1e-4, min_amplitude=0.3
    )
    np.savez(
        tmp_path / "old.npz",
        format=np.array("latentgeo.NeuralGeodesic/1"),
        params=curve.get_params(),
        z_start=curve.z_start,
        z_end=curve.z_end,
        hidden=np.array(curve.hidden, dtype=np.int64),
        activation=np.array(curve.activation),
        min_span=np.array(curve.min_span),
        min_amplitude=np.array(curve.min_amplitude),
    )
    loaded = lg.NeuralGeodesic.load(tmp_path / "old.npz")
    t = np.linspace(0.0, 1.0, 11)
    np.testing.assert_array_equal(loaded(t), curve(t))
    assert (loaded.hidden, loaded.activation, loaded.min_span, loaded.min_amplitude) == ((5, 3), "softplus", 1e-4, 0.3)
    with pytest.raises(ValueError, match=r"^format_version: missing from"):  # not a metric file
        lg.RHVAEMetric.load(tmp_path / "old.npz")


def test_metrics_saved_with_explicit_header_keys_load(tmp_path):
    metric = reference_rhvae()
    np.savez(
        tmp_path / "old.npz",
        format_version=np.int64(1),
        kind=np.str_("rhvae"),
        centroids=metric.centroids,
        M=metric.M,
        temperature=np.float64(metric.temperature),
        regularization=np.float64(metric.regularization),
        normalization=np.str_(metric.normalization),
    )
    z = np.array([[0.3, -0.2], [1.0, 0.5]])
    np.testing.assert_array_equal(lg.RHVAEMetric.load(tmp_path / "old.npz")(z), metric(z))


def test_a_newer_curve_format_is_refused(tmp_path):
    curve = lg.NeuralGeodesic([0.0, 0.0], [1.0, 1.0], hidden=(3,), seed=1)
    curve.save(tmp_path / "curve.npz")
    with np.load(tmp_path / "curve.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["format_version"] = np.int64(2)
    np.savez(tmp_path / "newer.npz", **arrays)
    with pytest.raises(ValueError, match=r"^path: .*unsupported format_version 2"):
        lg.NeuralGeodesic.load(tmp_path / "newer.npz")


# -- validation once ------------------------------------------------------------------------------


class _Counting:
    def __init__(self, monkeypatch, modules):
        self.calls = 0
        original = _validation.check_metric

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        for module in modules:
            monkeypatch.setattr(module, "check_metric", counted)


def _modules_using_check_metric():
    names = ("solvers.api", "solvers.options", "curves", "solvers.distances", "metrics.base", "solvers.neural.loss")
    return [import_module(f"latentgeo.{name}") for name in names]


@pytest.mark.parametrize("method, options", [("discrete", {}), ("neural", {"n_steps": 3, "hidden": (4,)})])
def test_geodesic_checks_the_metric_once(monkeypatch, method, options):
    counter = _Counting(monkeypatch, _modules_using_check_metric())
    lg.geodesic(reference_rhvae(), [0.0, 0.0], [1.0, 0.5], method=method, progress=False, **options)
    assert counter.calls == 1


def test_neural_fit_checks_the_metric_once(monkeypatch):
    counter = _Counting(monkeypatch, _modules_using_check_metric())
    lg.neural_geodesic(reference_rhvae(), [0.0, 0.0], [1.0, 0.5], hidden=(4,), n_steps=5, progress=False)
    assert counter.calls == 1


# -- names ----------------------------------------------------------------------------------------


def test_documented_names_and_the_seeds_aliases():
    assert lg.fit is lg.fit_neural_geodesic and lg.loss is lg.neural_geodesic_loss
    assert lg.train is lg.train_neural_geodesic
    assert {"fit_neural_geodesic", "neural_geodesic_loss", "train_neural_geodesic"} <= set(lg.__all__)
    assert not {"fit", "loss", "train"} & set(lg.__all__)
    from latentgeo.solvers.neural import NeuralGeodesic, fit, loss, loss_and_grad, train

    assert (NeuralGeodesic, fit, loss, train) == (lg.NeuralGeodesic, lg.fit, lg.loss, lg.train)
    assert callable(loss_and_grad) and lg.curves.check_times is _validation.check_times
