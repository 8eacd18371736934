"""Pullback metrics of decoders: G(z) = J(z)ᵀ J(z).

For a deterministic decoder f: ℝ^d → ℝ^D the pullback of the Euclidean metric is G = JᵀJ with
J = ∂f/∂z (D × d). For a Gaussian decoder with a mean head μ(z) and a log-σ head log σ(z) it is
G = J_μᵀJ_μ + J_σᵀJ_σ with J_σ = diag(σ) J_logσ (the Jacobian of σ = exp(log σ)).

:class:`PullbackMetric` handles MLP decoders (dense layers and the activations ``identity``,
``tanh``, ``relu``, ``softplus``, ``sigmoid``, ``elu`` and ``exp``) in the C++ core: Jacobians,
∂G/∂z and the gradients of vᵀGv by forward-mode differentiation, batched over points and
parallel with OpenMP. It can be built from weight/bias lists or a ``torch.nn.Sequential``.
:meth:`PullbackMetric.from_torch` sends any other torch module (convolutional decoders, ...) to
:class:`~latentgeo.torch_pullback.TorchPullbackMetric`: exact, by forward-mode AD in torch.
:meth:`PullbackMetric.from_callable` wraps any Python decoder with numerical (central difference)
Jacobians: it is slow and approximate (relative errors ~1e-9 in G, ~1e-5 in ∂G/∂z).

For a Bernoulli decoder (``likelihood="bernoulli"``, outputs p ∈ (0, 1)) the metric is the
Fisher–Rao pullback G = J_pᵀ diag(1/(p(1−p))) J_p (Arvanitidis et al. 2022, "Pulling back
information geometry"); with logits ℓ (p = sigmoid(ℓ), dp/dℓ = p(1−p)) it is
G = J_ℓᵀ diag(p(1−p)) J_ℓ, the Euclidean pullback of s = 2 arcsin √p.

A decoder is a *trunk* (applied to z; may be empty) followed by one or two *heads* applied to
the trunk's output: the mean head and, optionally, the log-σ head. Separate mean and log-σ
networks are an empty trunk with two heads; a shared body is a trunk.
"""

from __future__ import annotations

import json
import os
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from ... import _core
from ..._validation import as_float_array, check_counts, check_int, check_positive, check_threads
from ..base import DECODED_ENERGIES_DOC, Metric
from ..dense import DenseMetric
from ..support import (
    FrozenState,
    ReadOnly,
    central_differences,
    check_finite_rows,
    frozen,
    polyline_energies,
    real_output,
    unsingle,
)

__all__ = ["PullbackMetric", "CallablePullbackMetric", "ACTIVATIONS", "LIKELIHOODS"]

#: Supported activation names; ``softplus`` takes a parameter β and ``elu`` a parameter α
#: (give ``("softplus", beta)``), both 1 by default.
ACTIVATIONS = ("identity", "tanh", "relu", "softplus", "sigmoid", "elu", "exp")

Step = Tuple  # ("dense", W (out, in), b (out,)) or ("act", name, param)


def _activation_step(spec, name: str) -> Step:
    if isinstance(spec, (tuple, list)) and len(spec) == 2:
        act, param = spec
    else:
        act, param = spec, 1.0
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise ValueError(f"{name}: unknown activation {spec!r}; expected one of {list(ACTIVATIONS)}")
    return ("act", act, check_positive(param, name))


def _mlp_steps(weights, biases, activations, prefix: str = "") -> List[Step]:
    """Steps of a dense network given as lists: layer i is act_i(W_i h + b_i), W_i of shape (out, in).

    Error messages name the arrays ``{prefix}weights[i]`` etc. (prefix "" for the mean network,
    "log_sigma." or "trunk." for the others).
    """
    label = prefix.rstrip(".") or "weights"
    if not all(isinstance(x, (list, tuple)) for x in (weights, biases, activations)):
        raise ValueError(f"{label}: weights, biases and activations must be lists")
    if not weights or not (len(weights) == len(biases) == len(activations)):
        raise ValueError(
            f"{label}: need as many weights, biases and activations (at least one layer), got "
            f"{len(weights)}, {len(biases)}, {len(activations)}"
        )
    steps: List[Step] = []
    for i, (w, b, act) in enumerate(zip(weights, biases, activations)):
        w = as_float_array(w, f"{prefix}weights[{i}]", ndim=2)
        b = as_float_array(b, f"{prefix}biases[{i}]", ndim=1)
        if b.shape[0] != w.shape[0]:
            raise ValueError(
                f"{prefix}biases[{i}]: expected length {w.shape[0]} (rows of weights[{i}]), got {b.shape[0]}"
            )
        steps += [("dense", w, b), _activation_step(act, f"{prefix}activations[{i}]")]
    return steps


def _check_widths(steps: Sequence[Step], width: int, name: str) -> int:
    """Output width of a sequence fed with `width` inputs; ValueError on mismatched layers."""
    for step in steps:
        if step[0] == "dense":
            if step[1].shape[1] != width:
                raise ValueError(f"{name}: a layer expects {step[1].shape[1]} inputs but receives {width}")
            width = step[1].shape[0]
    return width


def _input_width(steps: Sequence[Step]) -> Optional[int]:
    return next((s[1].shape[1] for s in steps if s[0] == "dense"), None)


_SIMPLE_TORCH_ACTIVATIONS = {"Tanh": "tanh", "ReLU": "relu", "Sigmoid": "sigmoid", "Identity": "identity"}
_NATIVE_TORCH_LAYERS = ("Linear", "Softplus", "ELU", *_SIMPLE_TORCH_ACTIVATIONS)


def _import_nn():
    try:
        from torch import nn
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError("importing a torch decoder needs torch: pip install latentgeo[torch]") from exc
    return nn


def _is_native_torch(module) -> bool:
    """True for a (nested) Sequential, or a single layer, made only of layers the C++ core runs."""
    nn = _import_nn()
    if isinstance(module, nn.Sequential):
        return all(_is_native_torch(m) for m in module)
    return type(module).__name__ in _NATIVE_TORCH_LAYERS and type(module).__module__.startswith("torch.nn")


def _torch_steps(module, name: str) -> List[Step]:
    """Steps of a torch ``nn.Sequential`` (nested allowed) of Linear and supported activations."""
    nn = _import_nn()

    def to_numpy(t):
        return t.detach().cpu().double().numpy()

    modules = list(module) if isinstance(module, nn.Sequential) else [module]
    steps: List[Step] = []
    for i, m in enumerate(modules):
        if isinstance(m, nn.Sequential):
            steps += _torch_steps(m, f"{name}[{i}]")
        elif isinstance(m, nn.Linear):
            bias = to_numpy(m.bias) if m.bias is not None else np.zeros(m.out_features)
            steps.append(
                (
                    "dense",
                    as_float_array(to_numpy(m.weight), f"{name}[{i}].weight", ndim=2),
                    as_float_array(bias, f"{name}[{i}].bias", ndim=1),
                )
            )
        elif type(m).__name__ in _SIMPLE_TORCH_ACTIVATIONS:
            steps.append(("act", _SIMPLE_TORCH_ACTIVATIONS[type(m).__name__], 1.0))
        elif isinstance(m, nn.Softplus):
            # torch switches to the identity above `threshold` (error < e^-threshold): ignored.
            steps.append(_activation_step(("softplus", float(m.beta)), f"{name}[{i}]"))
        elif isinstance(m, nn.ELU):
            steps.append(_activation_step(("elu", float(m.alpha)), f"{name}[{i}]"))
        else:
            raise ValueError(
                f"{name}[{i}]: unsupported layer {type(m).__name__}; supported: Linear, Tanh, ReLU, "
                "Softplus, Sigmoid, ELU, Identity, Sequential"
            )
    return steps


def _as_triple(value, name: str) -> Tuple:
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise ValueError(f"{name}: expected a tuple (weights, biases, activations)")
    return tuple(value)


LIKELIHOODS = (None, "gaussian", "bernoulli")


def _check_likelihood(likelihood) -> Optional[str]:
    if not (likelihood is None or (isinstance(likelihood, str) and likelihood in LIKELIHOODS)):
        raise ValueError(f"likelihood: expected one of None, 'gaussian', 'bernoulli', got {likelihood!r}")
    return likelihood


def _apply_likelihood(heads: List[List[Step]], likelihood, mean_name: str) -> List[List[Step]]:
    """The heads evaluated by the core for a likelihood.

    Bernoulli: the mean network must end with a sigmoid (its outputs are the probabilities p);
    the sigmoid is replaced by the core's ``bernoulli`` activation of the logits,
    s = 2 arcsin √p, whose Euclidean pullback is the Fisher–Rao metric J_pᵀ diag(1/(p(1−p))) J_p.
    """
    if _check_likelihood(likelihood) != "bernoulli":
        return heads
    if len(heads) > 1:
        raise ValueError("log_sigma: a σ head belongs to a Gaussian decoder, not likelihood='bernoulli'")
    mean = heads[0]
    if not mean or mean[-1][:2] != ("act", "sigmoid"):
        raise ValueError(
            f"{mean_name}: likelihood='bernoulli' needs a mean network that ends with a sigmoid "
            "(its outputs are the Bernoulli probabilities)"
        )
    return [mean[:-1] + [("act", "bernoulli", 1.0)]]


def _compact(arr: np.ndarray) -> np.ndarray:
    """float32 when it holds the float64 values exactly (half the file), else float64."""
    single = arr.astype(np.float32)
    return single if np.array_equal(single.astype(np.float64), arr) else arr


def _pullback_repr(self) -> str:
    return (
        f"{type(self).__name__}(dim={self.dim}, output_dim={self.output_dim}, gaussian={self.gaussian}, "
        f"likelihood={getattr(self, 'likelihood', None)!r})"
    )


class PullbackMetric(FrozenState, Metric):
    """Pullback metric G = Σ_heads JᵀJ of an MLP decoder, evaluated by the C++ core.

    Parameters
    ----------
    weights : list of array_like
        Weight matrices W_i of the mean network, shape (out_i, in_i) (torch's layout); layer i
        computes ``act_i(W_i h + b_i)``.
    biases : list of array_like
        Bias vectors b_i, shape (out_i,).
    activations : list of str or (str, float)
        One activation per layer: ``identity``, ``tanh``, ``relu``, ``softplus`` (``("softplus",
        beta)``), ``sigmoid``, ``elu`` (``("elu", alpha)``) or ``exp``.
    log_sigma : (weights, biases, activations), optional
        A log-σ head for a Gaussian decoder; it adds J_σᵀJ_σ with J_σ = diag(σ) J_logσ.
    trunk : (weights, biases, activations), optional
        Layers applied to z before both heads (a shared body). Without a trunk both heads read z.
    likelihood : {None, "gaussian", "bernoulli"}
        ``None`` and ``"gaussian"``: G = J_μᵀJ_μ (+ J_σᵀJ_σ with a σ head; unit variance without).
        ``"bernoulli"``: the mean network ends with ``sigmoid`` and outputs probabilities p; G is the
        Fisher–Rao pullback J_pᵀ diag(1/(p(1−p))) J_p = J_ℓᵀ diag(p(1−p)) J_ℓ (ℓ the logits),
        computed on the logits (exact where p saturates).

    Notes
    -----
    The C++ kernel lives in ``self._kernel`` (a ``PullbackKernel``) and ``_native()`` hands it
    to the C++ geodesic solver, which runs on it directly. ∂(vᵀGv)/∂z uses the
    forward-mode directional second derivative ∂(Jv)/∂z and never forms ∂G.

    Where the decoder overflows (e.g. an ``exp`` of a large activation) the kernel raises
    :class:`~latentgeo.errors.MetricDomainError` naming the point instead of returning NaN/Inf;
    the geodesic solver treats such points as infinite energy.

    The weights are private read-only copies (changing the arrays passed in does not change
    the metric) and ``dim`` is read-only: the metric evaluated is the one pickled.
    """

    dim = ReadOnly()
    _derived = ("_kernel",)

    likelihood: Optional[str] = None

    def __init__(self, weights, biases, activations, *, log_sigma=None, trunk=None, likelihood: Optional[str] = None):
        trunk_steps = [] if trunk is None else _mlp_steps(*_as_triple(trunk, "trunk"), "trunk.")
        heads = [_mlp_steps(weights, biases, activations)]
        if log_sigma is not None:
            heads.append(_mlp_steps(*_as_triple(log_sigma, "log_sigma"), "log_sigma.") + [("act", "exp", 1.0)])
        self.likelihood = likelihood
        self._setup(trunk_steps, _apply_likelihood(heads, likelihood, "activations"))

    @classmethod
    def from_torch(
        cls,
        module,
        *,
        log_sigma=None,
        trunk=None,
        likelihood: Optional[str] = None,
        dim: Optional[int] = None,
        max_points: int = 2048,
    ) -> "PullbackMetric":
        """The pullback metric of a torch decoder.

        A ``torch.nn.Sequential`` (or single layer) of ``Linear``, ``Tanh``, ``ReLU``,
        ``Softplus``, ``Sigmoid``, ``ELU`` and ``Identity`` runs in the C++ core (a
        :class:`PullbackMetric`; with ``likelihood="bernoulli"`` it must end with ``Sigmoid``).
        Any other ``torch.nn.Module`` — convolutions, transposed convolutions, reshapes, batch
        norm, residual blocks — gives a :class:`~latentgeo.torch_pullback.TorchPullbackMetric`,
        exact by forward-mode AD in float64 on an eval-mode copy of the module.

        Parameters
        ----------
        module : torch.nn.Module
            The mean network: (N, d) → (N, ...).
        log_sigma, trunk : torch.nn.Module, optional
            The log-σ head and a shared trunk, as in the constructor.
        likelihood : {None, "gaussian", "bernoulli"}
            As in the constructor; for ``"bernoulli"`` the module outputs probabilities.
        dim : int, optional
            Latent dimension; needed on the torch path when the module does not start with ``Linear``.
        max_points : int
            Points per torch call (torch path).

        Raises
        ------
        ValueError
            A module that is not an ``nn.Module`` or not a decoder of (N, d) → (N, ...) tensors
            (the message names the argument), or an unknown likelihood.
        """
        parts = [m for m in (module, log_sigma, trunk) if m is not None]
        native = all(_is_native_torch(m) for m in parts)
        mean_steps = _torch_steps(module, "module") if native else []
        if likelihood == "bernoulli" and not (mean_steps and mean_steps[-1][:2] == ("act", "sigmoid")):
            native = False  # probabilities from a module the core cannot split into logits + sigmoid
        if not native:
            from .torch_decoder import TorchPullbackMetric

            return TorchPullbackMetric(
                module, dim=dim, log_sigma=log_sigma, trunk=trunk, likelihood=likelihood, max_points=max_points
            )
        self = cls.__new__(cls)
        trunk_steps = [] if trunk is None else _torch_steps(trunk, "trunk")
        heads = [mean_steps]
        if log_sigma is not None:
            heads.append(_torch_steps(log_sigma, "log_sigma") + [("act", "exp", 1.0)])
        self.likelihood = likelihood
        self._setup(trunk_steps, _apply_likelihood(heads, likelihood, "module"))
        if dim is not None and check_int(dim, "dim", 1) != self.dim:
            raise ValueError(f"dim: the module's first layer takes {self.dim} inputs, not {dim}")
        return self

    @classmethod
    def from_pythae(cls, folder) -> "PullbackMetric":
        """The decoder's pullback metric of a pythae (0.1.2) model saved with ``model.save``.

        Parameters
        ----------
        folder : str or os.PathLike
            The model folder (``model_config.json``, ``model.pt`` and, for custom networks,
            ``decoder.pkl``). Supported: the autoencoders with a Euclidean latent space and an
            ``mse`` or ``bce`` reconstruction loss (VAE, β-VAE, β-TC-VAE, disentangled β-VAE,
            FactorVAE, InfoVAE, IWAE, CIWAE, MIWAE, PIWAE, VAMP, VAE-IAF, VAE-LinNF, HVAE, RHVAE,
            AE, WAE, RAE, adversarial AE).

        Returns
        -------
        PullbackMetric
            ``likelihood="bernoulli"`` for a ``bce`` loss, ``"gaussian"`` (unit variance, as
            pythae's ``mse`` loss) otherwise. pythae's default MLP decoder runs in the C++ core;
            other decoders in torch (:class:`~latentgeo.torch_pullback.TorchPullbackMetric`).

        Raises
        ------
        ValueError
            ``folder`` is not a pythae model folder, or holds an unsupported model (hyperspherical
            or hyperbolic latent spaces, vector quantisation, MS-SSIM or GAN losses, flows).
        ImportError
            pythae or torch is missing (``pip install latentgeo[pythae]``).
        """
        from ...io.pythae import read_pythae_decoder

        module, likelihood, dim = read_pythae_decoder(folder)
        return cls.from_torch(module, likelihood=likelihood, dim=dim)

    @classmethod
    def from_callable(
        cls, decoder: Callable, dim: int, *, log_sigma: Optional[Callable] = None, fd_step: float = 1e-5
    ) -> "CallablePullbackMetric":
        """Pullback of any Python decoder, with numerical Jacobians (slow; no C++ kernel).

        See :class:`CallablePullbackMetric`.
        """
        return CallablePullbackMetric(decoder, dim, log_sigma=log_sigma, fd_step=fd_step)

    # -- construction and pickling --------------------------------------------------
    def _setup(self, trunk: List[Step], heads: List[List[Step]]) -> None:
        dim = _input_width(trunk) or _input_width(heads[0])
        if dim is None:
            raise ValueError("weights: the decoder needs at least one dense layer")
        width = _check_widths(trunk, dim, "trunk")
        for name, steps in zip(("weights", "log_sigma"), heads):
            _check_widths(steps, width, name)
        self._dim = int(dim)
        self._trunk, self._heads = frozen(trunk), frozen(heads)
        self._rebuild()

    def _rebuild(self) -> None:
        self._kernel = _core.PullbackKernel(self.dim, self._trunk, self._heads)

    def _native(self):
        return self._kernel, 1.0

    @property
    def output_dim(self) -> int:
        """Total output dimension (mean and σ outputs)."""
        return int(self._kernel.output_dim)

    @property
    def gaussian(self) -> bool:
        """True when the decoder has a log-σ head."""
        return len(self._heads) == 2

    @property
    def smooth(self) -> bool:
        """False when G jumps somewhere: a ReLU, or an ELU with α ≠ 1, has a jump in its derivative
        (the geodesic solver then estimates length errors to first order)."""
        steps = [step for seq in (self._trunk, *self._heads) for step in seq if step[0] == "act"]
        return not any(name == "relu" or (name == "elu" and param != 1.0) for _, name, param in steps)

    __repr__ = _pullback_repr

    # -- storage ----------------------------------------------------------------------
    FORMAT_VERSION = 1

    def save(self, path, **extra_arrays) -> None:
        """Write the decoder to a ``.npz`` file (numpy only; read back with :meth:`load`).

        Keys: ``format_version``, ``kind`` (``"mlp_pullback"``), ``likelihood`` (``""`` for
        None), ``structure`` (JSON: the steps of the trunk and the heads, dense steps naming
        their arrays) and the arrays ``{sequence}.{i}.weight`` / ``.bias`` (float32 when that is
        exact, e.g. weights of a float32 model, else float64).
        ``extra_arrays`` are stored alongside (e.g. a provenance string); :meth:`load` ignores them.
        """
        arrays, structure = {}, {}
        for seq_name, steps in (("trunk", self._trunk), *((f"head{h}", s) for h, s in enumerate(self._heads))):
            described = []
            for i, step in enumerate(steps):
                if step[0] == "dense":
                    arrays[f"{seq_name}.{i}.weight"], arrays[f"{seq_name}.{i}.bias"] = map(_compact, step[1:])
                    described.append(["dense", f"{seq_name}.{i}"])
                else:
                    described.append(["act", step[1], float(step[2])])
            structure[seq_name] = described
        reserved = {"format_version", "kind", "likelihood", "structure", *arrays}
        clash = sorted(reserved & set(extra_arrays))
        if clash:
            raise ValueError(f"extra_arrays: names {clash} are reserved for the decoder")
        np.savez_compressed(
            path,
            format_version=np.int64(self.FORMAT_VERSION),
            kind=np.str_("mlp_pullback"),
            likelihood=np.str_(self.likelihood or ""),
            structure=np.str_(json.dumps(structure)),
            **arrays,
            **{k: np.asarray(v) for k, v in extra_arrays.items()},
        )

    @classmethod
    def load(cls, path) -> "PullbackMetric":
        """Read a decoder written by :meth:`save`.

        Raises
        ------
        ValueError
            The file is not such a decoder (the message names the key at fault).
        """
        try:
            data = np.load(path, allow_pickle=False)
        except (FileNotFoundError, IsADirectoryError):
            raise
        except Exception as exc:
            raise ValueError(f"path: cannot read {os.fspath(path)!r} as a .npz archive ({exc})") from None
        with data:
            for key in ("format_version", "kind", "likelihood", "structure"):
                if key not in data.files:
                    raise ValueError(f"{key}: missing from {os.fspath(path)!r}")
            if str(data["kind"]) != "mlp_pullback":
                raise ValueError(f"kind: expected 'mlp_pullback', got {str(data['kind'])!r}")
            if int(data["format_version"]) != cls.FORMAT_VERSION:
                raise ValueError(f"format_version: unsupported version {data['format_version']}")
            try:
                structure = json.loads(str(data["structure"]))
                sequences = {
                    name: [
                        (
                            "dense",
                            as_float_array(data[f"{ref}.weight"], f"{ref}.weight", ndim=2),
                            as_float_array(data[f"{ref}.bias"], f"{ref}.bias", ndim=1),
                        )
                        if kind == "dense"
                        else ("act", ref, float(rest[0]))
                        for kind, ref, *rest in steps
                    ]
                    for name, steps in structure.items()
                }
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                raise ValueError(f"structure: malformed decoder description in {os.fspath(path)!r} ({exc})") from None
            likelihood = str(data["likelihood"]) or None
        heads = [sequences[k] for k in sorted(sequences) if k.startswith("head")]
        if not heads:
            raise ValueError("structure: the decoder has no head")
        self = cls.__new__(cls)
        self.likelihood = _check_likelihood(likelihood)
        try:
            self._setup(sequences.get("trunk", []), heads)
        except ValueError as exc:  # the core's own checks (layer widths, activation names)
            raise ValueError(f"structure: {exc}") from None
        return self

    # -- decoder --------------------------------------------------------------------
    def decode(self, z, n_threads: Optional[int] = None):
        """Decoder outputs: the mean (N, D) (probabilities for a Bernoulli decoder), and for a
        Gaussian decoder with a σ head the tuple (mean, σ)."""
        pts, single = self._points(z)
        values = self._kernel.evaluate(pts, n_threads=check_threads(n_threads))
        if self.likelihood == "bernoulli":  # the core returns s = 2 arcsin √p
            values = np.sin(0.5 * values) ** 2
        return self._split(unsingle(values, single))

    def decoded_energies(self, z, counts) -> Tuple[np.ndarray, np.ndarray]:
        pts, _ = self._points(z)
        return self._kernel.decoded_energies(pts, check_counts(counts, len(pts)))

    decoded_energies.__doc__ = DECODED_ENERGIES_DOC.format(
        embedding="the embedding whose JᵀJ is G (the outputs, σ for a σ head, 2 arcsin √p for a Bernoulli decoder)",
        gradient="Jᵀ dE/de in C++, J by forward mode",
    )

    def jacobian(self, z, n_threads: Optional[int] = None) -> np.ndarray:
        """Stacked Jacobians (N, D_total, d) with G = JᵀJ: the mean head's rows (for a Bernoulli
        decoder those of s = 2 arcsin √p), then J_σ = diag(σ) J_logσ."""
        pts, single = self._points(z)
        jac = self._kernel.jacobian(pts, n_threads=check_threads(n_threads))
        return unsingle(jac.reshape(len(pts), self.output_dim, self.dim), single)

    def _split(self, values: np.ndarray):
        if not self.gaussian:
            return values
        d_mean = self._kernel.head_dims[0]
        return values[..., :d_mean], values[..., d_mean:]

    # -- metric ---------------------------------------------------------------------
    def _metric(self, z, n_threads):
        return self._kernel.metric(z, n_threads=n_threads).reshape(len(z), self.dim, self.dim)

    def _derivative(self, z, n_threads):
        d = self.dim
        return self._kernel.derivative(z, n_threads=n_threads).reshape(len(z), d, d, d)

    def _quadratic_form(self, z, v, grad, n_threads):
        out = self._kernel.quadratic_form(z, v, grad=grad, n_threads=n_threads)
        return out if grad else out[0]


class CallablePullbackMetric(FrozenState, Metric):
    """Pullback metric of a Python decoder with central-difference Jacobians (slow).

    Parameters
    ----------
    decoder : callable
        ``decoder(z)`` with z (N, d) returns the outputs (N, D) (the mean, for a Gaussian decoder).
    dim : int
        The latent dimension d.
    log_sigma : callable, optional
        ``log_sigma(z)`` returns log σ (N, D'); adds J_σᵀJ_σ with J_σ the Jacobian of σ = exp(log σ).
    fd_step : float
        Step h of the central differences of the Jacobian (error O(h²)). ∂G/∂z takes central
        differences of G with step 1e-4.

    Notes
    -----
    Every metric evaluation calls the decoder on 2d shifted copies of the points (one batched
    call); ∂G/∂z differentiates G once more numerically (2d further calls of that). The geodesic
    solver minimises the decoded polyline's energy (:meth:`decoded_energies`), whose gradient
    needs the Jacobian only (one call on N points and one on 2dN). There is no
    C++ kernel (``_native()`` is None), so geodesic solvers take the callback path of
    :class:`~latentgeo.Metric`.
    The callables must be picklable for the metric to be. ``decoder``, ``log_sigma``, ``dim`` and
    ``fd_step`` are read-only.
    """

    decoder = ReadOnly()
    log_sigma = ReadOnly()
    fd_step = ReadOnly()
    dim = ReadOnly()
    _derived = ("_dense",)
    __repr__ = _pullback_repr

    def __init__(self, decoder: Callable, dim: int, *, log_sigma: Optional[Callable] = None, fd_step: float = 1e-5):
        if not callable(decoder):
            raise ValueError("decoder: must be callable")
        if log_sigma is not None and not callable(log_sigma):
            raise ValueError("log_sigma: must be callable or None")
        self._decoder, self._log_sigma, self._dim = decoder, log_sigma, check_int(dim, "dim", 1)
        self._fd_step = check_positive(fd_step, "fd_step")
        self._rebuild()

    def _rebuild(self) -> None:
        # ∂G/∂z: central differences of G, with a step large against G's own numerical error.
        self._dense = DenseMetric(self._metric_of, dim=self.dim, fd_step=1e-4)
        self._dense._positive_definite = False  # J^T J is only semi-definite where J loses rank

    @property
    def output_dim(self) -> int:
        """Total output dimension (mean and σ outputs)."""
        return self._outputs(np.zeros((1, self.dim))).shape[1]

    @property
    def gaussian(self) -> bool:
        """True when the decoder has a log-σ head."""
        return self.log_sigma is not None

    def _call(self, fn, z: np.ndarray, name: str) -> np.ndarray:
        out = real_output(fn(z), name)
        if out.ndim != 2 or out.shape[0] != len(z):
            raise ValueError(f"{name}: must return an array of shape (N, D) for N = {len(z)} points, got {out.shape}")
        return check_finite_rows(out, z, name)

    def _outputs(self, z: np.ndarray) -> np.ndarray:
        out = self._call(self.decoder, z, "decoder")
        if self.log_sigma is not None:
            with np.errstate(over="ignore"):  # an overflow is reported below, naming the point
                sigma = np.exp(self._call(self.log_sigma, z, "log_sigma"))
            out = np.concatenate([out, check_finite_rows(sigma, z, "log_sigma", "exp overflows")], axis=1)
        return out

    def _jacobian(self, z: np.ndarray) -> np.ndarray:
        return central_differences(self._outputs, z, self.fd_step)  # (N, D, d)

    def _metric_of(self, z: np.ndarray) -> np.ndarray:
        jac = self._jacobian(z)
        with np.errstate(over="ignore", invalid="ignore"):  # reported below, naming the point
            g = np.einsum("nia,nib->nab", jac, jac)
        return check_finite_rows(g, z, "metric", "J^T J overflows")

    def _metric(self, z, n_threads):
        return self._metric_of(z)

    def _derivative(self, z, n_threads):
        return self._dense.derivative(z)

    def decoded_energies(self, z, counts) -> Tuple[np.ndarray, np.ndarray]:
        pts, _ = self._points(z)
        energies, de = polyline_energies(self._outputs(pts), check_counts(counts, len(pts)))
        return energies, np.einsum("nia,ni->na", self._jacobian(pts), de)

    decoded_energies.__doc__ = DECODED_ENERGIES_DOC.format(
        embedding="the outputs (and σ with ``log_sigma``)",
        gradient=(
            "Jᵀ dE/de with J by central differences (step ``fd_step``: first derivatives only, "
            "relative error ~1e-10, where the quadratic form's gradients need differences of differences)"
        ),
    )

    def decode(self, z, n_threads: Optional[int] = None):
        """Decoder outputs: the mean (N, D), and with ``log_sigma`` the tuple (mean, σ)."""
        pts, single = self._points(z)
        mean = unsingle(self._call(self.decoder, pts, "decoder"), single)
        if self.log_sigma is None:
            return mean
        return mean, np.exp(unsingle(self._call(self.log_sigma, pts, "log_sigma"), single))

    def jacobian(self, z, n_threads: Optional[int] = None) -> np.ndarray:
        """Stacked Jacobians (N, D_total, d) by central differences; G = JᵀJ."""
        pts, single = self._points(z)
        return unsingle(self._jacobian(pts), single)
