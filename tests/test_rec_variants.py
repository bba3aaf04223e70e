"""benchmarks/rec_variants.py: comparing two stored variants (``--pair``) with the track's paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import rec_variants as rv
from hmspar.config import build
from hmspar.rec.data import ProtocolConfig, load


def test_pair_reads_both_variants_and_reports_b_minus_a(tmp_path, monkeypatch):
    from test_rec_ablation import PROTOCOL, write_shop

    monkeypatch.chdir(tmp_path)
    write_shop(tmp_path / "data/rec/features/tiny", n_users=50, n_items=30)
    params = {"rec": {"protocol": PROTOCOL, "evaluate": {"bootstrap_samples": 200}}}
    n_users = len(load(tmp_path / "data/rec/features/tiny", build(ProtocolConfig, PROTOCOL, "p")).test)
    rng = np.random.default_rng(0)
    store = tmp_path / "store"
    ranks = {}
    for variant, shift in (("a", 5), ("b", 0)):
        for s in (0, 1):
            d = store / f"tiny-m-{variant}" / f"seed_{s}" / "tiny" / "m" / f"seed_{s}"
            d.mkdir(parents=True)
            ranks[variant, s] = rng.integers(0, 4, n_users) + shift     # b ranks its targets higher
            np.save(d / "test_rank.npy", ranks[variant, s].astype(np.int32))
    row = rv.pair_row("tiny:m:a:0,1", "tiny:m:b:0,1", params, store)
    gain = np.mean([(1 / np.log2(ranks["b", s] + 2) - 1 / np.log2(ranks["a", s] + 2)).mean() for s in (0, 1)])
    assert row["difference"] == pytest.approx(gain)
    assert 0 < row["ci_low"] <= row["difference"] <= row["ci_high"]
    with pytest.raises(SystemExit, match="same dataset, model and seeds"):
        rv.pair_row("tiny:m:a:0,1", "tiny:m:b:0", params, store)
    with pytest.raises(SystemExit, match="no stored ranks for seeds"):
        rv.pair_row("tiny:m:a:0,1", "tiny:m:c:0,1", params, store)


def test_shared_variant_drops_the_datasets_own_settings(tmp_path, monkeypatch):
    """``<dataset>:<model>:shared:<seeds>`` fits the model's shared settings beside the main run, which the
    dataset's ``by_dataset`` entry changed: the two differ, and the shared fit equals a run without the entry."""
    from hmspar.rec.runner import recommend
    from test_rec_ablation import PROTOCOL, write_shop

    monkeypatch.chdir(tmp_path)
    write_shop(tmp_path / "data/rec/features/tiny", n_users=60, n_items=30)
    shared = {"neighbours": 20, "shrink": 10.0}
    params = {"seeds": [0], "rec": {"datasets": {"tiny": {}}, "protocol": PROTOCOL,
                                    "evaluate": {"bootstrap_samples": 100},
                                    "recommenders": {"itemknn": {**shared, "by_dataset": {"tiny": {"neighbours": 1}}}}}}
    recommend("tiny", "itemknn", params, timings_root=tmp_path / "t")           # the stage's run: results/rec/tiny
    plain = recommend("tiny", "itemknn", {**params, "rec": {**params["rec"], "recommenders": {"itemknn": shared}}},
                      results_root=tmp_path / "plain", timings_root=tmp_path / "t2")
    row = rv.run_job("tiny:itemknn:shared:0", params, tmp_path / "work", keep=tmp_path / "keep")
    assert row["main_ndcg@10"] != row["variant_ndcg@10"]
    assert row["variant_ndcg@10"] == pytest.approx(rv.ndcg_at_10({0: plain}).mean(1).tolist())
