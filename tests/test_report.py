"""Tests of the evaluate stage (hmspar.report) on a small synthetic results tree and features folder (its GAF
examples picked by the convert step's :func:`hmspar.convert.write_gaf_example`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (accuracy_score, average_precision_score, balanced_accuracy_score, brier_score_loss, f1_score, precision_score,
                             recall_score, roc_auc_score)

from hmspar.convert import gaf_example, write_gaf_example
from hmspar.errors import HmsparError
from hmspar.report import bootstrap, leaderboard, plots
from hmspar.report.evaluate import evaluate as report_evaluate

ROOT = Path(__file__).resolve().parents[1]

# run -> (dataset, task, group); one run per dataset so that the GAF figure has two rows.
RUNS = {"alpha-churn": ("alpha", "churn", None), "beta-risk-G0": ("beta", "risk", "G0")}
# model -> (signal strength, results sub-folder, inputs)
MODELS = {
    "hmspar": (2.0, "hmspar/{run}", ["series", "image", "text", "static"]),
    "lgbm": (1.2, "baselines/{dataset}/lgbm/{run}", ["static", "series"]),
    "logreg": (0.6, "baselines/{dataset}/logreg/{run}", ["static"]),
    "hmspar[series+text]": (1.5, "ablation/series_text/{run}", ["series", "text"]),
}
SEEDS = (0, 1)
N_ENTITIES = 240
PARAMS = {"evaluate": {"bootstrap_samples": 300, "seed": 3, "confidence": 0.95, "curve_points": 50}}


def _write_features(root: Path, dataset: str, task: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    folder = root / dataset
    folder.mkdir(parents=True)
    ids = np.array([f"{dataset}-{i:04d}" for i in range(N_ENTITIES)])
    y = (rng.random(N_ENTITIES) < 0.35).astype(np.int8)
    split = rng.choice([0, 1, 2], size=N_ENTITIES, p=[0.5, 0.2, 0.3]).astype(np.int8)
    image = rng.uniform(-1, 1, size=(N_ENTITIES, 2, 8, 8)).astype(np.float32)
    np.save(folder / "ids.npy", ids)
    np.save(folder / "image.npy", image)
    np.savez(folder / "labels.npz", **{task: y})
    np.savez(folder / "splits.npz", **{task: split})
    (folder / "meta.json").write_text(json.dumps({"channels": ["spend"], "tasks": [task]}))
    return {"ids": ids, "y": y, "split": split}


def _write_run(folder: Path, model: str, run: str, seed: int, data: dict, signal: float, inputs: list[str],
               rng: np.random.Generator) -> None:
    dataset, task, group = RUNS[run]
    keep = data["split"] > 0
    y = data["y"][keep].astype(int)
    logits = signal * (2 * y - 1) + rng.normal(0.0, 1.5, size=y.size)
    prob = 1.0 / (1.0 + np.exp(-logits))
    frame = pd.DataFrame({"id": data["ids"][keep], "split": np.where(data["split"][keep] == 1, "val", "test"),
                          "y_true": y, "prob": prob})
    folder.mkdir(parents=True)
    frame.sample(frac=1.0, random_state=seed).to_csv(folder / "predictions.csv", index=False)  # any row order
    zeros = dict.fromkeys(leaderboard.METRICS, 0.0)  # deliberately wrong: evaluate must recompute
    meta = {"model": model, "run": run, "dataset": dataset, "task": task, "group": group, "seed": seed,
            "inputs": inputs, "threshold": 0.45, "test": zeros, "test_at_0.5": zeros, "val": zeros,
            "n_train": int((data["split"] == 0).sum()), "n_val": int((data["split"] == 1).sum()),
            "n_test": int((data["split"] == 2).sum()), "fit_seconds": 0.1, "predict_seconds": 0.01}
    (folder / "metrics.json").write_text(json.dumps(meta))


def _build_tree(base: Path, with_ablation: bool = True) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    results, features, examples = base / "results", base / "features", base / "gaf_examples"
    for run, (dataset, task, _) in RUNS.items():
        data = _write_features(features, dataset, task, rng)
        write_gaf_example(features / dataset, examples / f"{dataset}.npz")
        for model, (signal, sub, inputs) in MODELS.items():
            if model.startswith("hmspar[") and (not with_ablation or run != "alpha-churn"):
                continue
            for seed in SEEDS:
                folder = results / sub.format(run=run, dataset=dataset) / f"seed{seed}"
                _write_run(folder, model, run, seed, data, signal, inputs, rng)
    return results, examples


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("report")
    results, examples = _build_tree(base)
    report_evaluate(results, examples, PARAMS, base / "metrics", base / "plots", date="2024-01-02")
    return base


def _read(base: Path, name: str):
    return json.loads((base / "metrics" / name).read_text())


def test_leaderboard_has_one_row_per_run_and_model(evaluated):
    board = _read(evaluated, "leaderboard.json")
    keys = sorted((r["run"], r["model"]) for r in board["rows"])
    expected = sorted([(run, m) for run in RUNS for m in ("hmspar", "lgbm", "logreg")]
                      + [("alpha-churn", "hmspar[series+text]")])
    assert keys == expected
    assert all(r["n_seeds"] == 2 and r["seeds"] == [0, 1] for r in board["rows"])
    assert next(r for r in board["rows"] if r["model"] == "lgbm")["inputs"] == ["static", "series"]
    csv = pd.read_csv(evaluated / "metrics" / "leaderboard.csv")
    assert sorted(zip(csv["run"], csv["model"])) == expected
    assert {"roc_auc_mean", "roc_auc_std", "brier_mean", "n_seeds", "inputs"} <= set(csv.columns)


def test_metrics_match_independent_sklearn_recomputation(evaluated):
    board = _read(evaluated, "leaderboard.json")
    row = next(r for r in board["rows"] if (r["run"], r["model"]) == ("beta-risk-G0", "lgbm"))
    per_seed = {name: [] for name in leaderboard.METRICS}
    for seed in SEEDS:
        folder = evaluated / "results" / "baselines" / "beta" / "lgbm" / "beta-risk-G0" / f"seed{seed}"
        threshold = json.loads((folder / "metrics.json").read_text())["threshold"]
        test = pd.read_csv(folder / "predictions.csv").query("split == 'test'")
        y, p = test["y_true"].to_numpy(), test["prob"].to_numpy()
        pred = (p >= threshold).astype(int)
        per_seed["roc_auc"].append(roc_auc_score(y, p))
        per_seed["auprc"].append(average_precision_score(y, p))
        per_seed["f1"].append(f1_score(y, pred))
        per_seed["precision"].append(precision_score(y, pred))
        per_seed["recall"].append(recall_score(y, pred))
        per_seed["accuracy"].append(accuracy_score(y, pred))
        per_seed["balanced_accuracy"].append(balanced_accuracy_score(y, pred))
        per_seed["accuracy_at_0.5"].append(accuracy_score(y, (p >= 0.5).astype(int)))
        per_seed["brier"].append(brier_score_loss(y, p))
    for name, values in per_seed.items():
        assert row[name]["mean"] == pytest.approx(np.mean(values), abs=1e-12), name
        assert row[name]["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12), name
    assert row["roc_auc"]["mean"] > 0.5  # the synthetic predictions carry signal


def test_headline_and_significance(evaluated):
    board = _read(evaluated, "leaderboard.json")
    headline = _read(evaluated, "headline.json")
    sig = _read(evaluated, "significance.json")
    assert set(RUNS) == set(sig["runs"])
    hmspar_aucs, deltas, sides = [], [], []
    for run, entry in sig["runs"].items():
        baselines = [r for r in board["rows"] if r["run"] == run and r["model"] in ("lgbm", "logreg")]
        best = max(baselines, key=lambda r: r["roc_auc"]["mean"])
        assert entry["baseline"] == best["model"]
        assert entry["ci_low"] <= entry["auc_difference"] <= entry["ci_high"]
        assert entry["ci_low"] < entry["ci_high"]
        assert entry["n_resamples_used"] == 300 and entry["seeds"] == [0, 1]
        assert len(entry["per_seed"]) == 2 and isinstance(entry["holds_across_seeds"], bool)
        hm = next(r for r in board["rows"] if r["run"] == run and r["model"] == "hmspar")
        assert entry["auc_difference"] == pytest.approx(hm["roc_auc"]["mean"] - best["roc_auc"]["mean"], abs=1e-12)
        hmspar_aucs.append(hm["roc_auc"]["mean"])
        deltas.append(hm["roc_auc"]["mean"] - best["roc_auc"]["mean"])
        sides.append("ahead" if entry["ci_low"] > 0 else "behind" if entry["ci_high"] < 0 else "no difference")
    assert "crc32(run)" in sig["procedure"]
    # the headline (what `dvc metrics show` prints): five numbers over the runs, never one column per run
    assert headline == {"n_runs": len(RUNS), "ahead": sides.count("ahead"), "behind": sides.count("behind"),
                        "hmspar_auc": round(float(np.mean(hmspar_aucs)), 4),
                        "auc_delta": round(float(np.mean(deltas)), 4)}


def test_headline_counts_runs_by_their_interval_and_skips_runs_without_a_comparison():
    def row(run, model, auc):
        return {"run": run, "model": model, "roc_auc": {"mean": auc}}

    board = {"rows": [row("a", "hmspar", 0.9), row("a", "lgbm", 0.8), row("b", "hmspar", 0.7), row("b", "lgbm", 0.8),
                      row("c", "hmspar", 0.6), row("c", "lgbm", 0.6), row("d", "lgbm", 0.5)]}
    sig = {"runs": {"a": {"ci_low": 0.01, "ci_high": 0.2}, "b": {"ci_low": -0.2, "ci_high": -0.01},
                    "c": {"ci_low": None, "ci_high": None}, "d": {"skipped": "no results of model 'hmspar'"}}}
    assert leaderboard.build_headline(board, sig, 3) == {"n_runs": 4, "ahead": 1, "behind": 1, "hmspar_auc": 0.733,
                                                        "auc_delta": 0.0}


def test_bootstrap_auc_matches_sklearn_and_is_deterministic():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    score = np.round(rng.random(60), 1)  # many ties
    counts = np.bincount(rng.integers(0, 60, 60), minlength=60)
    assert bootstrap.auc_from_counts(y, score, counts[None])[0] == pytest.approx(
        roc_auc_score(y, score, sample_weight=counts), abs=1e-12)
    args = (y, [score], [score[::-1]], 50, 0.9)
    first = bootstrap.paired_bootstrap(*args, bootstrap.run_rng(0, "r"))
    assert first == bootstrap.paired_bootstrap(*args, bootstrap.run_rng(0, "r"))


def _two_models(rng: np.random.Generator, n: int, signal_a: float, signal_b: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and the scores of two models on the same ``n`` rows: ``signal * y + u + noise``, with a row
    effect ``u ~ N(0, 2)`` shared by both models (so pairing the resamples matters) and independent
    N(0, 1) noise per model. Equal signals: identical score distributions, a true AUC difference of 0."""
    y = (rng.random(n) < 0.4).astype(np.int64)
    u = 2.0 * rng.standard_normal(n)
    return y, signal_a * y + u + rng.standard_normal(n), signal_b * y + u + rng.standard_normal(n)


def test_bootstrap_null_interval_covers_zero_about_95_percent_of_the_time():
    """Two models with the same score distribution, 400 simulated test sets of 200 rows, 200 resamples each:
    the 95% interval covers the true difference 0 in 90-98% of them (measured 0.93-0.95 over other seeds;
    binomial sd ~0.012). An interval that ignores the pairing covers ~100% here, an unresampled or
    too-narrow one far below 90%."""
    rng = np.random.default_rng(29)
    covered = 0
    for r in range(400):
        y, a, b = _two_models(rng, 200, 2.0, 2.0)
        res = bootstrap.paired_bootstrap(y, [a], [b], 200, 0.95, np.random.default_rng([r, 1]))
        assert res["n_resamples_used"] == 200
        assert res["difference"] == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b), abs=1e-12)
        covered += res["ci_low"] <= 0.0 <= res["ci_high"]
    assert 0.90 <= covered / 400 <= 0.98, covered / 400


def test_bootstrap_detects_a_known_difference():
    """Model a has the stronger signal (population AUC about 0.85 vs 0.76): the interval lies above zero in
    at least 90% of 200 simulated test sets of 200 rows (measured 0.99-1.0) and never below it."""
    rng = np.random.default_rng(30)
    above = below = 0
    for r in range(200):
        y, a, b = _two_models(rng, 200, 2.6, 1.6)
        res = bootstrap.paired_bootstrap(y, [a], [b], 200, 0.95, np.random.default_rng([r, 2]))
        above += res["ci_low"] > 0.0
        below += res["ci_high"] < 0.0
        assert 0.0 <= res["p_value_one_sided"] <= 1.0
    assert above >= 180 and below == 0, (above, below)


def test_bootstrap_resamples_test_rows_and_averages_seeds():
    """What README and PROCEDURE state: each resample draws test rows (the same rows for both models and
    every seed), the per-seed AUC differences of a resample are averaged over the seeds, and seeds
    themselves are never resampled (so the interval does not carry the spread between training seeds).
    Recomputed by hand with scikit-learn's weighted ROC-AUC."""
    rng = np.random.default_rng(4)
    n, n_resamples = 40, 30
    y = (rng.random(n) < 0.5).astype(np.int64)
    a = [y + rng.normal(0, s, n) for s in (0.6, 1.5)]            # two seeds that disagree a lot
    b = [y + rng.normal(0, 1.0, n) for _ in range(2)]
    res = bootstrap.paired_bootstrap(y, a, b, n_resamples, 0.9, np.random.default_rng(0))
    idx = np.random.default_rng(0).integers(0, n, size=(n_resamples, n))   # one chunk: the same draws
    pooled, per_seed = [], []
    for rows in idx:
        w = np.bincount(rows, minlength=n)
        if len(np.unique(y[rows])) < 2:
            continue
        d = [roc_auc_score(y, a[s], sample_weight=w) - roc_auc_score(y, b[s], sample_weight=w) for s in range(2)]
        per_seed.append(d)
        pooled.append(np.mean(d))
    assert res["n_resamples_used"] == len(pooled)
    np.testing.assert_allclose([res["ci_low"], res["ci_high"]], np.quantile(pooled, [0.05, 0.95]), atol=1e-12)
    for s in range(2):
        np.testing.assert_allclose([res["per_seed"][s]["ci_low"], res["per_seed"][s]["ci_high"]],
                                   np.quantile(np.array(per_seed)[:, s], [0.05, 0.95]), atol=1e-12)
    # listing every seed twice changes nothing: no draw is spent on seeds
    twice = bootstrap.paired_bootstrap(y, a + a, b + b, n_resamples, 0.9, np.random.default_rng(0))
    assert (twice["ci_low"], twice["ci_high"]) == pytest.approx((res["ci_low"], res["ci_high"]), abs=1e-12)
    assert twice["difference"] == pytest.approx(res["difference"], abs=1e-12)


def test_plot_data_for_dvc(evaluated):
    plots = evaluated / "plots"
    roc = json.loads((plots / "roc" / "alpha-churn.json").read_text())
    pr = json.loads((plots / "pr" / "beta-risk-G0.json").read_text())
    assert {p["model"] for p in roc} == {"hmspar", "lgbm", "logreg", "hmspar[series+text]"}
    assert set(roc[0]) == {"model", "fpr", "tpr", "point"} and set(pr[0]) == {"model", "recall", "precision", "point"}
    for model in ("hmspar", "lgbm"):
        pts = [p for p in roc if p["model"] == model]
        assert 2 <= len(pts) <= PARAMS["evaluate"]["curve_points"]
        assert (pts[0]["fpr"], pts[0]["tpr"], pts[-1]["fpr"], pts[-1]["tpr"]) == (0.0, 0.0, 1.0, 1.0)
    confusion = pd.read_csv(plots / "confusion" / "alpha-churn.csv")
    assert list(confusion.columns) == ["actual", "predicted"]
    assert len(confusion) == _read(evaluated, "leaderboard.json")["rows"][0]["n_test"]


def test_png_figures_are_readable(evaluated):
    from matplotlib.image import imread

    for name in ("leaderboard_heatmap.png", "ablation.png", "gaf_examples.png"):
        path = evaluated / "plots" / name
        assert path.stat().st_size > 1000, name
        image = imread(path)
        assert image.ndim == 3 and image.shape[2] in (3, 4) and min(image.shape[:2]) > 200, (name, image.shape)
        assert image.std() > 0.01, name  # not a blank canvas


def test_gaf_example_picks_the_first_positive_and_negative_test_entity(tmp_path):
    folder = tmp_path / "features" / "d"
    folder.mkdir(parents=True)
    y = np.array([1, 0, 1, 0, 1, 0], dtype=np.int8)
    split = np.array([2, 0, 0, 1, 2, 2], dtype=np.int8)  # test rows 0 (y=1), 4 (y=1), 5 (y=0)
    image = np.arange(6 * 4 * 3 * 3, dtype=np.float32).reshape(6, 4, 3, 3)
    np.save(folder / "ids.npy", np.array([f"e{i}" for i in range(6)]))
    np.save(folder / "image.npy", image)
    np.savez(folder / "labels.npz", late=y[::-1].copy(), early=y)
    np.savez(folder / "splits.npz", late=split, early=split)
    (folder / "meta.json").write_text(json.dumps({"channels": ["spend", "count"], "tasks": ["early", "late"]}))
    ex = gaf_example(folder)
    assert str(ex["status"]) == "ok" and str(ex["task"]) == "early" and str(ex["channel"]) == "spend"
    assert list(ex["ids"]) == ["e0", "e5"]
    np.testing.assert_array_equal(ex["images"], image[[0, 5], :2])
    # the stored file is the same bytes every time, and a dataset with its own pictures writes a marker
    write_gaf_example(folder, tmp_path / "a.npz")
    write_gaf_example(folder, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    (folder / "meta.json").write_text(json.dumps({"channels": ["posts"], "tasks": ["early"], "image_source": "dataset"}))
    assert {k: str(v) for k, v in gaf_example(folder).items()} == {"status": "no_isa_gaf"}
    # no negative test entity: the file says so, and the figure (not the convert step) fails with it
    np.savez(folder / "labels.npz", early=np.ones(6, dtype=np.int8))
    (folder / "meta.json").write_text(json.dumps({"channels": ["spend"], "tasks": ["early"]}))
    write_gaf_example(folder, tmp_path / "ex" / "d.npz", shown_as="data/features/d")
    with pytest.raises(HmsparError, match="data/features/d: task 'early' has no positive or no negative test entity"):
        plots.gaf_examples(["d"], tmp_path / "ex", tmp_path / "g.png")
    with pytest.raises(HmsparError, match=r"e\.npz: missing \(run the convert stage first\)"):
        plots.gaf_examples(["e"], tmp_path / "ex", tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()


def test_no_ablation_figure_without_ablation_results(tmp_path):
    results, examples = _build_tree(tmp_path, with_ablation=False)
    stale = tmp_path / "plots" / "ablation.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"stale")
    params = {"evaluate": {"bootstrap_samples": 20}}
    written = report_evaluate(results, examples, params, tmp_path / "metrics", tmp_path / "plots")
    assert "ablation" not in written and not stale.exists()
    assert (tmp_path / "plots" / "leaderboard_heatmap.png").exists()


def test_results_table(evaluated):
    table = (evaluated / "metrics" / "results_table.md").read_text()
    assert table.startswith("| Run | Model |") and "2024-01-02" in table and "**" in table
    assert sum(line.startswith("| ") for line in table.splitlines()) == 1 + 7  # header + one per leaderboard row


def test_missing_results_give_clear_errors(tmp_path):
    with pytest.raises(HmsparError, match="results directory not found"):
        report_evaluate(tmp_path / "results", tmp_path, {}, tmp_path / "m", tmp_path / "p")
    (tmp_path / "results" / "hmspar" / "r" / "seed0").mkdir(parents=True)
    with pytest.raises(HmsparError, match="no metrics.json found"):
        report_evaluate(tmp_path / "results", tmp_path, {}, tmp_path / "m", tmp_path / "p")
    (tmp_path / "results" / "hmspar" / "r" / "seed0" / "metrics.json").write_text(
        json.dumps({"model": "hmspar", "run": "r", "dataset": "d", "task": "t", "seed": 0, "threshold": 0.5}))
    with pytest.raises(HmsparError, match=r"seed0/predictions.csv: missing"):
        report_evaluate(tmp_path / "results", tmp_path, {}, tmp_path / "m", tmp_path / "p")
    for bad, message in (({"bootstrap_sample": 5}, "evaluate.bootstrap_sample: unknown key"),
                         ({"confidence": 1.5}, "evaluate.confidence: must lie strictly between 0 and 1")):
        with pytest.raises(HmsparError, match=message):
            report_evaluate(tmp_path / "results", tmp_path, {"evaluate": bad}, tmp_path / "m", tmp_path / "p")
    assert not (tmp_path / "m").exists()


def test_mismatched_test_sets_are_rejected(tmp_path):
    results, examples = _build_tree(tmp_path, with_ablation=False)
    path = results / "baselines" / "alpha" / "lgbm" / "alpha-churn" / "seed1" / "predictions.csv"
    frame = pd.read_csv(path)
    frame.drop(index=frame.index[frame["split"] == "test"][0]).to_csv(path, index=False)
    with pytest.raises(HmsparError, match="test entities differ"):
        leaderboard.discover_results(results)


def test_evaluate_reads_only_the_classification_result_folders(tmp_path):
    """The stage reads results/{hmspar,ablation,baselines} (CLASSIFICATION_RESULTS) only: a run folder
    elsewhere under results/ (the rec track's) is not read."""
    import yaml

    from hmspar.pipeline import CLASSIFICATION_RESULTS

    results, _ = _build_tree(tmp_path, with_ablation=True)
    everything = leaderboard.discover_results(results)
    stray = results / "rec" / "shop" / "pop" / "seed0"
    stray.mkdir(parents=True)
    (stray / "metrics.json").write_text("{not json")  # would fail to load if it were read
    with pytest.raises(HmsparError, match="rec/shop/pop/seed0/metrics.json"):
        leaderboard.discover_results(results)
    picked = leaderboard.discover_results(results, CLASSIFICATION_RESULTS)
    assert [(r.run, r.model, r.seed) for r in picked] == [(r.run, r.model, r.seed) for r in everything]
    assert {r.model for r in picked} >= {"hmspar", "lgbm", "hmspar[series+text]"}
    with pytest.raises(HmsparError, match="no metrics.json found"):
        leaderboard.discover_results(results, ("rec_global",))
    deps = yaml.safe_load((ROOT / "pipeline.yaml").read_text())["stages"]["evaluate"]["deps"]
    assert "results" in deps  # covers every folder it reads (a folder per name would fail without ablation runs)


def test_stage_exits_2_with_error_message(tmp_path):
    (tmp_path / "params.yaml").write_text("evaluate:\n  bootstrap_samples: 10\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "stages.evaluate"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: results: results directory not found"), proc.stderr


def test_dvc_template_renders_curves_by_model(evaluated):
    import copy

    from dvc_render import VegaRenderer
    from dvc_render.vega_templates import Template

    from hmspar.report.plots import DVC_BY_MODEL_TEMPLATE

    points = json.loads((evaluated / "plots" / "roc" / "alpha-churn.json").read_text())
    datapoints = [dict(p, rev="workspace") for p in points]
    template = Template(copy.deepcopy(DVC_BY_MODEL_TEMPLATE), name="by_model")
    renderer = VegaRenderer(datapoints, "roc", template=template, x="fpr", y="tpr")
    spec = renderer.get_filled_template()
    assert spec["encoding"]["color"]["field"] == "model"
    assert spec["encoding"]["x"]["field"] == "fpr" and spec["encoding"]["y"]["field"] == "tpr"
    assert len(spec["data"]["values"]) == len(points)
    assert "<DVC_METRIC" not in json.dumps(spec)


def test_partial_results_agree_with_evaluate(evaluated, tmp_path):
    """benchmarks.partial_results (the progress view of a running repro) reads the same results tree with
    evaluate's code: its HMSPAR-vs-best-baseline rows equal metrics/significance.json, and a run filter
    restricts it (a run with no outputs yet is an error, not an empty table)."""
    import yaml

    from benchmarks.partial_results import table

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    sig = _read(evaluated, "significance.json")["runs"]
    text = table(evaluated / "results", None, params)
    for run, entry in sig.items():
        assert (f"| {run} | {entry['baseline']} | {entry['auc_difference']:+.4f} | "
                f"[{entry['ci_low']:+.4f}, {entry['ci_high']:+.4f}] | {entry['seeds']} |") in text
    only = table(evaluated / "results", ["alpha-churn"], params)
    assert "alpha-churn" in only and "beta-risk-G0" not in only
    with pytest.raises(SystemExit, match="no finished seed outputs"):
        table(evaluated / "results", ["gamma-none"], params)
