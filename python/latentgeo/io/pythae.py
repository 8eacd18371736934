"""Import the metric of a trained pythae RHVAE (pythae 0.1.2).

pythae keeps the final metric of an RHVAE in two tensors and two parameters:

- ``M`` (K, d, d): the matrices M_k = L_k L_kᵀ (already the products, not the factors L_k),
- ``centroids`` (K, d): the encoder means seen during the last training epoch,
- ``temperature`` and ``lbd`` (each a 1-element ``nn.Parameter``),

and evaluates G⁻¹(z) = Σ_k M_k exp(−‖z − c_k‖² / T²) + λ I, a plain sum over centroids
(latentgeo's ``normalization="sum"``). A saved model folder holds them in ``model.pt``:
``{"M": ..., "centroids": ..., "model_state_dict": {..., "temperature", "lbd"}}``; a live model
holds them as ``M_tens``, ``centroids_tens``, ``temperature`` and ``lbd``.

pythae stores everything in float32. The values are imported exactly as stored (float32 → float64
is exact) and all later computations are float64, so latentgeo and pythae differ only by pythae's
float32 rounding.

torch is imported lazily: importing latentgeo never needs it.
"""

from __future__ import annotations

import os
from typing import Any, Dict

import numpy as np

__all__ = ["read_pythae_rhvae", "PYTHAE_EXTRA_HINT"]

PYTHAE_EXTRA_HINT = "pip install latentgeo[pythae]"


def _import_torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised only without torch
        raise ImportError(
            f"importing a pythae model needs torch (and pythae to train one): {PYTHAE_EXTRA_HINT}"
        ) from exc
    return torch


def _to_float64(value, name: str) -> np.ndarray:
    """A tensor (or array/number) as float64 numpy, keeping the stored float32 values exactly."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name}: expected a numeric tensor, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _scalar(value, name: str) -> float:
    arr = _to_float64(value, name)
    if arr.size != 1:
        raise ValueError(f"{name}: expected a single value, got shape {arr.shape}")
    return float(arr.reshape(()))


def _from_live_model(model) -> Dict[str, Any]:
    missing = [a for a in ("M_tens", "centroids_tens", "temperature", "lbd") if not hasattr(model, a)]
    if missing:
        raise ValueError(f"path_or_model: {type(model).__name__} is not a pythae RHVAE (missing attributes {missing})")
    return {
        "M": _to_float64(model.M_tens, "M_tens"),
        "centroids": _to_float64(model.centroids_tens, "centroids_tens"),
        "temperature": _scalar(model.temperature, "temperature"),
        "regularization": _scalar(model.lbd, "lbd"),
    }


def _model_file(path) -> str:
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "model.pt")
    if not os.path.isfile(path):
        raise ValueError(f"path_or_model: no pythae model file found at {path!r} (expected a folder with model.pt)")
    return path


def _from_folder(path) -> Dict[str, Any]:
    torch = _import_torch()
    file = _model_file(path)
    try:
        # model.pt holds only tensors and dicts: the safe loader suffices.
        saved = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"path_or_model: cannot read {file!r} with torch.load ({exc})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"path_or_model: {file!r} does not hold pythae's dictionary")
    state = saved.get("model_state_dict", {})
    missing = [k for k in ("M", "centroids") if k not in saved] + [
        f"model_state_dict.{k}" for k in ("temperature", "lbd") if k not in state
    ]
    if missing:
        raise ValueError(f"path_or_model: {file!r} is not a saved pythae RHVAE (missing {missing})")
    return {
        "M": _to_float64(saved["M"], "M"),
        "centroids": _to_float64(saved["centroids"], "centroids"),
        "temperature": _scalar(state["temperature"], "temperature"),
        "regularization": _scalar(state["lbd"], "lbd"),
    }


def read_pythae_rhvae(path_or_model) -> Dict[str, Any]:
    """Read the metric parameters of a pythae RHVAE.

    Parameters
    ----------
    path_or_model : str, os.PathLike or pythae RHVAE
        A folder written by pythae's ``model.save`` (or its ``model.pt``), or a live model.

    Returns
    -------
    dict
        ``M`` (K, d, d), ``centroids`` (K, d) as float64 arrays holding the stored float32
        values, ``temperature`` and ``regularization`` floats, ``normalization="sum"``.

    Raises
    ------
    ImportError
        Reading a folder without torch installed.
    ValueError
        The object or folder is not a trained pythae RHVAE.
    """
    if isinstance(path_or_model, (str, bytes, os.PathLike)):
        params = _from_folder(path_or_model)
    else:
        params = _from_live_model(path_or_model)
    m, c = params["M"], params["centroids"]
    if m.ndim != 3 or c.ndim != 2 or m.shape != (c.shape[0], c.shape[1], c.shape[1]):
        raise ValueError(f"path_or_model: inconsistent shapes M {m.shape} and centroids {c.shape}")
    if not np.allclose(m, m.transpose(0, 2, 1), rtol=1e-5, atol=1e-6 * max(np.abs(m).max(), 1e-300)):
        # pythae starts from a random (non-symmetric) M_tens until the first model.update().
        raise ValueError("path_or_model: pythae's M is not symmetric; was the model trained (model.update())?")
    params["normalization"] = "sum"
    return params


# -- decoders of other pythae models (PullbackMetric.from_pythae) ------------------------------

# Model configs (model_config.json "name") whose latent space is ℝ^d and whose decoder likelihood
# is the reconstruction loss: "bce" (Bernoulli) or "mse" (Gaussian with unit variance; the AE
# family has no reconstruction_loss field and always uses the MSE).
_VAE_FAMILY = {
    "VAEConfig",
    "BetaVAEConfig",
    "BetaTCVAEConfig",
    "DisentangledBetaVAEConfig",
    "FactorVAEConfig",
    "INFOVAE_MMD_Config",
    "IWAEConfig",
    "CIWAEConfig",
    "MIWAEConfig",
    "PIWAEConfig",
    "VAMPConfig",
    "VAE_IAF_Config",
    "VAE_LinNF_Config",
    "HVAEConfig",
    "RHVAEConfig",
    "Adversarial_AE_Config",
}
_AE_FAMILY = {"AEConfig", "WAE_MMD_Config", "RAE_L2_Config", "RAE_GP_Config"}
_LIKELIHOOD_OF_LOSS = {"bce": "bernoulli", "mse": "gaussian"}


def _pythae_config(folder) -> Dict[str, Any]:
    import json

    if not isinstance(folder, (str, os.PathLike)):
        raise ValueError(f"folder: expected the path of a pythae model folder, got {type(folder).__name__}")
    path = os.path.join(os.fspath(folder), "model_config.json")
    if not os.path.isfile(path):
        raise ValueError(f"folder: {os.fspath(folder)!r} is not a pythae model folder (no model_config.json)")
    try:
        with open(path) as fh:
            config = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ValueError(f"folder: cannot read {path!r} ({exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"folder: {path!r} does not hold a pythae model configuration")
    return config


def _likelihood(config: Dict[str, Any]) -> str:
    name = config.get("name")
    if name not in _VAE_FAMILY | _AE_FAMILY:
        raise ValueError(
            f"folder: pythae model {name!r} is not supported (supported: autoencoders with a Euclidean "
            f"latent space and an mse or bce reconstruction loss: {sorted(_VAE_FAMILY | _AE_FAMILY)})"
        )
    loss = config.get("reconstruction_loss", "mse") if name in _VAE_FAMILY else "mse"
    if loss not in _LIKELIHOOD_OF_LOSS:
        raise ValueError(f"folder: reconstruction loss {loss!r} is not supported (expected 'mse' or 'bce')")
    return _LIKELIHOOD_OF_LOSS[loss]


def read_pythae_decoder(folder):
    """The decoder of a saved pythae model as a torch module, with its likelihood.

    Parameters
    ----------
    folder : str or os.PathLike
        A folder written by pythae's ``model.save``.

    Returns
    -------
    module : torch.nn.Module
        pythae's default MLP decoder as an ``nn.Sequential`` (run by the C++ core), any other
        decoder wrapped to return its flattened reconstruction (N, D).
    likelihood : str
        ``"bernoulli"`` (``bce`` loss) or ``"gaussian"`` (``mse``).
    dim : int
        The latent dimension.

    Raises
    ------
    ValueError
        Not a pythae model folder, or an unsupported model (the message names ``folder``).
    ImportError
        pythae or torch is missing.
    """
    config = _pythae_config(folder)
    likelihood = _likelihood(config)
    _import_torch()
    try:
        from pythae.models import AutoModel
        from pythae.models.nn.default_architectures import Decoder_AE_MLP
    except ImportError as exc:  # pragma: no cover - exercised only without pythae
        raise ImportError(f"reading a pythae model folder needs pythae: {PYTHAE_EXTRA_HINT}") from exc
    from torch import nn

    from ..metrics.pullback.torch_modules import PythaeDecoder

    try:
        model = AutoModel.load_from_folder(os.fspath(folder))
    except Exception as exc:
        raise ValueError(f"folder: pythae cannot load {os.fspath(folder)!r} ({type(exc).__name__}: {exc})") from None
    decoder = model.decoder
    if type(decoder) is Decoder_AE_MLP:  # Sequentials of Linear + ReLU / Sigmoid: the C++ core runs it
        module = nn.Sequential(*[layer for block in decoder.layers for layer in block])
    else:
        module = PythaeDecoder(decoder)
    return module, likelihood, int(config["latent_dim"])
