"""The loader's lazily read splits: same values as reading everything, one batch in memory at a time."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from hmspar.data.loader import MappedRows, SplitData, fit_standardiser, load_task, materialise, rows_of
from hmspar.data.splits import stratified_split
from hmspar.errors import HmsparError


@pytest.fixture()
def features_dir(tmp_path):
    """300 entities, 2 channels x 10 periods, images 4x4, text dim 6, static (2 numeric + 2 one-hot)."""
    rng = np.random.default_rng(3)
    n, c, t, s = 300, 2, 10, 4
    d = tmp_path / "toy"
    d.mkdir()
    series = (np.abs(rng.normal(2.0, 1.5, size=(n, c, t))) * (rng.random((n, c, t)) < 0.6)).astype(np.float32)
    static = np.concatenate([rng.normal(5.0, 3.0, size=(n, 2)), np.eye(2)[rng.integers(0, 2, n)]], axis=1)
    y = (static[:, 0] + rng.normal(size=n) > 5).astype(np.int8)
    np.save(d / "ids.npy", np.array([f"e{i:04d}" for i in range(n)]))
    np.save(d / "series.npy", series)
    np.save(d / "mask.npy", (series > 0).astype(np.float32))
    np.save(d / "image.npy", rng.uniform(-1, 1, size=(n, 2 * c, s, s)).astype(np.float32))
    np.save(d / "text.npy", rng.normal(size=(n, 6)).astype(np.float32))
    np.save(d / "static.npy", static.astype(np.float32))
    np.save(d / "groups.npy", np.array(["A", "B"])[rng.integers(0, 2, n)])
    np.savez(d / "labels.npz", churn=y)
    np.savez(d / "splits.npz", churn=stratified_split(y, 0.2, 0.2, 1))
    (d / "meta.json").write_text(json.dumps({"channels": ["a", "b"], "tasks": ["churn"], "groups": ["A", "B"],
                                             "static_numeric": [True, True, False, False]}))
    return d


def reference(d, task="churn", group=None):
    """The loader's contract computed the direct way: fancy indexing, then train-fitted standardisation."""
    y = np.load(d / "labels.npz")[task].astype(np.int64)
    codes = np.load(d / "splits.npz")[task]
    keep = np.ones(y.size, bool) if group is None else np.load(d / "groups.npy") == group
    arrays = {m: np.load(d / f"{m}.npy") for m in ("series", "mask", "image", "text", "static")}
    out = {}
    for name, code in (("train", 0), ("val", 1), ("test", 2)):
        idx = np.flatnonzero(keep & (codes == code))
        out[name] = {k: v[idx].astype(np.float64) for k, v in arrays.items()}
    tr = out["train"]
    mu_s, sd_s = tr["series"].mean(axis=(0, 2), keepdims=True), tr["series"].std(axis=(0, 2), keepdims=True)
    mu_t, sd_t = tr["static"].mean(axis=0, keepdims=True), tr["static"].std(axis=0, keepdims=True)
    mu_t[:, 2:], sd_t[:, 2:] = 0.0, 1.0
    mu_x, sd_x = tr["text"].mean(axis=0, keepdims=True), tr["text"].std(axis=0, keepdims=True)
    for part in out.values():
        part["series"] = (part["series"] - mu_s) / sd_s
        part["static"] = (part["static"] - mu_t) / sd_t
        part["text"] = (part["text"] - mu_x) / sd_x
    return out


def test_text_is_standardised_on_training_rows_only(features_dir):
    base = load_task(features_dir, "churn", modalities=("text",), lazy=False)
    train_text = base["train"].X["text"]
    np.testing.assert_allclose(train_text.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train_text.std(axis=0), 1.0, atol=1e-4)
    # Rewriting the validation and test rows' embeddings changes nothing on the training rows, and the
    # validation rows move by exactly (new - old) / train std: the statistics come from training rows.
    codes = np.load(features_dir / "splits.npz")["churn"]
    text = np.load(features_dir / "text.npy")
    raw_std = text[codes == 0].astype(np.float64).std(axis=0)
    shifted = text.copy()
    shifted[codes != 0] = shifted[codes != 0] * 40.0 + 7.0
    np.save(features_dir / "text.npy", shifted)
    moved = load_task(features_dir, "churn", modalities=("text",), lazy=False)
    np.testing.assert_array_equal(moved["train"].X["text"], train_text)
    delta = (shifted[codes == 1] - text[codes == 1]) / raw_std
    np.testing.assert_allclose(moved["val"].X["text"] - base["val"].X["text"], delta, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("group", [None, "B"])
def test_lazy_and_eager_splits_equal_the_direct_computation(features_dir, group):
    lazy = load_task(features_dir, "churn", group=group)
    eager = load_task(features_dir, "churn", group=group, lazy=False)
    ref = reference(features_dir, group=group)
    for name in ("train", "val", "test"):
        assert lazy[name].lazy and not eager[name].lazy
        assert set(lazy[name].X) == {"series", "mask", "image", "text", "static"}
        assert np.array_equal(lazy[name].y, eager[name].y) and np.array_equal(lazy[name].ids, eager[name].ids)
        for k, view in lazy[name].X.items():
            assert isinstance(view, MappedRows) and view.dtype == np.float32
            assert isinstance(eager[name].X[k], np.ndarray) and eager[name].X[k].dtype == np.float32
            assert view.shape == eager[name].X[k].shape == ref[name][k].shape
            np.testing.assert_array_equal(np.asarray(view), eager[name].X[k])
            np.testing.assert_allclose(eager[name].X[k], ref[name][k], rtol=1e-5, atol=1e-5)


def test_view_indexing_matches_numpy(features_dir):
    view = load_task(features_dir, "churn", modalities=["series"])["train"].X["series"]
    full = np.asarray(view)
    rng = np.random.default_rng(0)
    unsorted = rng.permutation(len(view))[:37]
    mask = rng.random(len(view)) < 0.3
    for key in (5, -1, slice(3, 40), slice(None, None, 7), unsorted, np.sort(unsorted), mask,
                (unsorted, 1), (slice(2, 9), 0, slice(1, 4)), (4, 1)):
        np.testing.assert_array_equal(view[key], full[key])
    assert np.shape(view) == full.shape and len(view) == full.shape[0] and view.ndim == 3
    assert view._file is not None  # rows of the .npy file are read with preadv, not through the mapping
    plain = MappedRows(full, np.arange(5, 40))
    assert plain._file is None
    np.testing.assert_array_equal(plain[unsorted % 35], full[5:40][unsorted % 35])
    sub = rows_of(view, unsorted)
    assert isinstance(sub, MappedRows)
    np.testing.assert_array_equal(np.asarray(sub), full[unsorted])
    np.testing.assert_array_equal(rows_of(full, unsorted), full[unsorted])
    np.testing.assert_array_equal(materialise(sub), full[unsorted])
    # a memory map is pickled as its file name and reopened
    clone = pickle.loads(pickle.dumps(view))
    assert len(pickle.dumps(view)) < full.nbytes // 4
    np.testing.assert_array_equal(np.asarray(clone), full)


def test_chunked_standardiser_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    x = (rng.normal(1e3, 2.0, size=(1001, 3, 7)) * (rng.random((1001, 3, 7)) < 0.7)).astype(np.float32)
    x[:, 2] = 4.0  # constant channel: std 1
    np.save(tmp_path / "x.npy", x)
    view = MappedRows(np.load(tmp_path / "x.npy", mmap_mode="r"), np.arange(3, 1001, 2))
    for chunk_bytes in (1, 3 * 7 * 4 * 10, 1 << 30):  # one row, ten rows, everything per chunk
        mean, std = fit_standardiser(view, axes=(0, 2), chunk_bytes=chunk_bytes)
        sel = x[3::2].astype(np.float64)
        np.testing.assert_allclose(mean, sel.mean(axis=(0, 2), keepdims=True), rtol=1e-6)
        expect = sel.std(axis=(0, 2), keepdims=True)
        expect[expect < 1e-8] = 1.0
        np.testing.assert_allclose(std, expect, rtol=1e-5)
    assert std.shape == (1, 3, 1) and std[0, 2, 0] == 1.0
    with pytest.raises(HmsparError, match="row axis"):
        fit_standardiser(view, axes=(1,))


def test_materialise_and_subset_of_split(features_dir):
    lazy = load_task(features_dir, "churn", modalities=["static", "text"])["val"]
    assert set(lazy.X) == {"static", "text"}
    idx = np.array([4, 0, 2])
    part = lazy.subset(idx)
    assert part.lazy and len(part) == 3 and list(part.ids) == list(lazy.ids[idx])
    eager = part.materialise()
    assert isinstance(eager, SplitData) and not eager.lazy
    np.testing.assert_array_equal(eager.X["text"], np.asarray(lazy.X["text"])[idx])


def test_loader_errors_name_the_problem(features_dir):
    with pytest.raises(HmsparError, match="unknown task 'nope'"):
        load_task(features_dir, "nope")
    with pytest.raises(HmsparError, match="unknown modality 'audio'"):
        load_task(features_dir, "churn", modalities=["audio"])
    with pytest.raises(HmsparError, match="unknown group 'C'"):
        load_task(features_dir, "churn", group="C")
    np.save(features_dir / "text.npy", np.zeros((10, 6), np.float32))
    with pytest.raises(HmsparError, match=r"text\.npy: expected 300 rows"):
        load_task(features_dir, "churn")
    with pytest.raises(HmsparError, match="index out of range"):
        MappedRows(np.zeros((3, 2)), np.array([0, 3]))
    (features_dir / "image.npy").unlink()
    with pytest.raises(HmsparError, match=r"image\.npy: missing \(run the convert stage first\)"):
        load_task(features_dir, "churn")


def test_zero_width_modality_reads_as_empty_rows(tmp_path):
    """A dataset without static attributes stores an (N, 0) matrix; reading it must not touch the file."""
    path = tmp_path / "static.npy"
    np.save(path, np.zeros((7, 0), dtype=np.float32))
    view = MappedRows(np.load(path, mmap_mode="r"), np.array([0, 3, 4, 6]))
    assert view[1:3].shape == (2, 0)
    assert np.asarray(view).shape == (4, 0)
