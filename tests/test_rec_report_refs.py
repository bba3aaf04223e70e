"""The rec leaderboard's references and comparisons (hmspar/rec/report.py), torch-free on a small simulated shop:
the best of ``rec.evaluate.reference_models`` is picked on validation, every other model is compared with it by
the bootstrap over users and seeds, and the tables show per-seed values and per-seed differences."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hmspar.config import build
from hmspar.rec import shop
from hmspar.rec.convert import TextConfig, convert
from hmspar.rec.data import ProtocolConfig
from hmspar.rec.report import RecEvaluateConfig, evaluate_dataset, render_table
from hmspar.rec.runner import recommend
from test_rec_data import stub_embed

MODELS = ["mostpop", "samecat", "ease", "recent", "ranker"]
PROTOCOL = {"min_interactions": 5, "save_k": 20, "top_k": [10, 20], "n_negatives": 20}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A small simulated shop, converted: ``root / "features" / "small"``."""
    root = tmp_path_factory.mktemp("rec")
    raw, feats = root / "raw", root / "features" / "small"
    raw.mkdir()
    feats.mkdir(parents=True)
    shop.generate(shop.Config(seed=9, n_users=600, n_items=200, n_categories=8, image_size=8), raw)
    convert(raw, feats, TextConfig(), embed=stub_embed)
    return root


@pytest.fixture(scope="module")
def board(root):
    feats = root / "features" / "small"
    params = {"seeds": [0, 1, 2], "rec": {"protocol": PROTOCOL, "recommenders": {m: {} for m in MODELS}}}
    for m in MODELS:
        recommend("small", m, params, root / "features", root / "results", root / "timings")
    cfg = build(RecEvaluateConfig, {"bootstrap_samples": 200, "curve_ks": [1, 10], "mmr_models": []}, "rec.evaluate")
    entry, _ = evaluate_dataset("small", MODELS, feats, root / "results", ProtocolConfig(**PROTOCOL), cfg)
    return entry


def test_the_best_reference_is_picked_on_validation_and_every_other_model_compared(board):
    cfg = RecEvaluateConfig()
    assert cfg.reference_models == ["mostpop", "itemknn", "ease", "recent", "ranker"]
    refs = [m for m in cfg.reference_models if m in MODELS]
    val = {m: board["models"][m]["val_ndcg@10"]["mean"] for m in refs}
    assert board["best_reference"] == max(refs, key=lambda m: (val[m], m))
    assert board["best_reference"] in ("recent", "ranker")                 # repeats and sessions pay on the shop
    assert set(board["comparisons"]) == set(MODELS) - {board["best_reference"]}  # references too, samecat too
    for m, c in board["comparisons"].items():
        assert c["versus"] == board["best_reference"] and c["seeds_resampled"]
        assert set(c["per_seed_differences"]) == {"0", "1", "2"}
        per = [board["models"][m]["full"]["ndcg@10"]["per_seed"][s]
               - board["models"][c["versus"]]["full"]["ndcg@10"]["per_seed"][s] for s in range(3)]
        np.testing.assert_allclose(list(c["per_seed_differences"].values()), per, atol=1e-12)
        assert c["ci_low"] <= c["difference"] <= c["ci_high"]
    assert board["comparisons"]["mostpop"]["ci_high"] < 0                  # popularity alone is clearly worse


def test_the_tables_show_per_seed_values_and_differences(board):
    text = render_table({"small": {**board, "n_negatives": 20}})
    assert "| NDCG@10 per seed |" in text
    nd = board["models"]["ranker"]["full"]["ndcg@10"]["per_seed"]
    assert f"0: {nd[0]:.4f}, 1: {nd[1]:.4f}, 2: {nd[2]:.4f}" in text
    assert "paired bootstrap over users and seeds" in text
    assert "| per-seed differences | their std |" in text
    c = board["comparisons"]["mostpop"]
    row = next(line for line in text.splitlines() if line.startswith("| mostpop | ") and "[" in line and "0: " in line)
    assert f"0: {c['per_seed_differences']['0']:+.4f}" in row and f"{c['per_seed_difference_std']:.4f}" in row
    json.dumps(board)                                                      # the leaderboard stays JSON


def test_a_reference_fitted_on_validation_is_not_eligible_as_the_best(root, tmp_path_factory):
    """ranker with fit_on: validation has an optimistic validation score: compared, never the reference."""
    feats = root / "features" / "small"
    params = {"seeds": [0], "rec": {"protocol": PROTOCOL, "recommenders": {"ranker": {"fit_on": "validation"},
                                                                           "ease": {}}}}
    out = tmp_path_factory.mktemp("val")
    for m in ("ranker", "ease"):
        recommend("small", m, params, root / "features", out, out / "timings")
    cfg = build(RecEvaluateConfig, {"bootstrap_samples": 50, "curve_ks": [1, 10], "mmr_models": []}, "rec.evaluate")
    entry, _ = evaluate_dataset("small", ["ease", "ranker"], feats, out, ProtocolConfig(**PROTOCOL), cfg)
    assert entry["models"]["ranker"]["val_ndcg@10"]["mean"] > entry["models"]["ease"]["val_ndcg@10"]["mean"]
    assert entry["optimistic_references"] == ["ranker"] and entry["best_reference"] == "ease"
    assert set(entry["comparisons"]) == {"ranker"}


def test_slices_partition_the_targets_and_carry_intervals(root, board):
    """new + tail = cold, cold + warm = all, short + long = all; each slice's mean equals the per-user mean of
    its targets, inside its bootstrap interval; the table prints the interval."""
    from hmspar.rec.data import load
    data = load(root / "features" / "small", ProtocolConfig(**PROTOCOL))
    counts = data.train_counts()[data.test.targets]
    sizes = board["slice_sizes"]
    n = board["n_users"]
    assert sizes["new_items"] == int((counts == 0).sum()) and sizes["cold_items"] == board["n_cold_targets"]
    assert sizes["new_items"] + sizes["tail_items"] == sizes["cold_items"]
    assert sizes["cold_items"] + sizes["warm_items"] == n == sizes["short_users"] + sizes["long_users"]
    for m in MODELS:
        for name, st in board["models"][m]["slices"].items():
            if sizes[name.split("/")[0]] == 0:
                assert st["mean"] is None and st["ci_low"] is None
                continue
            assert st["n_targets"] == sizes[name.split("/")[0]]
            assert st["ci_low"] - 1e-12 <= st["mean"] <= st["ci_high"] + 1e-12
    warm = board["models"]["mostpop"]["slices"]["warm_items/ndcg@10"]
    ranks = np.load(root / "results" / "small" / "mostpop" / "seed_0" / "test_rank.npy")
    nd = np.where(ranks < 10, 1.0 / np.log2(ranks + 2.0), 0.0)
    assert warm["per_seed"][0] == pytest.approx(float(nd[counts >= 5].mean()))
    table = render_table({"small": board})
    assert "| new items | tail items |" in table and f"new items {sizes['new_items']}" in table


def test_the_oracle_table_reaches_the_sanity_section(tmp_path, board):
    """A simulator's oracle table (raw meta.json) is read into ``sanity.oracle`` and printed; a dataset without
    one (the shop, an imported log) gets none."""
    from hmspar.rec.report import oracle_figures
    terms = {"full": 0.3, "no_style": 0.2, "items_by_content": 0.21}
    meta = {"oracle": {"test": {"n_targets": 10, "n_new_item_targets": 2, "ndcg@10": terms,
                                "new_item_ndcg@10": {k: v / 3 for k, v in terms.items()},
                                "warm_item_ndcg@10": {k: v * 1.1 for k, v in terms.items()}}},
            "content": {"style_r2_from_content": 0.82}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    oracle = oracle_figures(tmp_path)
    assert oracle["test"]["ndcg@10"] == terms and oracle["content"] == meta["content"]
    assert oracle_figures(tmp_path / "absent") is None
    (tmp_path / "meta.json").write_text(json.dumps({"name": "shop"}))
    assert oracle_figures(tmp_path) is None
    entry = {**board, "sanity": {**board["sanity"], "oracle": oracle}}
    text = render_table({"small": entry})
    assert "| oracle | all targets | new items | warm items |" in text
    assert "| no_style | 0.200 | 0.067 | 0.220 |" in text and "style R² 0.82" in text
    assert "Oracle" not in render_table({"small": board})
