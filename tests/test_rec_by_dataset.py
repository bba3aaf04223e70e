"""``rec.recommenders.<model>.by_dataset.<dataset>``: settings a recommender uses on one dataset only
(:func:`hmspar.rec.runner.recommender_section`), read by the recommend stage, the rec search and the quick look."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hmspar.errors import HmsparError
from hmspar.quicklook import quick_params
from hmspar.params import load_params
from hmspar.rec.registry import build_recommender
from hmspar.rec.runner import recommend, recommender_section
from conftest import ROOT
from test_rec_split import PROTOCOL, write_log


def params(by_dataset=None):
    itemknn = {"neighbours": 10, "shrink": 0.0}
    if by_dataset is not None:
        itemknn["by_dataset"] = by_dataset
    return {"seeds": [0], "rec": {"datasets": {"tiny": {"kind": "shop"}, "other": {"kind": "shop"}},
                                  "protocol": PROTOCOL, "recommenders": {"itemknn": itemknn}}}


def test_section_merges_the_dataset_entry_key_by_key():
    p = {"rec": {"datasets": {"a": {}, "b": {}}, "recommenders": {"sasrec": {
        "dropout": 0.2, "train": {"lr": 0.005, "max_steps": 100},
        "by_dataset": {"a": {"dropout": 0.5, "train": {"lr": 0.001}}}}}}}
    assert recommender_section(p, "sasrec", "a") == {"dropout": 0.5, "train": {"lr": 0.001, "max_steps": 100}}
    assert recommender_section(p, "sasrec", "b") == {"dropout": 0.2, "train": {"lr": 0.005, "max_steps": 100}}
    assert "by_dataset" in p["rec"]["recommenders"]["sasrec"]          # the params are not modified
    assert recommender_section(p, "gru4rec", "a") == {}                # no section: the model's defaults


@pytest.mark.parametrize("by_dataset, message", [
    ({"fashon": {"dropout": 0.5}}, r"rec.recommenders.itemknn.by_dataset.fashon: not a rec dataset "
                                   r"\(rec.datasets: tiny, other\)"),
    ([0.5], r"rec.recommenders.itemknn.by_dataset: expected a mapping of rec dataset"),
    ({"tiny": 3}, r"rec.recommenders.itemknn.by_dataset.tiny: expected a mapping of settings"),
    ({"tiny": {"by_dataset": {}}}, r"by_dataset.tiny.by_dataset: settings for a dataset cannot nest"),
])
def test_bad_entries_name_their_key(by_dataset, message):
    with pytest.raises(HmsparError, match=message):
        recommender_section(params(by_dataset), "itemknn", "other")    # checked whichever dataset runs


def test_a_bad_key_inside_an_entry_is_refused_before_any_fit(tmp_path):
    write_log(tmp_path / "features" / "tiny")
    with pytest.raises(HmsparError, match=r"itemknn.neighbors: unknown key .* \(on tiny: rec.recommenders.itemknn with "
                                          r"its by_dataset.tiny merged over it\)"):
        recommend("tiny", "itemknn", params({"tiny": {"neighbors": 3}}), features_root=tmp_path / "features",
                  results_root=tmp_path / "rec", timings_root=tmp_path / "t")
    assert not (tmp_path / "rec").exists()


def test_recommend_runs_with_the_dataset_settings_and_others_keep_theirs(tmp_path):
    feats = tmp_path / "features"
    write_log(feats / "tiny")

    def run(name, by_dataset):
        out = recommend("tiny", "itemknn", params(by_dataset), features_root=feats, results_root=tmp_path / name,
                        timings_root=tmp_path / f"{name}_t")
        meta = json.loads((out / "meta.json").read_text())
        return meta["config"], out / "seed_0" / "test_rank.npy"

    plain_cfg, plain = run("plain", None)
    other_cfg, other = run("other", {"other": {"neighbours": 1}})       # another dataset's entry: no effect
    own_cfg, own = run("own", {"tiny": {"neighbours": 1}})
    assert plain_cfg["neighbours"] == other_cfg["neighbours"] == 10 and own_cfg["neighbours"] == 1
    assert plain.read_bytes() == other.read_bytes()
    assert not np.array_equal(np.load(plain), np.load(own))


def test_quick_look_caps_a_kept_datasets_steps_and_drops_a_left_out_datasets_entry():
    p = {"rec": {"datasets": {"shop": {"kind": "shop"}, "fashion": {"kind": "fashion"}},
                 "recommenders": {"sasrec": {"train": {"max_steps": 5000}, "by_dataset": {
                     "shop": {"dropout": 0.5, "train": {"max_steps": 4000, "lr": 0.001}}, "fashion": {"dropout": 0.4}}},
                     "gru4rec": {"by_dataset": {"fashion": {"dropout": 0.5}}}}}}
    quick = quick_params(p)
    assert list(quick["rec"]["datasets"]) == ["shop"]
    sasrec = quick["rec"]["recommenders"]["sasrec"]
    assert list(sasrec["by_dataset"]) == ["shop"] and "by_dataset" not in quick["rec"]["recommenders"]["gru4rec"]
    assert sasrec["train"]["max_steps"] == sasrec["by_dataset"]["shop"]["train"]["max_steps"] < 4000
    assert sasrec["by_dataset"]["shop"]["train"]["lr"] == 0.001 and sasrec["by_dataset"]["shop"]["dropout"] == 0.5
    assert recommender_section(quick, "sasrec", "shop")["train"]["max_steps"] < 4000     # and it is valid


def test_every_default_recommender_builds_on_every_default_dataset():
    p = load_params(ROOT / "params.yaml")
    rec = p["rec"]
    for name in [*rec["models"], *rec["sequential_models"], *rec["multimodal_models"]]:
        for dataset in rec["datasets"]:
            build_recommender(name, recommender_section(p, name, dataset), 0)
    fashion = recommender_section(p, "sasrec", "fashion")        # the committed per-dataset settings
    assert (fashion["dropout"], fashion["train"]["lr"]) == (0.5, 0.001)
    assert recommender_section(p, "sasrec", "shop")["train"]["lr"] == rec["recommenders"]["sasrec"]["train"]["lr"]
