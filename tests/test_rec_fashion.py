"""The ``fashion`` simulator (issue 24): determinism, the capped timeline, new arrivals among the targets,
content that shows the style and causes appeal, the oracle table, and the shop's leak guards."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hmspar.errors import HmsparError
from hmspar.rec import fashion
from hmspar.rec.convert import TextConfig, convert
from hmspar.rec.data import ProtocolConfig, load
from hmspar.rec.datasets import dataset_config
from hmspar.rec.report import sanity
from hmspar.rec.schema import read_events, read_items, read_meta
from test_rec_data import stub_embed


def small_fashion(tmp_path, **kw):
    cfg = fashion.Config(seed=kw.pop("seed", 7), n_users=kw.pop("n_users", 1500), n_items=kw.pop("n_items", 4000),
                         image_size=kw.pop("image_size", 16), **kw)
    raw = tmp_path / "raw"
    raw.mkdir(parents=True)
    meta = fashion.generate(cfg, raw)
    return cfg, raw, meta


@pytest.fixture(scope="module")
def shop_1500(tmp_path_factory):
    return small_fashion(tmp_path_factory.mktemp("fashion"))


def test_deterministic_well_formed_and_capped(tmp_path, shop_1500):
    cfg, raw, meta = shop_1500
    again = tmp_path / "again"
    again.mkdir()
    fashion.generate(cfg, again)
    for name in ("events_user.npy", "events_item.npy", "events_time.npy", "pictures.npy", "items.parquet", "meta.json"):
        assert (raw / name).read_bytes() == (again / name).read_bytes(), name
    user, item, time = read_events(raw)
    items, pictures = read_items(raw)
    assert pictures.shape == (cfg.n_items, 3, 16, 16) and pictures.dtype == np.uint8
    assert np.all(np.diff(user) >= 0) and np.all(np.diff(time)[user[1:] == user[:-1]] > 0)
    assert time.max() <= cfg.days                                        # the timeline is capped
    first = items["first_time"].to_numpy()
    assert np.all(first[item] <= time)                                   # nobody buys an item before it exists
    assert 0.25 < (first == 0).mean() < 0.35                             # launch_fraction 0.3
    assert first.max() > 0.9 * cfg.days                                  # arrivals through the whole period
    assert meta["n_events"] == user.size and np.unique(user).size == cfg.n_users
    assert items["text"].nunique() > 300
    # another seed, another shop (at a tenth of the size: two small shops of seeds 7 and 8)
    small = dataclasses.replace(cfg, n_users=150, n_items=400)
    for seed in (7, 8):
        (tmp_path / f"seed{seed}").mkdir()
        fashion.generate(dataclasses.replace(small, seed=seed), tmp_path / f"seed{seed}")
    assert (tmp_path / "seed7/events_item.npy").read_bytes() != (tmp_path / "seed8/events_item.npy").read_bytes()


def test_the_shop_of_kind_shop_is_untouched():
    """``kind: fashion`` is a new kind: ``kind: shop`` still builds the old simulator's config."""
    old = dataset_config("shop", {"rec": {"datasets": {"shop": {"kind": "shop", "seed": 1}}}})
    new = dataset_config("f", {"rec": {"datasets": {"f": {"kind": "fashion", "seed": 1}}}})
    assert type(old).__module__ == "hmspar.rec.shop" and type(new) is fashion.Config
    with pytest.raises(HmsparError, match=r"rec.datasets.f.launch_fraction: must lie in \(0, 1\]"):
        dataset_config("f", {"rec": {"datasets": {"f": {"kind": "fashion", "seed": 1, "launch_fraction": 0}}}})
    with pytest.raises(HmsparError, match="rec.datasets.f.fit_period: unknown key"):
        dataset_config("f", {"rec": {"datasets": {"f": {"kind": "fashion", "seed": 1, "fit_period": True}}}})


def test_new_items_are_a_stated_share_of_the_targets(shop_1500):
    _, _, meta = shop_1500
    for split in ("val", "test"):
        entry = meta["oracle"][split]
        assert entry["n_targets"] > 800
        assert 0.05 <= entry["new_item_share"] <= 0.25, (split, entry["new_item_share"])


def test_oracle_table_orders_what_each_term_is_worth(shop_1500):
    """The full oracle beats each ablated one; knowing items only by their content keeps most of it, and on
    new items (no training interaction) it is far above zero: content can rank them."""
    _, _, meta = shop_1500
    test = meta["oracle"]["test"]
    full = test["ndcg@10"]["full"]
    for variant in fashion.ORACLE_VARIANTS[1:]:
        assert test["ndcg@10"][variant] < full, variant
    assert test["new_item_ndcg@10"]["items_by_content"] > 0.05
    assert test["ndcg@10"]["items_by_content"] > 0.6 * full


def test_content_shows_most_of_the_style_and_part_of_the_appeal(shop_1500):
    _, raw, meta = shop_1500
    assert 0.75 < meta["content"]["style_r2_from_content"] < 0.95
    assert 0.35 < meta["content"]["popularity_r2_from_content"] < 0.65


def test_pictures_show_the_visible_traits():
    """A ridge probe on the raw pixels of half the items predicts tone and cut of the other half (R² 0.26
    and 0.27 measured); print scale, a frequency, is not linear in pixels and is the faintest trait: the
    share of high spatial frequencies falls as the print gets bolder (Spearman -0.11 measured, 32 px)."""
    from scipy.stats import spearmanr

    cat, _, pictures = fashion.make_catalogue(fashion.Config(seed=3, n_users=10, n_items=1200, image_size=32))
    small = pictures.reshape(len(pictures), 3, 16, 2, 16, 2).mean(axis=(3, 5)) / 255.0
    x = np.hstack([small.reshape(len(small), -1), np.ones((len(small), 1))])
    half = len(x) // 2
    for j, name in enumerate(fashion.TRAIT_NAMES[:2]):
        y = cat.traits[:, j]
        coef = np.linalg.solve(x[:half].T @ x[:half] + 10.0 * np.eye(x.shape[1]), x[:half].T @ y[:half])
        r2 = 1 - (y[half:] - x[half:] @ coef).var() / y[half:].var()
        assert r2 > 0.15, (name, r2)
    spectrum = np.abs(np.fft.rfft2(pictures.astype(np.float64).mean(axis=1)))
    radius = np.hypot(np.fft.fftfreq(32)[:, None], np.fft.rfftfreq(32)[None, :])
    high = (spectrum * (radius > 0.25)).sum(axis=(1, 2)) / (spectrum * (radius > 0.05)).sum(axis=(1, 2))
    assert spearmanr(high, cat.traits[:, 2]).statistic < -0.06


def test_leak_guard_shallow_signals_stay_below_their_ceilings(tmp_path, shop_1500):
    _, raw, _ = shop_1500
    feats = tmp_path / "features"
    feats.mkdir()
    meta = convert(raw, feats, TextConfig(), embed=stub_embed)
    assert meta["repeat_purchases"]
    data = load(feats, ProtocolConfig())
    s = sanity(data)
    # the simulator's new-item share is the protocol's: test targets with no training interaction
    cold = (data.train_counts()[data.test.targets] == 0).mean()
    assert cold == pytest.approx(read_meta(raw)["oracle"]["test"]["new_item_share"], abs=1e-3)
    assert s["popularity_ndcg@10"] < 0.10
    assert s["same_category_ndcg@10"] < 0.20
    assert 0.02 < s["repeat_rate"] < 0.40
    assert read_meta(raw)["kind"] == "fashion"
