"""``python -m hmspar.search --track rec``: the classic recommenders get the same number of trials on a small
simulated shop, each scored on validation NDCG@10 (the test histories never reach a fit or a score); the same
seed proposes the same trials; a trial starts from the dataset's own settings, and the printed settings land
under ``rec.recommenders.<model>.by_dataset.<dataset>``."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from hmspar.errors import HmsparError
from hmspar.rec import evaluate as ev
from hmspar.rec import shop
from hmspar.rec.convert import TextConfig, convert
from test_rec_data import stub_embed

pytest.importorskip("optuna")

from hmspar import search as hsearch  # noqa: E402

PROTOCOL = {"min_interactions": 5, "save_k": 20, "top_k": [10], "n_negatives": 20}


@pytest.fixture(scope="module")
def features_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("recsearch")
    raw, feats = root / "raw", root / "features" / "small"
    raw.mkdir()
    feats.mkdir(parents=True)
    shop.generate(shop.Config(seed=4, n_users=400, n_items=150, n_categories=6, image_size=8), raw)
    convert(raw, feats, TextConfig(), embed=stub_embed)
    return root / "features"


def params() -> dict:
    return {"seeds": [0],
            "rec": {"datasets": {"small": {"kind": "shop"}}, "protocol": PROTOCOL,
                    "recommenders": {"ease": {"l2": 500.0}, "itemknn": {"neighbours": 100, "shrink": 10.0}}},
            "search": {"trials": 3, "seed": 1, "rec_models": ["ease", "itemknn"],
                       "rec_spaces": {"ease": {"l2": {"low": 10.0, "high": 2000.0, "log": True}},
                                      "itemknn": {"neighbours": {"low": 5, "high": 100},
                                                  "shrink": {"low": 0.0, "high": 50.0}}}}}


def test_equal_trials_on_validation_only_same_seed_same_trials(features_root, tmp_path, monkeypatch):
    ranked = []
    original = ev.rank_batched

    def spy(score_fn, histories, *args, **kwargs):
        ranked.append(histories.targets.copy())
        return original(score_fn, histories, *args, **kwargs)

    monkeypatch.setattr(ev, "rank_batched", spy)
    p = params()
    results = hsearch.search(p, track="rec", storage_dir=tmp_path / "s", report_dir=tmp_path / "b", progress=False,
                             rec_features_root=features_root)
    assert [(r["model"], r["run"], r["trials"], r["objective"]) for r in results] == [
        ("ease", "small", 3, "ndcg@10"), ("itemknn", "small", 3, "ndcg@10")]
    train, items, val = hsearch.load_rec_search_data(features_root / "small", PROTOCOL)
    assert len(ranked) == 6 and all(np.array_equal(t, val.targets) for t in ranked)   # validation only
    for r in results:                                                      # the best value is a refit's validation
        section = {**p["rec"]["recommenders"][r["model"]], **r["best_params"]}   # (no dotted keys here)
        assert r["best_value"] == pytest.approx(hsearch.rec_validation_fit(r["model"], section, 1, (train, items, val)))
        assert r["best_value"] == max(t["value"] for t in r["trial_log"])
    report = yaml.safe_load((tmp_path / "b" / "search_rec_small.json").read_text())
    assert report["trials_per_model"] == 3 and set(report["models"]) == {"ease", "itemknn"}
    again = hsearch.search(p, track="rec", storage_dir=tmp_path / "s2", report_dir=None, progress=False,
                           rec_features_root=features_root)
    proposed = [t["params"] for r in results for t in r["trial_log"]]
    assert [t["params"] for r in again for t in r["trial_log"]] == proposed


def test_rec_snippet_lands_under_the_datasets_entry(features_root, tmp_path):
    from hmspar.rec.runner import recommender_section

    p = params()
    results = hsearch.search(p, track="rec", models=["ease"], storage_dir=tmp_path / "s", report_dir=None,
                             progress=False, rec_features_root=features_root)
    best = results[0]["best_params"]["l2"]
    frag = hsearch.snippet(p, results)
    assert frag == {"rec": {"recommenders": {"ease": {"by_dataset": {"small": {"l2": best}}}}}}
    path = tmp_path / "params.yaml"
    path.write_text("rec:\n  datasets: {small: {kind: shop}, big: {kind: shop}}\n  recommenders:\n"
                    "    # the classic peers\n    ease: {l2: 500.0}\n    mostpop: {}\n")
    hsearch.apply_snippet(path, frag)
    text = path.read_text()
    assert "# the classic peers" in text
    written = yaml.safe_load(text)
    assert written["rec"]["recommenders"] == {"ease": {"l2": 500.0, "by_dataset": {"small": {"l2": best}}},
                                              "mostpop": {}}
    assert recommender_section(written, "ease", "small") == {"l2": best}     # the searched dataset only
    assert recommender_section(written, "ease", "big") == {"l2": 500.0}


def test_rec_trials_start_from_the_datasets_settings(features_root, tmp_path):
    p = params()
    p["rec"]["recommenders"]["itemknn"]["by_dataset"] = {"small": {"shrink": 0.0}}
    p["search"]["rec_spaces"]["itemknn"] = {"neighbours": {"low": 5, "high": 100}}
    res, = hsearch.search(p, track="rec", models=["itemknn"], storage_dir=tmp_path / "s", report_dir=None,
                          progress=False, rec_features_root=features_root)
    data = hsearch.load_rec_search_data(features_root / "small", PROTOCOL)
    n = res["best_params"]["neighbours"]
    own = hsearch.rec_validation_fit("itemknn", {"neighbours": n, "shrink": 0.0}, 1, data)
    shared = hsearch.rec_validation_fit("itemknn", {"neighbours": n, "shrink": 10.0}, 1, data)
    assert own != shared                                   # the two settings are told apart on this log
    assert res["best_value"] == pytest.approx(own)
    frag = hsearch.snippet(p, [res])                       # the dataset's other settings are kept
    assert frag["rec"]["recommenders"]["itemknn"] == {"by_dataset": {"small": {"shrink": 0.0, "neighbours": n}}}


def test_rec_search_errors_name_the_key(features_root, tmp_path):
    p = params()
    p["search"]["rec_spaces"]["ease"]["l2"] = {"low": 5.0, "high": 1.0}
    with pytest.raises(HmsparError, match=r"search: rec_spaces.ease.l2: needs numeric low < high"):
        hsearch.search(p, track="rec", progress=False, report_dir=None, rec_features_root=features_root)
    with pytest.raises(HmsparError, match=r"unknown track 'music'"):
        hsearch.search(params(), track="music", progress=False, report_dir=None)
    with pytest.raises(HmsparError, match=r"search.rec_spaces.recent: no search space"):
        hsearch.search(params(), track="rec", models=["recent"], storage_dir=tmp_path, report_dir=None,
                       progress=False, rec_features_root=features_root)
    with pytest.raises(HmsparError, match=r"unknown rec dataset 'nope'"):
        hsearch.search(params(), track="rec", runs=["nope"], storage_dir=tmp_path, report_dir=None,
                       progress=False, rec_features_root=features_root)
