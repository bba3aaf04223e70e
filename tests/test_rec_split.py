"""The global-time split end to end on small data: a secondary recommend run (library and command line) and
its evaluation, where validation, test and training rows belong to different users."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from hmspar.errors import HmsparError
from hmspar.rec.data import ProtocolConfig, load
from hmspar.rec.report import RecEvaluateConfig, evaluate_dataset
from hmspar.rec.runner import recommend, split_roots
from stages import recommend as recommend_stage

PROTOCOL = {"min_interactions": 4, "save_k": 10, "top_k": [10], "n_negatives": 10}


def write_log(d, n_users=80, n_items=30, seed=0):
    """A feature folder in rec_convert's format whose users overlap in time (random starts and gaps)."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    np.save(d / "image.npy", rng.integers(0, 256, (n_items + 1, 3, 8, 8), dtype=np.uint8))
    np.save(d / "text.npy", rng.standard_normal((n_items + 1, 8)).astype(np.float32))
    np.save(d / "price.npy", rng.uniform(1, 5, n_items + 1).astype(np.float32))
    np.save(d / "category.npy", np.concatenate([[0], 1 + np.arange(n_items) % 3]).astype(np.int64))
    np.save(d / "first_time.npy", np.zeros(n_items + 1))
    lengths = rng.integers(3, 15, size=n_users)
    seqs = [1 + (int(rng.integers(0, 3)) + 3 * np.arange(n)) % n_items for n in lengths]
    times = [rng.uniform(0, 90) + np.cumsum(rng.exponential(3.0, size=n)) for n in lengths]
    np.save(d / "seq_items.npy", np.concatenate(seqs).astype(np.int64))
    np.save(d / "seq_times.npy", np.concatenate(times))
    np.save(d / "seq_offsets.npy", np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    (d / "meta.json").write_text(json.dumps({"repeat_purchases": False, "n_items": n_items}))


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def params(split=None):
    protocol = dict(PROTOCOL, **({"split": split} if split else {}))
    return {"seeds": [0, 1], "rec": {"protocol": protocol, "recommenders": {
        "itemknn": {"neighbours": 10},
        "gru4rec": {"d_model": 8, "hidden": 8, "train": {"max_steps": 3, "min_steps": 3, "eval_every": 3, "batch_size": 32, "max_len": 10,
                                                         "num_threads": 1, "device": "cpu"}}}}}


def test_secondary_global_time_run_and_its_evaluation(tmp_path):
    feats = tmp_path / "features"
    write_log(feats / "tiny")
    data = load(feats / "tiny", ProtocolConfig(**PROTOCOL, split="global_time"))
    n_val, n_test = len(data.val), len(data.test)
    assert n_val != n_test and len(data.train) not in (n_val, n_test)  # the user sets really differ
    assert not set(data.test.users) <= set(data.val.users)
    models = ["mostpop", "itemknn", "gru4rec"] if _has_torch() else ["mostpop", "itemknn"]
    for model in models:
        out = recommend("tiny", model, params(), features_root=feats, results_root=tmp_path / "rec_global",
                        timings_root=tmp_path / "timings", split="global_time")
        assert out == tmp_path / "rec_global" / "tiny" / model
        meta = json.loads((out / "meta.json").read_text())
        assert meta["protocol"]["split"] == "global_time" and meta["n_users"] == n_test
        assert meta["split"] == data.split and meta["split"]["n_val_users"] == n_val
        assert np.load(out / "seed_0" / "val_rank.npy").shape == (n_val,)
        assert np.load(out / "seed_0" / "val_sampled_rank.npy").shape == (n_val,)
        assert np.load(out / "seed_0" / "test_topk.npy").shape == (n_test, 10)
    cfg = RecEvaluateConfig(reference_models=["mostpop", "itemknn"], bootstrap_samples=20, curve_ks=[1, 5, 10],
                            mmr_models=[])
    global_protocol = ProtocolConfig(**PROTOCOL, split="global_time")
    entry, curves = evaluate_dataset("tiny", models, feats / "tiny", tmp_path / "rec_global", global_protocol, cfg)
    assert entry["n_users"] == n_test and entry["split"]["n_val_users"] == n_val
    offsets, times = np.load(feats / "tiny" / "seq_offsets.npy"), np.load(feats / "tiny" / "seq_times.npy")
    n_train = np.array([(times[offsets[u]:offsets[u + 1]] < data.split["val_cutoff"]).sum() for u in data.test.users])
    assert (n_train == 0).any() and (n_train > cfg.short_history).any()  # users new since t_val, and long ones
    assert data.test_train_lengths().tolist() == n_train.tolist()
    assert entry["n_short_users"] == int((n_train <= cfg.short_history).sum())
    for model in models:
        assert len(entry["models"][model]["val_ndcg@10"]["per_seed"]) == 2
        assert curves[model].shape == (3,)
    # the primary (leave-one-out) protocol refuses results ranked under another split
    with pytest.raises(HmsparError, match="ranked under split 'global_time', evaluated under 'leave_one_out'"):
        evaluate_dataset("tiny", ["mostpop"], feats / "tiny", tmp_path / "rec_global", ProtocolConfig(**PROTOCOL), cfg)


def test_leave_one_out_run_keeps_its_meta_and_a_bad_split_names_the_key(tmp_path):
    feats = tmp_path / "features"
    write_log(feats / "tiny")
    out = recommend("tiny", "mostpop", params(), features_root=feats, results_root=tmp_path / "rec",
                    timings_root=tmp_path / "timings")
    meta = json.loads((out / "meta.json").read_text())
    assert "split" not in meta and not {"split", "val_fraction", "test_fraction"} & set(meta["protocol"])
    assert np.load(out / "seed_0" / "val_rank.npy").shape == np.load(out / "seed_0" / "test_rank.npy").shape
    # the split named in params is the same run as the one named by the override
    again = recommend("tiny", "mostpop", params("global_time"), features_root=feats, results_root=tmp_path / "a",
                      timings_root=tmp_path / "timings")
    override = recommend("tiny", "mostpop", params(), features_root=feats, results_root=tmp_path / "b",
                         timings_root=tmp_path / "timings", split="global_time")
    for name in ("meta.json", "seed_0/val_rank.npy", "seed_1/test_topk.npy"):
        assert (again / name).read_bytes() == (override / name).read_bytes(), name
    with pytest.raises(HmsparError, match="rec.protocol.split: must be one of leave_one_out, global_time"):
        recommend("tiny", "mostpop", params(), features_root=feats, results_root=tmp_path / "c",
                  timings_root=tmp_path / "timings", split="by_user")
    assert split_roots(None)[0].as_posix() == "results/rec"
    assert [p.as_posix() for p in split_roots("global_time")] == ["results/rec_global", "metrics/rec_timings_global"]


def test_stage_command_line_takes_a_split_option():
    assert recommend_stage.split_option(["--split", "global_time", "shop", "ease"]) == ("global_time", ["shop", "ease"])
    assert recommend_stage.split_option(["shop", "ease"]) == (None, ["shop", "ease"])
    assert recommend_stage.dynamic_imports(["--split", "global_time", "shop", "ease"], {}) == ["hmspar.rec.peers.ease"]
    assert recommend_stage.dynamic_imports(["shop", "ease"], {}) == ["hmspar.rec.peers.ease"]


def test_protocol_replace_is_how_a_report_evaluates_a_secondary_root():
    base = ProtocolConfig()
    assert dataclasses.replace(base, split="global_time").split == "global_time"
    with pytest.raises(ValueError, match="split must be one of"):
        dataclasses.replace(base, split="nope")
