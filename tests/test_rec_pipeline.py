"""End to end: the rec stages of the tiny profile under DVC (the shop and the shipped example log)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run
from test_pipeline import edit_params, restore_params, stale_stages

pytestmark = pytest.mark.slow


def test_rec_outputs_and_leaderboard(tiny_project):
    board = json.loads((tiny_project / "metrics/rec_leaderboard.json").read_text())
    assert set(board) == {"shop", "example_log"}
    for ds, entry in board.items():
        assert set(entry["models"]) == {"mostpop", "itemknn", "sasrec", "pixelrec"}  # rec.multimodal_models too
        for m, e in entry["models"].items():
            assert 0 <= e["full"]["ndcg@10"]["mean"] <= e["sampled"]["ndcg@10"]["mean"] <= 1  # sampling inflates
            topk = np.load(tiny_project / f"results/rec/{ds}/{m}/seed_0/test_topk.npy")
            assert topk.shape == (entry["n_users"], 20) and topk.min() >= 1 and topk.max() <= entry["n_items"]
        assert entry["comparisons"]["sasrec"]["versus"] in ("mostpop", "itemknn")
    assert "rec-results" not in (tiny_project / "metrics/rec_results_table.md").read_text()
    headline = json.loads((tiny_project / "metrics/rec_headline.json").read_text())  # one column per dataset
    assert headline == {"ndcg@10": {ds: round(max(e["full"]["ndcg@10"]["mean"] for e in entry["models"].values()), 4)
                                    for ds, entry in board.items()}}
    assert (tiny_project / "plots_rec/ndcg_at_k.png").is_file()
    # MMR trade-off of the two-tower model (rec.evaluate.mmr_models): lambda = 1 first, the plain lists
    rows = board["shop"]["models"]["pixelrec"]["mmr"]
    assert rows[0]["lambda"] == 1.0 and rows[0]["ndcg"] == pytest.approx(board["shop"]["models"]["pixelrec"]["full"]["ndcg@10"]["mean"])
    assert (tiny_project / "plots_rec/mmr/shop-pixelrec.png").is_file()
    # the modality ablation (rec.ablation: pixelrec without text), its table and figure
    ablation = json.loads((tiny_project / "metrics/rec_ablation.json").read_text())
    for ds in ("shop", "example_log"):
        rows = ablation[ds]["models"]["pixelrec"]
        assert set(rows) == {"full", "no_text"} and rows["no_text"]["how"] == "inputs without text"
        full = board[ds]["models"]["pixelrec"]["full"]["ndcg@10"]["per_seed"][0]
        assert rows["full"]["ndcg@10"] == pytest.approx(full)  # the refitted full model is the main run's seed 0
    assert (tiny_project / "plots_rec_ablation/rec_ablation.png").is_file()


def test_changing_a_recommender_reruns_only_its_stages(tiny_project):
    try:
        edit_params(tiny_project, "rec.recommenders.itemknn.neighbours", 10)
        stale = stale_stages(tiny_project)  # (rec_evaluate follows once their outputs change)
        # both protocols of that model: leave-one-out on every dataset, global time on rec.global_time.datasets
        assert stale == {"recommend@shop-itemknn", "recommend@example_log-itemknn", "recommend_global@shop-itemknn"}, \
            stale
    finally:
        restore_params(tiny_project)


def test_recommend_bad_model_exits_2(tiny_project):
    proc = run(["python", "-m", "stages.recommend", "shop", "nosuchmodel"], tiny_project, check=False)
    assert proc.returncode == 2 and "unknown recommender 'nosuchmodel'" in proc.stderr
