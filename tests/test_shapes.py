"""The ``shapes`` simulator: schema and declarations (signed, series + image only), balanced latent classes,
a leak guard (level, scale, order and ids say nothing about the class, and summary statistics are far
weaker than the shape itself), determinism and config errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from hmspar.data.generators import dataset_config, shapes
from hmspar.errors import HmsparError


def make(**overrides):
    return shapes.generate(dataset_config("shapes", {**shapes.DEFAULT_PARAMS, **overrides}), progress=False)


def summary_statistics(x: np.ndarray) -> np.ndarray:
    """min, max, first, last, least-squares slope and mean absolute step of each (NaN -> 0) series."""
    t = np.arange(x.shape[1]) - (x.shape[1] - 1) / 2
    return np.stack([x.min(1), x.max(1), x[:, 0], x[:, -1], x @ t / (t @ t), np.abs(np.diff(x, axis=1)).mean(1)], 1)


def test_schema_and_declarations(tmp_path):
    ds = make()
    assert ds.series.shape == (360, 1, 64) and ds.channels == ["value"]
    assert ds.values == "signed" and ds.declared_modalities == ["series", "image"]
    y = ds.labels["shape"]
    assert set(np.unique(y)) == set(range(6))
    counts = np.bincount(y)
    assert counts.min() > 0.6 * counts.mean()  # drawn uniformly
    x = ds.series[:, 0]
    assert 0.005 < np.isnan(x).mean() < 0.05 and (np.nan_to_num(x) < 0).mean() > 0.3
    ds.save(tmp_path / "raw")
    again = type(ds).load(tmp_path / "raw")
    assert again.values == "signed" and again.modalities == ["series", "image"]


def test_leak_guard():
    ds = make(n_entities=1200)
    y = ds.labels["shape"]
    x = np.nan_to_num(ds.series[:, 0].astype(np.float64))
    observed = ~np.isnan(ds.series[:, 0])
    mean = np.array([x[i, observed[i]].mean() for i in range(len(y))])
    std = np.array([x[i, observed[i]].std() for i in range(len(y))])
    np.testing.assert_allclose(mean, 0, atol=1e-5)  # z-normalised: level and scale say nothing
    np.testing.assert_allclose(std, 1, atol=1e-4)
    # Entity order and ids carry no class: the label of entity i is unrelated to i.
    assert abs(np.corrcoef(np.arange(len(y)), y)[0, 1]) < 0.1
    train, test = np.arange(600), np.arange(600, 1200)
    stats = summary_statistics(x)
    stats = (stats - stats[train].mean(0)) / stats[train].std(0)
    by_stats = LogisticRegression(max_iter=3000).fit(stats[train], y[train]).score(stats[test], y[test])
    by_shape = KNeighborsClassifier(1).fit(x[train], y[train]).score(x[test], y[test])
    assert by_stats < 0.7, f"summary statistics alone reach accuracy {by_stats:.3f}"
    assert by_shape > 0.8 and by_shape > by_stats + 0.2, (by_shape, by_stats)


def test_same_seed_same_data():
    a, b, c = make(), make(), make(seed=109)
    np.testing.assert_array_equal(a.series, b.series)
    np.testing.assert_array_equal(a.labels["shape"], b.labels["shape"])
    assert not np.array_equal(np.nan_to_num(a.series), np.nan_to_num(c.series))


@pytest.mark.parametrize("key, value, message", [("n_classes", 9, "must lie in 2..8, got 9"),
                                                 ("noise", -1.0, "must lie in"),
                                                 ("warp", 0.5, "must lie in"),
                                                 ("length", 8, "must be at least 16")])
def test_config_errors_name_the_key(key, value, message):
    with pytest.raises(HmsparError, match=f"datasets.shapes.{key}: {message}"):
        dataset_config("shapes", {**shapes.DEFAULT_PARAMS, key: value})
