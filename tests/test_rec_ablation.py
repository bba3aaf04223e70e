"""The recommenders' modality ablation: how each variant maps onto a model's switches, that the
``rec_ablation`` stage's variants really lose the modality, that its full model equals the recommend
stage's run at the same seed (copied from it when it matches, refitted otherwise), and the table it leads to."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from hmspar.errors import HmsparError
from hmspar.params import load_params
from hmspar.rec.ablation import ablation_config, main_run_reuse, rec_ablation, variant_section
from hmspar.rec.ablation_report import rec_ablation_evaluate
from hmspar.rec.data import ProtocolConfig, load
from hmspar.rec.registry import build_recommender
from hmspar.rec.runner import recommend

pytest.importorskip("torch")

TINY_TRAIN = {"max_steps": 1, "min_steps": 0, "eval_every": 1, "batch_size": 64, "max_len": 10, "num_threads": 1,
              "device": "cpu"}
MTST = {"d": 8, "heads": 2, "use_price": False, "train": TINY_TRAIN}
PROTOCOL = {"min_interactions": 5, "save_k": 10, "top_k": [10], "n_negatives": 10}


def write_shop(d, n_users=60, n_items=30, seed=0):
    """A tiny feature folder in rec_convert's format: random pictures/texts/prices, category walks."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    np.save(d / "image.npy", rng.integers(0, 256, (n_items + 1, 3, 8, 8), dtype=np.uint8))
    np.save(d / "text.npy", rng.standard_normal((n_items + 1, 8)).astype(np.float32))
    np.save(d / "price.npy", rng.uniform(1, 5, n_items + 1).astype(np.float32))
    np.save(d / "category.npy", np.concatenate([[0], 1 + np.arange(n_items) % 3]).astype(np.int64))
    np.save(d / "first_time.npy", np.zeros(n_items + 1))
    seqs = [1 + (int(rng.integers(0, 3)) + 3 * np.arange(int(rng.integers(6, 10)))) % n_items for _ in range(n_users)]
    flat = np.concatenate(seqs).astype(np.int64)
    np.save(d / "seq_items.npy", flat)
    np.save(d / "seq_times.npy", np.arange(flat.size, dtype=np.float64))
    np.save(d / "seq_offsets.npy", np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64))
    (d / "meta.json").write_text(json.dumps({"repeat_purchases": False, "n_items": n_items}))


def tiny_params(variants):
    return {"seeds": [0], "rec": {"datasets": {"tiny": {}}, "protocol": PROTOCOL, "recommenders": {"mtstrec": MTST},
                                  "evaluate": {"bootstrap_samples": 50},
                                  "ablation": {"models": ["mtstrec"], "variants": variants, "seeds": [0]}}}


def test_variants_map_onto_each_models_switches():
    rec = load_params(ROOT / "params.yaml")["rec"]
    sections = rec["recommenders"]
    section, how = variant_section("mtstrec", sections["mtstrec"], "text")
    assert how == "use_text=false" and section["use_text"] is False and "text" in section["inputs"]
    section, how = variant_section("athwe", sections["athwe"], "image")
    assert how == "inputs without image" and section["inputs"] == ["id", "text"]
    assert variant_section("athwe", sections["athwe"], "price") == (None, "no price input")
    section, how = variant_section("pixelrec", sections["pixelrec"], "price")
    assert section["inputs"] == ["image", "text", "category"]
    assert sections["pixelrec"]["inputs"] == ["image", "text", "price", "category"]  # the params are not mutated
    # a model left with no content modality skips the variant instead of failing
    section, how = variant_section("pixelrec", {"inputs": ["text"]}, "text")
    assert section is None and how.startswith("config rejects it")


def test_ablation_config_errors_name_the_key():
    with pytest.raises(HmsparError, match="rec.ablation"):
        ablation_config({"rec": {"ablation": {"variants": {"no_sound": "sound"}}}})
    with pytest.raises(HmsparError, match="rec.ablation.models: 'sasrec' is not a multimodal model"):
        ablation_config({"rec": {"ablation": {"models": ["sasrec"]}}})


def test_main_run_stands_for_the_full_model_only_when_it_matches(tmp_path):
    feats = tmp_path / "features"
    write_shop(feats / "tiny")
    run = {"seeds": [1], "rec": {"protocol": PROTOCOL, "recommenders": {"mtstrec": MTST}}}
    main = recommend("tiny", "mtstrec", run, features_root=feats, results_root=tmp_path / "main",
                     timings_root=tmp_path / "t")
    params = tiny_params({"no_text": "text"})   # the ablation at seed 0
    assert "lacks seeds [0]" in main_run_reuse(main, "mtstrec", MTST, [0], params, "tiny")
    assert main_run_reuse(main, "mtstrec", MTST, [1], params, "tiny") is None
    assert main_run_reuse(main, "mtstrec", {**MTST, "d": 16}, [1], params, "tiny") == "the main run has other settings"
    other = {**params, "rec": {**params["rec"], "protocol": {**PROTOCOL, "save_k": 20}}}
    assert main_run_reuse(main, "mtstrec", MTST, [1], other, "tiny") == "the main run has another protocol"
    assert main_run_reuse(tmp_path / "nowhere", "mtstrec", MTST, [1], params, "tiny").startswith("no main run")
    (main / "meta.json").write_text("{")
    with pytest.raises(HmsparError, match="meta.json: not valid JSON"):
        main_run_reuse(main, "mtstrec", MTST, [1], params, "tiny")
    # a mismatch falls back to fitting the full model, and says why
    out = rec_ablation("tiny", "mtstrec", params, features_root=feats, results_root=tmp_path / "abl",
                       timings_root=tmp_path / "t", main_root=tmp_path / "nowhere")
    full = json.loads((out / "variants.json").read_text())["full"]
    assert full["status"] == "fitted" and "no main run" in full["reason"]
    assert (out / "full" / "seed_0" / "test_rank.npy").is_file()


def test_ablated_models_must_be_in_the_main_run():
    with pytest.raises(HmsparError, match="'pixelrec' is not in rec.multimodal_models"):
        ablation_config({"rec": {"multimodal_models": ["athwe"], "ablation": {"models": ["athwe", "pixelrec"]}}})
    cfg = ablation_config({"rec": {"multimodal_models": ["athwe"], "ablation": {"models": ["athwe"]}}})
    assert cfg.models == ["athwe"]


def _scores(section, data, items):
    rec = build_recommender("mtstrec", section, 0)
    rec.fit(data.train, items, data.val)
    return rec, rec.score(data.test)


def test_rec_ablation_variant_really_drops_text(tmp_path):
    feats = tmp_path / "features"
    write_shop(feats / "tiny")
    params = tiny_params({"no_text": "text", "no_price": "price"})
    run = {"seeds": [0], "rec": {"protocol": PROTOCOL, "recommenders": {"mtstrec": MTST}}}
    main = recommend("tiny", "mtstrec", run, features_root=feats, results_root=tmp_path / "main",
                     timings_root=tmp_path / "main-timings")
    out = rec_ablation("tiny", "mtstrec", params, features_root=feats, results_root=tmp_path / "abl",
                       timings_root=tmp_path / "timings", main_root=tmp_path / "main")
    plan = json.loads((out / "variants.json").read_text())
    assert plan["full"]["status"] == "reused" and str(main) in plan["full"]["reason"]
    assert json.loads((tmp_path / "timings" / "tiny-mtstrec.json").read_text())["full"] == {"reused_from": str(main)}
    # the copied full model holds the bytes a refit writes (meta.json included), and the variants are unchanged
    refit = rec_ablation("tiny", "mtstrec", params, features_root=feats, results_root=tmp_path / "refit",
                         timings_root=tmp_path / "refit-timings", main_root=None)
    assert json.loads((refit / "variants.json").read_text())["full"]["status"] == "fitted"
    files = sorted(f.relative_to(refit) for f in refit.rglob("*") if f.is_file() and f.name != "variants.json")
    assert Path("full/seed_0/test_topk.npy") in files and Path("no_text/meta.json") in files
    assert files == sorted(f.relative_to(out) for f in out.rglob("*") if f.is_file() and f.name != "variants.json")
    for f in files:
        assert (out / f).read_bytes() == (refit / f).read_bytes(), f
    assert plan["no_text"]["status"] == "fitted" and plan["no_text"]["section"]["use_text"] is False
    assert plan["no_price"] == {"drops": "price", "status": "skipped", "reason": "use_price already false",
                                "section": None}
    assert not (out / "no_price").exists()
    meta = json.loads((out / "no_text" / "meta.json").read_text())
    assert "text" not in meta["inputs"] and "text" in json.loads((out / "full" / "meta.json").read_text())["inputs"]
    assert np.load(out / "no_text" / "seed_0" / "test_topk.npy").shape[1] == 10

    # the refitted full model is the recommend stage's run at that seed, byte for byte
    for f in sorted((main / "seed_0").iterdir()):
        assert f.read_bytes() == (refit / "full" / "seed_0" / f.name).read_bytes(), f.name

    # the no_text model has no text parameters, and permuting the item texts leaves its scores unchanged,
    # while they move the full model's
    data = load(feats / "tiny", ProtocolConfig(**PROTOCOL))
    perm = np.concatenate([[0], 1 + np.random.default_rng(1).permutation(data.n_items)])
    permuted = type(data.items)(data.items.image, data.items.text[perm], data.items.price, data.items.category,
                                data.items.first_time)
    rec, a = _scores(plan["no_text"]["section"], data, data.items)
    _, b = _scores(plan["no_text"]["section"], data, permuted)
    names = [name for name, _ in rec.module_.named_parameters()]
    assert names and not any("text" in name for name in names)
    np.testing.assert_array_equal(a, b)
    full, c = _scores(MTST, data, data.items)
    assert any("text" in name for name, _ in full.module_.named_parameters())
    _, d = _scores(MTST, data, permuted)
    assert not np.allclose(c, d)

    # the table: the fitted variant with its delta and CI, the skipped one with its reason
    written = rec_ablation_evaluate(params, features_root=feats, results_root=tmp_path / "abl",
                                    metrics_dir=tmp_path / "metrics", plots_dir=tmp_path / "plots")
    table = json.loads(written["json"].read_text())["tiny"]["models"]["mtstrec"]
    assert table["no_text"]["delta"]["ndcg@10"] == pytest.approx(table["no_text"]["ndcg@10"] - table["full"]["ndcg@10"])
    assert table["no_text"]["bootstrap"]["ci_low"] <= table["no_text"]["bootstrap"]["ci_high"]
    entry = json.loads(written["json"].read_text())["tiny"]
    data = load(feats / "tiny", ProtocolConfig(**PROTOCOL))
    new = data.train_counts()[data.test.targets] == 0
    assert entry["n_new_targets"] == int(new.sum())
    assert (table["full"]["new_ndcg@10"] is None) == (not new.any())
    md = written["table"].read_text()
    assert "| cold NDCG@10 | Δ cold | new NDCG@10 | Δ new |" in md
    threshold = entry["cold_item_threshold"]  # the header states the threshold the counts used
    assert f"Cold items have fewer than {threshold} training interactions" in md
    assert entry["n_cold_targets"] == int((data.train_counts()[data.test.targets] < threshold).sum())
    assert "| mtstrec | no_price | skipped: use_price already false |" in md
    assert (written["plots"] / "rec_ablation.png").stat().st_size > 0
