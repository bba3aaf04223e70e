"""Every registered model gives a sane answer on small multi-class series: on separable 3-class and 6-class
toy sets (signed, z-normalised, 40-200 series, like a user's own labelled series) each one beats the
majority rate on test rows and predicts more than one class.

Models are built with their ``test_params()`` (tiny settings) plus a longer training budget for the torch
models (their contract-test budget of a few epochs is meant for speed, not for learning), adapted to the
row count by the small-data policy (:func:`hmspar.training.selection.adapt_to_rows`), and fitted with a
validation split for early stopping, as the run code does; the k-fold regime itself is tested in
``tests/test_selection.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from hmspar.models.registry import REGISTRY, make_model, model_class
from hmspar.pipeline import deep_merge
from hmspar.training.selection import SelectionConfig, adapt_to_rows

FOUNDATION = ("tabpfn", "tabicl")
MODELS = [m for m in REGISTRY if m not in FOUNDATION]
#: Training budget of the torch models in this test (merged over their ``test_params()``).
TRAIN = {"train": {"epochs": 20, "patience": 6, "lr": 5e-3}}
#: Required margin of test accuracy over the majority rate.
MARGIN = 0.1


def toy_curves(y: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """Class ``k`` of a separable toy set: a distinct shape at (nearly) a fixed place, (n, length) float64:
    0 bump, 1 dip, 2 step up, 3 step down, 4 sine of two cycles, 5 linear ramp."""
    u = np.linspace(0, 1, length)[None, :]
    c = 0.5 + rng.normal(0, 0.03, (y.size, 1))
    curves = [np.exp(-0.5 * ((u - c) / 0.08) ** 2), -np.exp(-0.5 * ((u - c) / 0.08) ** 2),
              (u > c).astype(float), (u < c).astype(float), np.sin(4 * np.pi * (u - c)),
              np.broadcast_to(u, (y.size, length))]
    return np.choose(y[:, None], curves)


def toy_series(n_classes: int, n_per_class: int, length: int = 32, seed: int = 0):
    """A separable toy set: :func:`toy_curves` plus noise, z-normalised per series (signed; level and scale
    say nothing). Returns train / val / test ``(X, y)`` with 60 / 10 / 30 % of each class; X holds series,
    mask (all observed), a (n, 2, 8, 8) signed ISA-GAF image and zero-width text and static matrices."""
    from hmspar.modalities.isa_gaf import isa_gaf

    rng = np.random.default_rng([seed, n_classes])
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = toy_curves(y, length, rng) + rng.normal(0, 0.2, (y.size, length))
    x = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    series = x[:, None, :].astype(np.float32)
    X = {"series": series, "mask": np.ones_like(series), "image": isa_gaf(series, 8, signed=True),
         "text": np.zeros((y.size, 0), np.float32), "static": np.zeros((y.size, 0), np.float32)}
    parts = {"train": [], "val": [], "test": []}
    for k in range(n_classes):
        idx = rng.permutation(np.flatnonzero(y == k))
        a, b = int(0.6 * idx.size), int(0.7 * idx.size)
        parts["train"] += idx[:a].tolist()
        parts["val"] += idx[a:b].tolist()
        parts["test"] += idx[b:].tolist()
    return {name: ({m: v[np.sort(i)] for m, v in X.items()}, y[np.sort(i)]) for name, i in parts.items()}


SETS = {3: toy_series(3, 20), 6: toy_series(6, 20)}  # 60 and 120 series


@pytest.mark.parametrize("n_classes", sorted(SETS))
@pytest.mark.parametrize("name", MODELS)
def test_every_model_beats_the_majority_rate(name, n_classes):
    data = SETS[n_classes]
    params = model_class(name).test_params()
    if "train" in params:
        params = deep_merge(params, TRAIN)
    if name == "tloss":
        params = deep_merge(params, {"steps": 100})
    (X, y), (Xv, yv), (Xt, yt) = data["train"], data["val"], data["test"]
    model = make_model(name, params, seed=0).restricted_to(("series", "image"))
    model = adapt_to_rows(model, y.size, SelectionConfig())
    model.fit(X, y, Xv, yv)
    proba = model.predict_proba(Xt)
    assert proba.shape == (yt.size, n_classes)
    pred = proba.argmax(axis=1)
    majority = np.bincount(yt).max() / yt.size
    accuracy = float(np.mean(pred == yt))
    assert np.unique(pred).size > 1, f"{name}: a single class predicted for every test row"
    assert accuracy > majority + MARGIN, f"{name}: accuracy {accuracy:.3f} vs majority rate {majority:.3f}"
