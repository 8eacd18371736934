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
        raise ValueError(
            f"path_or_model: {type(model).__name__} is not a pythae RHVAE (missing attributes {missing})"
        )
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
