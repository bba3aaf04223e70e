"""The shop simulator (determinism, structure, leak-guard ceilings), the interaction-log importer (and its
bad-input messages) and the convert step, on small data without the text encoder."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.rec import importer, shop
from hmspar.rec.convert import TextConfig, convert
from hmspar.rec.data import ProtocolConfig, load
from hmspar.rec.datasets import dataset_config, generate
from hmspar.rec.report import sanity
from hmspar.rec.schema import read_events, read_items, read_meta

STUB_DIM = 4


def stub_embed(texts):
    """Deterministic stand-in for MiniLM, so these tests stay fast: each text's vector is drawn from a
    generator seeded by the CRC-32 of its UTF-8 bytes (not ``hash()``, which is salted per process), so the
    same text gets the same vector in every process and every run."""
    out = np.zeros((len(texts), STUB_DIM), np.float32)
    for i, t in enumerate(texts):
        out[i] = np.random.default_rng(zlib.crc32(t.encode("utf-8"))).standard_normal(STUB_DIM)
    return out


def test_stub_embed_is_the_same_in_every_process():
    """Two fresh interpreters with different hash salts give the vectors this process gives."""
    texts = ["Red dress", "Blue coat", "Café mug", ""]
    script = ("import json, sys; from test_rec_data import stub_embed; "
              "json.dump(stub_embed(json.loads(sys.argv[1])).tolist(), sys.stdout)")
    here = stub_embed(texts)
    assert len({tuple(v) for v in here}) == len(texts)                 # distinct texts, distinct vectors
    for salt in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": salt,
               "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
        proc = subprocess.run([sys.executable, "-c", script, json.dumps(texts)], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        np.testing.assert_array_equal(np.array(json.loads(proc.stdout), np.float32), here)


def small_shop(tmp_path, **kw):
    cfg = shop.Config(seed=5, n_users=kw.pop("n_users", 1500), n_items=kw.pop("n_items", 400), image_size=8, **kw)
    raw = tmp_path / "raw"
    raw.mkdir(parents=True)
    shop.generate(cfg, raw)
    return cfg, raw


def test_shop_is_deterministic_and_well_formed(tmp_path):
    cfg, raw = small_shop(tmp_path, n_users=300, n_items=120, n_categories=6)
    again = tmp_path / "again"
    again.mkdir()
    shop.generate(cfg, again)
    for name in ("events_user.npy", "events_item.npy", "events_time.npy", "pictures.npy", "items.parquet", "meta.json"):
        assert (raw / name).read_bytes() == (again / name).read_bytes(), name
    user, item, time = read_events(raw)
    items, pictures = read_items(raw)
    assert pictures.shape == (120, 3, 8, 8) and pictures.dtype == np.uint8
    assert item.min() >= 0 and item.max() < 120 and np.all(np.diff(user) >= 0)
    same_user = user[1:] == user[:-1]
    assert np.all(np.diff(time)[same_user] >= 0)                     # time-ordered per user
    assert np.all(items["first_time"].to_numpy()[item] <= time + 1e-9)  # nobody buys an item before it exists
    assert np.bincount(user).min() >= 3
    assert items["text"].nunique() > 100                              # varied wording
    other = dataclasses.replace(cfg, seed=6)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    shop.generate(other, other_dir)
    assert (raw / "events_item.npy").read_bytes() != (other_dir / "events_item.npy").read_bytes()


def test_fit_period_keeps_heavy_users_inside_the_period(tmp_path):
    """Long histories: without fit_period heavy users' time lines run far past `days`; with it they end
    (nearly) inside, with the same event counts; the default leaves fit_period out of meta.json."""
    shares, counts = {}, {}
    for fit in (False, True):
        cfg, raw = small_shop(tmp_path / str(fit), n_users=300, n_items=120, mean_events=80.0, max_events=400,
                              fit_period=fit)
        user, _, time = read_events(raw)
        shares[fit], counts[fit] = float((time > cfg.days).mean()), np.bincount(user)
        assert ("fit_period" in read_meta(raw)["config"]) == fit
    assert shares[False] > 0.2 and shares[True] < 0.02                # measured: 0.31 and 0.005
    np.testing.assert_array_equal(counts[False], counts[True])
    assert counts[True].max() > 300 and np.median(counts[True]) > 40


def test_shop_config_errors_name_the_key():
    with pytest.raises(HmsparError, match=r"rec.datasets.shop.n_categories: must lie in \[1, 20\]"):
        dataset_config("shop", {"rec": {"datasets": {"shop": {"kind": "shop", "seed": 1, "n_categories": 30}}}})
    with pytest.raises(HmsparError, match="rec.datasets.shop.n_user: unknown key"):
        dataset_config("shop", {"rec": {"datasets": {"shop": {"kind": "shop", "seed": 1, "n_user": 3}}}})
    with pytest.raises(HmsparError, match="unknown rec dataset 'nope'"):
        dataset_config("nope", {"rec": {"datasets": {"shop": {"seed": 1}}}})


def test_leak_guard_shallow_signals_stay_below_their_ceilings(tmp_path):
    """Popularity alone and 'same category as the last item' alone must not give the answer away."""
    _, raw = small_shop(tmp_path)
    feats = tmp_path / "features"
    feats.mkdir()
    meta = convert(raw, feats, TextConfig(), embed=stub_embed)
    assert meta["repeat_purchases"]                                  # consumables are bought again
    data = load(feats, ProtocolConfig())
    s = sanity(data)
    assert s["popularity_ndcg@10"] < 0.10
    assert s["same_category_ndcg@10"] < 0.20
    assert s["same_category_rate"] < 0.60
    assert 0.02 < s["repeat_rate"] < 0.40
    assert (data.train_counts()[data.test.targets] < 5).mean() > 0.003  # some test targets are cold


def write_csv(path, text):
    path.write_text(text)
    return str(path)


LOG = """u,i,t,r
a,x,2024-01-01,5
a,y,2024-01-02,4
a,x,2024-01-02,4
a,x,2024-01-02,4
b,y,2024-01-03T10:00:00,2
b,z,2024-01-04,5
c,z,2024-01-05,5
"""


def import_cfg(tmp_path, **kw):
    section = {"kind": "interactions", "path": kw.pop("path", write_csv(tmp_path / "log.csv", LOG)),
               "columns": {"user": "u", "item": "i", "time": "t", "rating": "r"}, **kw}
    return dataset_config("mylog", {"rec": {"datasets": {"mylog": section}}})


def test_importer_dedup_rating_threshold_and_items(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    items = write_csv(tmp_path / "items.csv", "sku,title,cat,p\nx,Red dress,dress,10\ny,Blue coat,coat,20\nz,Socks,socks,3\n")
    meta = importer.generate(import_cfg(tmp_path, rating_threshold=3, items_path=items,
                                        item_columns={"item": "sku", "text": "title", "category": "cat", "price": "p"}), out)
    user, item, time = read_events(out)
    table, _ = read_items(out)
    assert meta["n_events"] == 5                                      # one exact duplicate and b's 2-star row gone
    assert table["text"].tolist() == ["Red dress", "Blue coat", "Socks"] and table["price"].tolist() == [10, 20, 3]
    assert time.min() == pytest.approx(pd.Timestamp("2024-01-01").value / 86400e9)
    meta = importer.generate(import_cfg(tmp_path, dedup="user_item"), out)
    assert meta["n_events"] == 5                                      # a-x kept once; b-y (2 stars) kept: no threshold
    meta = importer.generate(import_cfg(tmp_path, k_core=2), out)
    assert meta["n_users"] == 1 and meta["n_items"] == 1              # iterated: c, z, b, y go; a-x-x stays


def test_importer_reads_unix_seconds_and_pictures(tmp_path):
    from PIL import Image

    log = write_csv(tmp_path / "unix.csv", "u,i,t,r\na,x,1700000000,1\na,y,1700086400,1\n")
    Image.new("RGB", (20, 20), (255, 0, 0)).save(tmp_path / "x.png")
    items = write_csv(tmp_path / "items.csv", "sku,img\nx,x.png\ny,\n")
    out = tmp_path / "out"
    out.mkdir()
    meta = importer.generate(import_cfg(tmp_path, path=log, items_path=items, image_size=8,
                                        item_columns={"item": "sku", "image": "img"}), out)
    _, _, time = read_events(out)
    _, pictures = read_items(out)
    assert np.diff(time).tolist() == [pytest.approx(1.0)]
    assert meta["has_pictures"] and pictures[0, 0].min() == 255 and pictures[0, 1].max() == 0
    assert pictures[1].max() == 0                                     # no picture: zeros


@pytest.mark.parametrize("text, kw, message", [
    ("u,i,t,r\n", {}, "the file has a header but no rows|no data rows|empty"),
    ("", {}, "the file is empty"),
    ("u,item,t,r\na,x,2024-01-01,1\n", {}, "missing column 'i' \\(params key rec.datasets.mylog.columns.item\\)"),
    ("u,i,t,r\na,x,2024-01-01,1\na,y,yesterday,1\n", {}, "row 2: unparseable timestamp 'yesterday' in column 't'"),
    ("u,i,t,r\na,x,2024-01-01,1\n", {"time_format": "unix"}, "row 1: unparseable timestamp '2024-01-01'"),
    # one bad value among good ones is named at its own row, whichever kind the good ones are
    ("u,i,t,r\na,x,881250949,1\na,y,notatime,1\na,z,881250999,1\n", {},
     r"row 2: unparseable timestamp 'notatime' in column 't' \(expected Unix seconds, like most of the column\)"),
    ("u,i,t,r\na,x,2024-01-01,1\na,y,2024-01-02,1\na,z,881250999,1\n", {},
     r"row 3: unparseable timestamp '881250999' in column 't' \(expected an ISO date"),
    ("u,i,t,r\na,x,2024-01-01,high\n", {"rating_threshold": 3}, "row 1: rating 'high' in column 'r' is not a number"),
])
def test_importer_bad_input_messages(tmp_path, text, kw, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(HmsparError, match=message):
        importer.generate(import_cfg(tmp_path, path=str(path), **kw), out)


def test_importer_item_table_missing_items(tmp_path):
    items = write_csv(tmp_path / "items.csv", "sku,title\nx,Red dress\n")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(HmsparError, match=r"items.csv: the item table misses 2 of the 3 items of the log, e.g. 'y'"):
        importer.generate(import_cfg(tmp_path, items_path=items, item_columns={"item": "sku", "text": "title"}), out)
    with pytest.raises(HmsparError, match="rec.datasets.mylog.path: file 'nothere.csv' not found"):
        importer.generate(import_cfg(tmp_path, path="nothere.csv"), out)
    with pytest.raises(HmsparError, match="rec.datasets.mylog.rating_threshold: needs columns.rating|rating_threshold needs"):
        dataset_config("mylog", {"rec": {"datasets": {"mylog": {"kind": "interactions", "path": "x.csv",
                                                                "rating_threshold": 3}}}})


def test_convert_orders_sequences_and_pads_item_tables(tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    importer.generate(import_cfg(tmp_path), out)
    feats = tmp_path / "f"
    feats.mkdir()
    meta = convert(out, feats, TextConfig(), embed=stub_embed)
    items = np.load(feats / "seq_items.npy")
    offsets = np.load(feats / "seq_offsets.npy")
    assert offsets.tolist() == [0, 3, 5, 6]                           # a: x, y, x (exact dup dropped); b: y, z; c: z
    assert items.tolist() == [1, 2, 1, 2, 3, 3]                       # a's tie on 01-02 keeps the log's row order
    assert np.load(feats / "text.npy").shape == (4, STUB_DIM) and not np.load(feats / "text.npy")[0].any()
    assert meta["repeat_purchases"] is True                           # a bought x twice
    assert build(TextConfig, {"batch_size": 8}, "text").batch_size == 8
