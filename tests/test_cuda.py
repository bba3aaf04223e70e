"""The CUDA paths: device resolution everywhere (CPU-only machines included), and real fits on a GPU that
skip cleanly without one (no GPU has been lent to this project; these run wherever one is present)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmspar.device import resolve_device
from hmspar.errors import HmsparError
from hmspar.models.registry import make_model
from hmspar.training import trainer

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device on this machine")


def test_auto_follows_cuda_availability_and_cuda_without_gpu_is_a_clear_error(monkeypatch):
    """One resolver for both tracks (the classification Trainer and the recommendation loop)."""
    resolve = resolve_device
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve("auto") == torch.device("cpu")
    assert resolve("cpu") == torch.device("cpu")
    with pytest.raises(HmsparError, match=r"train\.device: 'cuda' requested but no CUDA device"):
        resolve("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve("auto").type == "cuda"  # resolving allocates nothing, so this runs without a GPU


def _learnable(n: int, seed: int):
    rng = np.random.default_rng(seed)
    X = {
        "series": rng.normal(size=(n, 1, 13)).astype(np.float32),
        "mask": (rng.random((n, 1, 13)) < 0.4).astype(np.float32),
        "image": rng.uniform(-1, 1, size=(n, 2, 4, 4)).astype(np.float32),
        "text": rng.normal(size=(n, 32)).astype(np.float32),
        "static": rng.normal(size=(n, 3)).astype(np.float32),
    }
    score = 3.0 * X["mask"][:, 0, -4:].mean(axis=1) + 0.8 * X["text"][:, 0] + 0.3 * rng.normal(size=n)
    return X, (score > np.median(score)).astype(np.int64)


@needs_cuda
@pytest.mark.parametrize("amp", [False, True])
def test_hmspar_fits_and_predicts_on_cuda(amp):
    from sklearn.metrics import roc_auc_score

    from hmspar.models.hmspar import HMSPAR

    section = HMSPAR.test_params()
    section["train"] = {**section.get("train", {}), "epochs": 8, "batch_size": 64, "lr": 0.005, "patience": 8,
                        "device": "cuda", "amp": amp}
    X, y = _learnable(400, seed=0)
    X_val, y_val = _learnable(200, seed=1)
    model = make_model("hmspar", section, 0, where="model").fit(X, y, X_val, y_val)
    proba = model.predict_proba(X_val)
    assert proba.shape == (200, 2) and np.isfinite(proba).all()
    assert roc_auc_score(y_val, proba[:, 1]) > 0.7


@needs_cuda
@pytest.mark.parametrize("name", ["cnn1d", "lstm"])
def test_deep_baselines_fit_on_cuda(name):
    from hmspar.models.registry import model_class

    section = model_class(name).test_params()
    section["train"] = {**section.get("train", {}), "device": "cuda"}
    X, y = _learnable(300, seed=0)
    X_val, y_val = _learnable(100, seed=1)
    X = {k: X[k] for k in ("series", "mask", "static")}
    X_val = {k: X_val[k] for k in ("series", "mask", "static")}
    proba = make_model(name, section, 0).fit(X, y, X_val, y_val).predict_proba(X_val)
    assert proba.shape == (100, 2) and np.isfinite(proba).all()
