"""Train the RHVAE shipped with latentgeo (``latentgeo.datasets.load_digits_rhvae``).

A small pythae RHVAE (latent dimension 2, pythae's default MLP encoder/decoder/metric networks)
is trained on a fixed subset of scikit-learn's bundled 8×8 digits (``load_digits``: no download),
and its metric (centroids, M_k = L_k L_kᵀ, temperature, λ, normalization ``"sum"``) is written,
together with the latent means and labels of all 1797 digits, to
``python/latentgeo/datasets/digits_rhvae.npz``. The model's decoder (pythae's default MLP,
2 → 512 (ReLU) → 64 (sigmoid), trained with the Bernoulli (bce) loss) is written to
``python/latentgeo/datasets/digits_decoder.npz`` as a :class:`latentgeo.PullbackMetric` with
``likelihood="bernoulli"`` (numpy/C++ only at run time: ``data.decoder.decode(z)``).

How the shipped file was made
-----------------------------
::

    pip install --no-deps pythae==0.1.2 imageio      # torch==2.13.0 (CPU) already installed
    python examples/train_digits_rhvae.py            # all defaults below

- data: pixels / 16 in [0, 1]; ``--n-train 800`` digits drawn (stratified, seed 0) from the 1797;
  they become the K = 800 centroids of the metric (pythae keeps the encoder means of the last
  epoch's batches as centroids, all of them: the metric cannot be subsampled honestly, so the
  training set is kept small instead);
- model: ``RHVAEConfig(input_dim=(64,), latent_dim=2, reconstruction_loss="bce", n_lf=3,
  eps_lf=0.001, beta_zero=0.3, temperature=0.4, regularization=0.01)``;
- training: Adam (lr 1e-3), batch size 100, ``--epochs 300``, seed 0, one torch thread;
  after every epoch pythae rebuilds the metric (``model.update()``) and the snapshot with the
  lowest epoch loss is kept. When a batch gives a NaN/Inf loss (the generalized leapfrog can
  diverge) training returns to the best snapshot and halves the learning rate; after 5 such events
  it stops. The snapshot exported is the best one.

The shipped file: best snapshot at epoch 300 (epoch loss 23.96), no divergence, 1085 s of training
on one (shared) CPU thread, K = 800 centroids, 37 KB. A first run with temperature 0.8 trained as
well (best epoch 289, 940 s) but its metric is almost flat over the data (geodesics within 0.1 % of
straight lines), so the shipped model uses T = 0.4, which resolves the clusters.

The script prints the epoch of the best snapshot, the number of divergences and the wall time.
The provenance (these settings, the best epoch, the loss) is stored in the file's ``provenance``
key as JSON.

Training is bitwise reproducible (same seed, one torch thread, torch 2.13.0 CPU): the decoder
file was added later by re-running the script with all defaults, which reproduced
``digits_rhvae.npz``'s arrays exactly (only ``train_seconds`` of the provenance differs; the
shipped metric file was left as it was).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time

import latentgeo
import numpy as np

DATASETS = os.path.join(os.path.dirname(os.path.abspath(latentgeo.__file__)), "datasets")
DEFAULT_OUT = os.path.join(DATASETS, "digits_rhvae.npz")
DEFAULT_DECODER_OUT = os.path.join(DATASETS, "digits_decoder.npz")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=DEFAULT_OUT, help="output .npz (default: the package's digits_rhvae.npz)")
    p.add_argument(
        "--decoder-out",
        default=DEFAULT_DECODER_OUT,
        help="output .npz of the decoder (default: the package's digits_decoder.npz)",
    )
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--n-train", type=int, default=800, help="digits used for training (= number of centroids)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--temperature", type=float, default=0.4)
    p.add_argument("--regularization", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pythae-dir", default=None, help="also save the best model with pythae's model.save here")
    return p.parse_args(argv)


def load_data(n_train: int, seed: int):
    """Digits scaled to [0, 1], labels, and a stratified training subset of n_train indices."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    idx = np.arange(len(x))
    if n_train < len(x):
        idx, _ = train_test_split(idx, train_size=n_train, stratify=digits.target, random_state=seed)
    return x, digits.target.astype(np.int64), np.sort(idx)


def build_model(args):
    from pythae.models import RHVAE, RHVAEConfig

    config = RHVAEConfig(
        input_dim=(64,),
        latent_dim=2,
        reconstruction_loss="bce",
        n_lf=3,
        eps_lf=0.001,
        beta_zero=0.3,
        temperature=args.temperature,
        regularization=args.regularization,
    )
    return RHVAE(config)


def snapshot(model, optimizer, epoch, loss):
    return {
        "state": copy.deepcopy(model.state_dict()),
        "optim": copy.deepcopy(optimizer.state_dict()),
        "M": model.M_tens.clone(),
        "centroids": model.centroids_tens.clone(),
        "epoch": epoch,
        "loss": loss,
    }


def restore(model, optimizer, snap):
    model.load_state_dict(snap["state"])
    optimizer.load_state_dict(snap["optim"])
    # pythae's metric closures read M_tens/centroids_tens at call time.
    model.M_tens, model.centroids_tens = snap["M"].clone(), snap["centroids"].clone()
    model.M.clear()
    model.centroids.clear()


def run_epoch(model, optimizer, data, batch_size, generator):
    """One pass over the data; the epoch's mean loss, or NaN as soon as a batch diverges."""
    import torch

    model.train()
    order = torch.randperm(len(data), generator=generator)
    total = 0.0
    for start in range(0, len(data), batch_size):
        batch = data[order[start : start + batch_size]]
        optimizer.zero_grad()
        loss = model({"data": batch}).loss
        if not torch.isfinite(loss):
            return math.nan
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch)
    model.update()  # pythae's end-of-epoch metric rebuild from this epoch's M_k and means
    if not (torch.isfinite(model.M_tens).all() and torch.isfinite(model.centroids_tens).all()):
        return math.nan
    return total / len(data)


def train(model, data, args, max_divergences: int = 5):
    import torch

    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    generator = torch.Generator().manual_seed(args.seed)
    best, divergences = None, 0
    for epoch in range(1, args.epochs + 1):
        loss = run_epoch(model, optimizer, data, args.batch_size, generator)
        if not math.isfinite(loss):
            divergences += 1
            print(f"epoch {epoch}: diverged (NaN/Inf), back to epoch {best['epoch'] if best else 0}")
            if best is None or divergences > max_divergences:
                break
            restore(model, optimizer, best)
            for group in optimizer.param_groups:
                group["lr"] *= 0.5
            continue
        if best is None or loss < best["loss"]:
            best = snapshot(model, optimizer, epoch, loss)
        if epoch % 25 == 0 or epoch == 1:
            print(f"epoch {epoch}: loss {loss:.3f} (best {best['loss']:.3f} at epoch {best['epoch']})", flush=True)
    if best is None:
        raise RuntimeError("training diverged before the first epoch ended")
    restore(model, optimizer, best)
    model.eval()
    return best, divergences


def latent_means(model, x):
    import torch

    with torch.no_grad():
        return model.encoder(torch.from_numpy(x)).embedding.double().numpy()


def export_decoder(model, path, provenance):
    """pythae's default MLP decoder as a Bernoulli PullbackMetric (C++ core, numpy at run time)."""
    from torch import nn

    layers = nn.Sequential(*[layer for block in model.decoder.layers for layer in block])
    decoder = latentgeo.PullbackMetric.from_torch(layers, likelihood="bernoulli")
    decoder.save(path, provenance=np.str_(json.dumps(provenance, sort_keys=True)))
    return decoder


def main(argv=None):
    args = parse_args(argv)
    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    x, labels, train_idx = load_data(args.n_train, args.seed)
    model = build_model(args)
    t0 = time.perf_counter()
    best, divergences = train(model, torch.from_numpy(x[train_idx]), args)
    elapsed = time.perf_counter() - t0
    metric = latentgeo.RHVAEMetric.from_pythae(model)
    provenance = dict(
        vars(args),
        out=None,
        decoder_out=None,
        pythae_dir=None,
        best_epoch=best["epoch"],
        best_loss=best["loss"],
        divergences=divergences,
        train_seconds=round(elapsed, 1),
        pythae="0.1.2",
        torch=torch.__version__,
        script="examples/train_digits_rhvae.py",
    )
    in_train = np.zeros(len(x), dtype=bool)
    in_train[train_idx] = True
    metric.save(
        args.out,
        latent=latent_means(model, x),
        labels=labels,
        in_train=in_train,
        provenance=np.str_(json.dumps(provenance, sort_keys=True)),
    )
    export_decoder(model, args.decoder_out, provenance)
    if args.pythae_dir:
        model.save(args.pythae_dir)
    print(
        f"best epoch {best['epoch']} (loss {best['loss']:.3f}), {divergences} divergence(s), "
        f"{elapsed:.0f} s; K = {metric.n_centroids} centroids; wrote {args.out} "
        f"({os.path.getsize(args.out if args.out.endswith('.npz') else args.out + '.npz') / 1024:.0f} KB)"
    )


if __name__ == "__main__":
    main()
