"""Models shipped with latentgeo.

``load_digits_rhvae()``: a pythae RHVAE (latent dimension 2) trained on scikit-learn's 8×8
digits by ``examples/train_digits_rhvae.py``; its metric, its decoder and the latent means and
labels of the 1797 digits. The provenance (seed, settings, epochs, training time) is in
``provenance``.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import NamedTuple

import numpy as np

from ..metrics import RHVAEMetric
from ..metrics.pullback import PullbackMetric

__all__ = ["DigitsRHVAE", "load_digits_rhvae", "digits_rhvae_path", "digits_decoder_path"]

_DIGITS_FILE = "digits_rhvae.npz"
_DECODER_FILE = "digits_decoder.npz"


class DigitsRHVAE(NamedTuple):
    """The shipped digits model.

    Attributes
    ----------
    metric : RHVAEMetric
        The RHVAE metric (normalization ``"sum"``, as pythae).
    latent : ndarray, shape (M, 2)
        Encoder means of the M = 1797 digits.
    labels : ndarray of int, shape (M,)
        Digit labels 0–9.
    in_train : ndarray of bool, shape (M,)
        Digits used for training (their last-epoch means are the metric's centroids).
    provenance : dict
        How the model was made (seed, settings, best epoch, training time).
    decoder : PullbackMetric
        The RHVAE's decoder (pythae's default MLP: 2 → 512 ReLU → 64 sigmoid, trained with the
        Bernoulli loss), run by the C++ core: ``decoder.decode(z)`` gives the pixel
        probabilities (N, 64) (reshape to (N, 8, 8)); as a metric it is the Fisher–Rao pullback
        (``likelihood="bernoulli"``). Its ReLU units make that metric piecewise smooth only.
    """

    metric: RHVAEMetric
    latent: np.ndarray
    labels: np.ndarray
    in_train: np.ndarray
    provenance: dict
    decoder: PullbackMetric


def digits_rhvae_path() -> str:
    """Path of the shipped ``digits_rhvae.npz`` (readable by :meth:`RHVAEMetric.load`)."""
    path = resources.files(__name__) / _DIGITS_FILE
    return os.fspath(path)


def digits_decoder_path() -> str:
    """Path of the shipped ``digits_decoder.npz`` (readable by :meth:`PullbackMetric.load`)."""
    return os.fspath(resources.files(__name__) / _DECODER_FILE)


def load_digits_rhvae() -> DigitsRHVAE:
    """Load the shipped digits RHVAE: metric, latent means, labels and decoder.

    Returns
    -------
    DigitsRHVAE
        A named tuple ``(metric, latent, labels, in_train, provenance, decoder)``.
    """
    path = digits_rhvae_path()
    metric = RHVAEMetric.load(path)
    with np.load(path, allow_pickle=False) as data:
        latent = np.asarray(data["latent"], dtype=np.float64)
        labels = np.asarray(data["labels"]).astype(np.int64)
        in_train = np.asarray(data["in_train"]).astype(bool)
        provenance = json.loads(str(data["provenance"]))
    if latent.shape != (len(labels), metric.dim) or in_train.shape != labels.shape or not np.all(np.isfinite(latent)):
        raise ValueError(f"latent: inconsistent shipped data in {path!r}")
    decoder = PullbackMetric.load(digits_decoder_path())
    if decoder.dim != metric.dim:
        raise ValueError(f"decoder: latent dimension {decoder.dim} does not match the metric's {metric.dim}")
    return DigitsRHVAE(metric, latent, labels, in_train, provenance, decoder)
