"""Pretrained tabular foundation models: the error paths (no checkpoint, missing file, missing package,
wrong file) and the load path, checked with a tiny checkpoint written here and a fake package class."""

from __future__ import annotations

import numpy as np
import pytest

from hmspar.errors import HmsparError
from hmspar.models.baselines.foundation import TabICLModel, TabPFNModel, validate_checkpoint
from hmspar.models.registry import make_model

MODELS = {"tabpfn": TabPFNModel, "tabicl": TabICLModel}


def _data(n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    series = rng.normal(size=(n, 2, 5)).astype(np.float32)
    series[:, 0, -1] += 2.0 * y
    X = {"series": series, "mask": (series > 0).astype(np.float32),
         "static": rng.normal(size=(n, 3)).astype(np.float32), "text": rng.normal(size=(n, 4)).astype(np.float32)}
    return X, y


def _write_checkpoint(path, keys):
    import torch

    torch.save({k: ({"w": torch.zeros(2)} if k == "state_dict" else {"d": 4}) for k in keys}, path)
    return path


class FakeClassifier:
    """Stands in for the package's classifier: records its arguments, predicts from a nearest class mean."""

    instances: list["FakeClassifier"] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        FakeClassifier.instances.append(self)

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.means_ = np.stack([X[y == c].mean(axis=0) for c in self.classes_])
        self.n_rows_ = X.shape[0]
        return self

    def predict_proba(self, X):
        d = -((X[:, None, :] - self.means_[None]) ** 2).sum(-1)
        e = np.exp(d - d.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def fake_package(monkeypatch):
    FakeClassifier.instances.clear()
    for cls in MODELS.values():
        monkeypatch.setattr(cls, "import_classifier_class", lambda self: FakeClassifier)
    return FakeClassifier


@pytest.mark.parametrize("name", sorted(MODELS))
def test_no_checkpoint_explains_how_to_get_one(name):
    model = make_model(name, {}, seed=0)
    X, y = _data()
    with pytest.raises(HmsparError) as info:
        model.fit(X, y)
    msg = str(info.value)
    assert f"baselines.{name}.checkpoint_path: not set" in msg
    assert "models/pretrained/" in msg and "never downloads" in msg and "not in the default pipeline" in msg


@pytest.mark.parametrize("name", sorted(MODELS))
def test_missing_checkpoint_file(name, tmp_path):
    model = make_model(name, {"checkpoint_path": str(tmp_path / "absent.ckpt")}, seed=0)
    with pytest.raises(HmsparError, match=rf"baselines\.{name}\.checkpoint_path: .*absent\.ckpt does not exist"):
        model.fit(*_data())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_missing_package_names_pip_requirement(name, tmp_path, monkeypatch):
    cls = MODELS[name]
    monkeypatch.setattr(cls, "package", "hmspar_no_such_package")
    ckpt = _write_checkpoint(tmp_path / "m.ckpt", cls.checkpoint_keys)
    model = make_model(name, {"checkpoint_path": str(ckpt)}, seed=0)
    with pytest.raises(HmsparError, match=rf"not installed.*pip install '{cls.pip_requirement}'"):
        model.fit(*_data())


def test_validate_checkpoint_rejects_bad_files(tmp_path):
    import torch

    where = "baselines.tabpfn.checkpoint_path"
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(HmsparError, match="is not a readable torch checkpoint"):
        validate_checkpoint(junk, ("state_dict",), where)
    tensor_only = tmp_path / "tensor.ckpt"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(HmsparError, match="holds a Tensor, expected a checkpoint dict"):
        validate_checkpoint(tensor_only, ("state_dict",), where)
    wrong_keys = _write_checkpoint(tmp_path / "wrong.ckpt", ("state_dict",))
    with pytest.raises(HmsparError, match="lacks the key 'config'"):
        validate_checkpoint(wrong_keys, ("state_dict", "config"), where)
    assert validate_checkpoint(wrong_keys, ("state_dict",), where) == ["state_dict"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_load_path_passes_local_checkpoint(name, tmp_path, fake_package):
    cls = MODELS[name]
    ckpt = _write_checkpoint(tmp_path / "tiny.ckpt", cls.checkpoint_keys)
    model = make_model(name, {"checkpoint_path": str(ckpt), "n_estimators": 2, "max_train_rows": 40}, seed=7)
    X, y = _data()
    proba = model.fit(X, y).predict_proba(X)
    (fake,) = fake_package.instances
    assert fake.kwargs["model_path"] == str(ckpt)
    assert fake.kwargs["random_state"] == 7 and fake.kwargs["n_estimators"] == 2 and fake.kwargs["device"] == "cpu"
    if name == "tabicl":
        assert fake.kwargs["allow_auto_download"] is False
    assert fake.n_rows_ == 40  # stratified subsample of the context rows
    assert model.n_features_in_ == 2 * 2 * 5 + 3  # series + mask + static
    assert proba.shape == (60, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba[:, 1][y == 1].mean() > proba[:, 1][y == 0].mean()
    model.save(tmp_path / "model.pkl")
    np.testing.assert_allclose(cls.load(tmp_path / "model.pkl").predict_proba(X), proba)


def test_wrong_checkpoint_is_caught_before_the_package(tmp_path, fake_package):
    ckpt = _write_checkpoint(tmp_path / "other.ckpt", ("weights",))
    model = make_model("tabicl", {"checkpoint_path": str(ckpt)}, seed=0)
    with pytest.raises(HmsparError, match="lacks the key 'config'"):
        model.fit(*_data())
    assert not fake_package.instances


def test_config_rejects_image_input():
    with pytest.raises(HmsparError, match=r"baselines\.tabpfn\.inputs: 'image' is not supported"):
        make_model("tabpfn", {"inputs": ["series", "image"]}, seed=0)
