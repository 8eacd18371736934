"""Pullback metrics of decoders: G(z) = J(z)ᵀ J(z).

For a deterministic decoder f: ℝ^d → ℝ^D the pullback of the Euclidean metric is G = JᵀJ with
J = ∂f/∂z (D × d). For a Gaussian decoder with a mean head μ(z) and a log-σ head log σ(z) it is
G = J_μᵀJ_μ + J_σᵀJ_σ with J_σ = diag(σ) J_logσ (the Jacobian of σ = exp(log σ)).

:class:`PullbackMetric` handles MLP decoders (dense layers and the activations ``identity``,
``tanh``, ``relu``, ``softplus``, ``sigmoid``, ``elu`` and ``exp``) in the C++ core: Jacobians,
∂G/∂z and the gradients of vᵀGv by forward-mode differentiation, batched over points and
parallel with OpenMP. It can be built from weight/bias lists or a ``torch.nn.Sequential``.
:meth:`PullbackMetric.from_torch` sends any other torch module (convolutional decoders, ...) to
:class:`~latentgeo.metrics.pullback.torch_decoder.TorchPullbackMetric`: exact, by forward-mode AD in torch.
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

import os
from typing import Callable, List, Optional, Tuple

import numpy as np

from ... import _core
from ..._validation import check_counts, check_int, check_threads
from ...io.npz import load_saved, saved_string, write_saved
from ..base import DECODED_ENERGIES_DOC, Metric
from ..support import (
    FrozenState,
    ReadOnly,
    frozen,
    unsingle,
)
from .callable import CallablePullbackMetric
from .layers import (
    Step,
    as_triple,
    check_widths,
    input_width,
    is_native_torch,
    mlp_steps,
    steps_from_arrays,
    steps_to_arrays,
    torch_steps,
)
from .likelihoods import apply_likelihood, check_likelihood, pullback_repr


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
        trunk_steps = [] if trunk is None else mlp_steps(*as_triple(trunk, "trunk"), "trunk.")
        heads = [mlp_steps(weights, biases, activations)]
        if log_sigma is not None:
            heads.append(mlp_steps(*as_triple(log_sigma, "log_sigma"), "log_sigma.") + [("act", "exp", 1.0)])
        self.likelihood = likelihood
        self._setup(trunk_steps, apply_likelihood(heads, likelihood, "activations"))

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
        norm, residual blocks — gives a :class:`~latentgeo.metrics.pullback.torch_decoder.TorchPullbackMetric`,
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
        native = all(is_native_torch(m) for m in parts)
        mean_steps = torch_steps(module, "module") if native else []
        if likelihood == "bernoulli" and not (mean_steps and mean_steps[-1][:2] == ("act", "sigmoid")):
            native = False  # probabilities from a module the core cannot split into logits + sigmoid
        if not native:
            from .torch_decoder import TorchPullbackMetric

            return TorchPullbackMetric(
                module, dim=dim, log_sigma=log_sigma, trunk=trunk, likelihood=likelihood, max_points=max_points
            )
        self = cls.__new__(cls)
        trunk_steps = [] if trunk is None else torch_steps(trunk, "trunk")
        heads = [mean_steps]
        if log_sigma is not None:
            heads.append(torch_steps(log_sigma, "log_sigma") + [("act", "exp", 1.0)])
        self.likelihood = likelihood
        self._setup(trunk_steps, apply_likelihood(heads, likelihood, "module"))
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
            other decoders in torch (:class:`~latentgeo.metrics.pullback.torch_decoder.TorchPullbackMetric`).

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
        dim = input_width(trunk) or input_width(heads[0])
        if dim is None:
            raise ValueError("weights: the decoder needs at least one dense layer")
        width = check_widths(trunk, dim, "trunk")
        for name, steps in zip(("weights", "log_sigma"), heads):
            check_widths(steps, width, name)
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

    __repr__ = pullback_repr

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
        sequences = {"trunk": self._trunk, **{f"head{h}": s for h, s in enumerate(self._heads)}}
        arrays = steps_to_arrays(sequences)
        arrays["likelihood"] = np.str_(self.likelihood or "")
        write_saved(path, "mlp_pullback", self.FORMAT_VERSION, arrays, extra_arrays)

    @classmethod
    def load(cls, path) -> "PullbackMetric":
        """Read a decoder written by :meth:`save`.

        Raises
        ------
        ValueError
            The file is not such a decoder (the message names the key at fault).
        """
        data = load_saved(path, "mlp_pullback", cls.FORMAT_VERSION, ("likelihood", "structure"))
        sequences = steps_from_arrays(data, os.fspath(path))
        likelihood = saved_string(data, "likelihood") or None
        heads = [sequences[k] for k in sorted(sequences) if k.startswith("head")]
        if not heads:
            raise ValueError("structure: the decoder has no head")
        self = cls.__new__(cls)
        self.likelihood = check_likelihood(likelihood)
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
