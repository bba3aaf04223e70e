"""The ``trend`` dataset (daily outfit posts cut into sliding windows) and the temporal split.

Checks: config derivation and errors; shapes of every modality; windows built only from days up to
their last day ``t`` while labels look at day ``t + horizon``; the last day's captions do not give the
label away (a bag-of-words logistic regression, used instead of the sentence model so the test stays
fast and offline-light, stays at or below the "caption bag-of-words" AUC of docs/datasets.md); pictures carry their
style (a logistic regression on pooled pixels of 200 single-post pictures beats chance by far); the
temporal split is ordered, disjoint and keeps the gap; the convert step stores the dataset's own pictures
and the temporal split, which the loader reads; determinism.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from hmspar.data.generators import GENERATORS, dataset_config
from hmspar.data.generators import trend
from hmspar.data.pictures import render_posts
from hmspar.data.schema import RawDataset
from hmspar.data.splits import DROPPED, TEST, TRAIN, VAL, temporal_split
from hmspar.errors import HmsparError
from test_generators import docs_dataset_table

SMALL = {"n_days": 160}


def config(**overrides) -> trend.Config:
    return dataset_config("trend", {**trend.DEFAULT_PARAMS, **overrides})


@functools.lru_cache(maxsize=None)
def dataset(**overrides) -> RawDataset:
    return trend.generate(config(**overrides), progress=False)


@functools.lru_cache(maxsize=None)
def default() -> RawDataset:
    return dataset()


def split_of(ds: RawDataset, cfg: trend.Config) -> np.ndarray:
    return temporal_split(np.asarray(ds.extra_meta["time_index"]), cfg.val_fraction, cfg.test_fraction,
                          gap=ds.extra_meta["split_gap"])


# ---------------------------------------------------------------------------------------------- config
def test_registered_and_n_entities_derived():
    assert "trend" in GENERATORS
    cfg = config()
    assert cfg.kind == "trend" and cfg.length == 10 and cfg.image_size == 32 and cfg.horizon == 3
    assert cfg.n_entities == cfg.n_days - cfg.length - cfg.horizon + 1 == 988
    assert config(n_entities=988).n_entities == 988  # giving the derived value is accepted


@pytest.mark.parametrize("key, value", [
    ("n_entities", 500), ("n_days", 40), ("horizon", 0), ("n_styles", 7), ("image_days", 11),
    ("text_days", 0), ("series_channels", ["activity", "likes"]), ("start_date", "2021-13-01"),
    ("missing_rate", 0.6), ("image_size", 4), ("mention_rate", 1.5),
])
def test_config_errors_name_the_key(key, value):
    with pytest.raises(HmsparError, match=rf"datasets\.trend(\.|: ){key}"):
        config(**{key: value})


# ---------------------------------------------------------------------------------------------- shapes
def test_shapes_and_modalities():
    ds, cfg = default(), config()
    n, k = cfg.n_entities, cfg.n_styles
    assert ds.n == n and ds.series.dtype == np.float32 and ds.series.shape == (n, 3 + k + 3, cfg.length)
    assert ds.channels == (["posts", "likes", "shares"] + [f"mention_{s.name}" for s in cfg.styles]
                           + ["red", "green", "blue"])
    assert ds.images.dtype == np.float32 and ds.images.shape == (n, 3, 32, 32)
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    assert len(ds.text) == n and all(isinstance(t, str) and t for t in ds.text)
    assert list(ds.static.columns) == ["weekday", "month"]
    assert set(ds.static["weekday"]) == set(trend.WEEKDAYS) and set(ds.static["month"]) == set(trend.MONTHS)
    assert sorted(ds.labels) == sorted(f"hot_{s.name}" for s in cfg.styles)
    assert ds.ids[0] == "2021-01-10" and len(set(ds.ids.tolist())) == n
    assert ds.extra_meta["split"] == "temporal" and ds.extra_meta["split_gap"] == cfg.horizon
    nan = np.isnan(ds.series)
    assert 0.005 < nan.mean() < 0.05 and (nan == nan[:, :1]).all()  # an outage hides every channel
    for task, (low, high) in trend.POSITIVE_RATE_RANGE.items():
        if task in ds.labels:
            assert low <= ds.labels[task].mean() <= high, task


def test_channel_groups_and_window_options():
    ds = dataset(**SMALL, series_channels=("activity",), image_days=3, text_days=2, n_styles=2)
    assert ds.channels == ["posts", "likes", "shares"] and ds.series.shape[1] == 3
    assert sorted(ds.labels) == ["hot_boho", "hot_minimal"]
    assert all(t.count(" | ") >= 1 for t in ds.text[:20])


# ------------------------------------------------------------------------------------------ no leakage
def test_windows_use_days_up_to_t_and_labels_day_t_plus_horizon():
    cfg = config(**SMALL, image_days=2)
    ds = trend.generate(cfg, progress=False)
    stream = trend.simulate_stream(cfg)
    t = np.asarray(ds.extra_meta["time_index"])
    assert np.array_equal(t, np.arange(cfg.length - 1, cfg.n_days - cfg.horizon))
    label_day = t + cfg.horizon
    assert (label_day > t).all() and label_day.max() == cfg.n_days - 1
    for i in (0, 37, ds.n - 1):
        d = t[i]
        window = stream.daily[d - cfg.length + 1: d + 1].T
        assert np.array_equal(ds.series[i], window.astype(np.float32), equal_nan=True)
        count = stream.posts[d - 1: d + 1].sum()
        picture = stream.picture_sum[d - 1: d + 1].sum(axis=0) / max(count, 1)
        np.testing.assert_allclose(ds.images[i], picture, atol=1e-5)
        assert ds.text[i] == (" | ".join(stream.captions[d]) if stream.observed[d] and stream.posts[d]
                              else (trend.NO_POSTS if stream.observed[d] else trend.OUTAGE))
        for j, s in enumerate(cfg.styles):
            assert ds.labels[f"hot_{s.name}"][i] == int(stream.z[d + cfg.horizon, j] > cfg.hot_threshold)
        if stream.posts[d]:  # mention channels are read off the caption text
            shares = trend.caption_mentions(stream.captions[d], cfg.styles).mean(axis=0)
            np.testing.assert_allclose(ds.series[i, 3:3 + cfg.n_styles, -1], shares, rtol=1e-6)
    # a longer stream changes nothing in the windows both have: inputs never see later days
    longer = dataset(n_days=SMALL["n_days"] + 40, image_days=2)
    m = ds.n
    assert np.array_equal(longer.series[:m], ds.series, equal_nan=True)
    assert np.array_equal(longer.images[:m], ds.images)
    assert longer.text[:m] == ds.text
    assert all((longer.labels[k][:m] == ds.labels[k]).all() for k in ds.labels)


def docs_caption_ceiling() -> float:
    """The trend row's leak ceiling in the dataset table of docs/datasets.md: "caption bag-of-words ≤ 0.72"."""
    (last,) = [last for d, _, last in docs_dataset_table() if d == "trend"]
    prefix = "caption bag-of-words ≤ "
    assert last.startswith(prefix), last
    return float(last[len(prefix):])


def test_last_day_captions_do_not_give_the_label_away():
    ds, cfg = default(), config()
    ceiling = docs_caption_ceiling()
    assert cfg.text_days == 1
    assert not any(word in t.lower() for t in ds.text for word in ("hot", "trending", "popular"))
    split = split_of(ds, cfg)
    train, held = split == TRAIN, (split == VAL) | (split == TEST)
    texts = np.asarray(ds.text, dtype=object)
    bow = CountVectorizer(ngram_range=(1, 2), min_df=2).fit(texts[train])
    x = bow.transform(texts)
    for task, y in ds.labels.items():
        model = LogisticRegression(C=0.3, max_iter=2000).fit(x[train], y[train])
        auc = roc_auc_score(y[held], model.predict_proba(x[held])[:, 1])
        assert auc <= ceiling, f"{task}: the last day's captions alone reach AUC {auc:.4f} > docs/datasets.md's {ceiling}"
        # each style's own mention share on the last day is informative but far from decisive
        mention = np.nan_to_num(ds.series[:, ds.channels.index(f"mention_{task[4:]}"), -1])
        assert 0.55 < roc_auc_score(y, mention) < 0.9, task


def test_pictures_show_their_style():
    styles = trend.STYLES[:4]
    rng = np.random.default_rng(0)
    y = rng.integers(0, len(styles), size=300)
    pictures = render_posts(rng, y, [s.look for s in styles], 32)
    assert pictures.shape == (300, 3, 32, 32) and pictures.dtype == np.float32
    x = pictures.reshape(300, 3, 8, 4, 8, 4).mean(axis=(3, 5)).reshape(300, -1)
    x = (x - x[:200].mean(axis=0)) / (x[:200].std(axis=0) + 1e-9)
    model = LogisticRegression(C=0.05, max_iter=3000).fit(x[:200], y[:200])
    accuracy = float((model.predict(x[200:]) == y[200:]).mean())
    assert accuracy > 0.45, f"style from pictures: accuracy {accuracy:.2f} (chance 0.25)"
    with pytest.raises(HmsparError, match="style codes"):
        render_posts(rng, np.array([4]), [s.look for s in styles], 32)


# ------------------------------------------------------------------------------------------ temporal split
def test_temporal_split_hand_computed():
    key = np.arange(20)
    codes = temporal_split(key, 0.2, 0.2, gap=2)
    expected = [TRAIN] * 10 + [DROPPED] * 2 + [VAL] * 2 + [DROPPED] * 2 + [TEST] * 4
    assert codes.dtype == np.int8 and codes.tolist() == expected
    order = np.random.default_rng(0).permutation(20)
    assert temporal_split(key[order], 0.2, 0.2, gap=2).tolist() == np.asarray(expected)[order].tolist()
    assert temporal_split(key, 0.2, 0.2).tolist() == [TRAIN] * 12 + [VAL] * 4 + [TEST] * 4
    with pytest.raises(HmsparError, match="gap must be a non-negative integer"):
        temporal_split(key, 0.2, 0.2, gap=-1)
    with pytest.raises(HmsparError, match="split 'val' is empty"):
        temporal_split(key, 0.2, 0.2, gap=4)
    with pytest.raises(HmsparError, match="order_key must be a 1-d array of integers"):
        temporal_split(key.astype(float), 0.2, 0.2)


def test_temporal_split_of_trend_is_ordered_disjoint_and_keeps_the_gap():
    ds, cfg = default(), config()
    t = np.asarray(ds.extra_meta["time_index"])
    h = cfg.horizon
    split = split_of(ds, cfg)
    parts = {code: t[split == code] for code in (TRAIN, VAL, TEST)}
    assert all(p.size for p in parts.values())
    assert parts[TRAIN].max() + h < parts[VAL].min() and parts[VAL].max() + h < parts[TEST].min()
    assert (split == DROPPED).sum() == 2 * h
    assert parts[TEST].size == round(cfg.test_fraction * ds.n)
    for y in ds.labels.values():  # the loader needs both classes in every part (default seed)
        assert all(np.unique(y[split == code]).size == 2 for code in (TRAIN, VAL, TEST))


def test_convert_keeps_pictures_and_temporal_split(tmp_path, monkeypatch):
    from hmspar.convert import TextConfig, convert_dataset
    from hmspar.data.loader import load_task
    from hmspar.modalities import text as text_module

    class FakeEncoder:  # the sentence model is covered by its own tests; here only the data path matters
        def __init__(self, model_path=None, batch_size=256):
            pass

        def encode(self, texts, progress=False):
            return np.array([[len(t), t.count("|")] for t in texts], dtype=np.float32)

    monkeypatch.setattr(text_module, "TextEncoder", FakeEncoder)
    ds, cfg = default(), config()
    ds.save(tmp_path / "raw")
    back = RawDataset.load(tmp_path / "raw")
    assert back.extra_meta["time_index"] == ds.extra_meta["time_index"] and back.extra_meta["split"] == "temporal"
    assert np.array_equal(back.images, ds.images)
    meta = convert_dataset(tmp_path / "raw", tmp_path / "features", cfg, TextConfig(), progress=False)
    assert meta["image_source"] == "dataset" and meta["image_size"] == 32
    assert np.array_equal(np.load(tmp_path / "features" / "image.npy"), ds.images)
    splits = np.load(tmp_path / "features" / "splits.npz")
    expected = split_of(ds, cfg)
    assert all(np.array_equal(splits[task], expected) for task in ds.labels)
    parts = load_task(tmp_path / "features", "hot_boho", modalities=("series", "image", "text", "static"))
    assert sum(len(p) for p in parts.values()) == ds.n - 2 * cfg.horizon
    assert parts["train"].ids[-1] < parts["val"].ids[0] < parts["test"].ids[0]  # ISO dates sort by time
    # weekday and month as sin/cos pairs (hmspar.modalities.static.CYCLES), not 7 + 12 one-hot columns
    assert parts["train"].X["static"].shape[1] == 2 + 2 and parts["val"].X["image"].shape[1:] == (3, 32, 32)


# ------------------------------------------------------------------------------------------ determinism
def test_same_seed_same_data_other_seed_other_data():
    a = trend.generate(config(**SMALL), progress=False)
    b = dataset(**SMALL)
    c = trend.generate(config(**SMALL, seed=5), progress=False)
    assert np.array_equal(a.series, b.series, equal_nan=True) and np.array_equal(a.images, b.images)
    assert a.text == b.text and a.static.equals(b.static) and (a.ids == b.ids).all()
    assert all((a.labels[t] == b.labels[t]).all() for t in a.labels)
    assert not np.array_equal(a.series, c.series, equal_nan=True) and a.text != c.text
    assert any((a.labels[t] != c.labels[t]).any() for t in a.labels)
