"""Tests of the report page (hmspar.report.page) and the vendored Vega builds (hmspar.report.vega), no browser."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from test_report import PARAMS, RUNS, _build_tree

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.report import leaderboard, page, vega
from hmspar.report.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]


def evaluate_tree(base: Path) -> Path:
    """The synthetic results tree of test_report plus DVCLive curves for one run, evaluated into ``base``."""
    results, features = _build_tree(base)
    for seed in (0, 1):
        folder = base / "dvclive" / "alpha-churn" / f"seed{seed}" / "plots" / "metrics"
        folder.mkdir(parents=True)
        for name, start in (("train_loss", 0.7), ("val_roc_auc", 0.6)):
            rows = "".join(f"{step}\t{start + (0.05 if 'auc' in name else -0.05) * step + 0.01 * seed}\n"
                           for step in range(5))
            (folder / f"{name}.tsv").write_text(f"step\t{name}\n{rows}")
    evaluate(results, features, PARAMS, base / "metrics", base / "plots", date="2024-01-02",
             live_root=base / "dvclive")
    # the report stage's page, from evaluate's outputs (no rec outputs here)
    page.write_report(base / "metrics", base / "plots", build(leaderboard.EvaluateConfig, PARAMS.get("evaluate"),
                                                             "evaluate").report)
    return base


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> Path:
    return evaluate_tree(tmp_path_factory.mktemp("page"))


def _specs(text: str) -> dict:
    match = re.search(r'<script type="application/json" id="hmspar-specs">(.*?)</script>', text, re.S)
    assert match, "no chart specifications in the page"
    return json.loads(match.group(1))


def test_evaluate_writes_a_self_contained_page(evaluated):
    path = evaluated / "plots" / "report.html"
    text = path.read_text(encoding="utf-8")
    assert path.stat().st_size < 3_000_000
    # Nothing is loaded from elsewhere: no external src/href, and the three libraries are inlined.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)
    for name, version, *_ in vega.LIBRARIES:
        assert f'<script data-library="{name}" data-version="{version}">' in text
    specs = _specs(text)
    divs = re.findall(r'<div class="plot" data-spec="(p\d+)" data-name="([^"]*)"', text)
    assert sorted(k for k, _ in divs) == sorted(specs)  # one spec per chart and one chart per spec
    names = {name for _, name in divs}
    for run in RUNS:
        assert {f"{run} ROC", f"{run} PR", f"{run} confusion"} <= names
    assert {"significance", "leaderboard heatmap", "ablation", "alpha-churn training curves"} <= names
    assert "beta-risk-G0 training curves" not in names  # no DVCLive output for that run
    assert 'id="rec"' not in text  # no recommendation outputs, no section


def test_page_charts_carry_the_plot_data(evaluated):
    text = (evaluated / "plots" / "report.html").read_text(encoding="utf-8")
    specs = _specs(text)
    divs = dict((name, key) for key, name in re.findall(r'data-spec="(p\d+)" data-name="([^"]*)"', text))
    roc = specs[divs["alpha-churn ROC"]]
    line = roc["layer"][-1]
    assert line["transform"][0] == {"flatten": ["fpr", "tpr"]}
    values = {v["model"]: v for v in roc["data"]["values"]}
    assert set(values) == {"hmspar", "lgbm", "logreg", "hmspar[series+text]"}
    source = json.loads((evaluated / "plots" / "roc" / "alpha-churn.json").read_text())
    hm = [p for p in source if p["model"] == "hmspar"]
    cfg = page.ReportConfig()
    assert len(values["hmspar"]["fpr"]) == min(len(hm), cfg.curve_points)
    # first and last points kept, values as in the plot data (rounded to 4 decimals)
    assert values["hmspar"]["fpr"][0] == round(hm[0]["fpr"], 4)
    assert values["hmspar"]["tpr"][-1] == round(hm[-1]["tpr"], 4)
    # the significance chart plots what significance.json says
    sig = json.loads((evaluated / "metrics" / "significance.json").read_text())["runs"]
    points = {v["run"]: v for v in specs[divs["significance"]]["data"]["values"]}
    assert points["alpha-churn"]["difference"] == sig["alpha-churn"]["auc_difference"]
    assert points["beta-risk-G0"]["low"] == sig["beta-risk-G0"]["ci_low"]
    # leaderboard table: two seeds give a Student-t interval over seeds
    row = next(r for r in json.loads((evaluated / "metrics" / "leaderboard.json").read_text())["rows"]
               if r["run"] == "alpha-churn" and r["model"] == "lgbm")
    low, high = page.seed_interval(row["roc_auc"], row["n_seeds"])
    half = 12.706 * row["roc_auc"]["std"] / 2 ** 0.5
    assert (low, high) == pytest.approx((row["roc_auc"]["mean"] - half, row["roc_auc"]["mean"] + half))
    assert f"[{low:.3f}, {high:.3f}]" in text
    # training curves: one panel per curve name, one colour per seed
    curves = specs[divs["alpha-churn training curves"]]
    assert {(v["curve"], v["seed"]) for v in curves["data"]["values"]} == \
        {(c, s) for c in ("train_loss", "val_roc_auc") for s in ("seed0", "seed1")}
    assert curves["facet"]["field"] == "curve" and curves["columns"] == 2


def test_page_is_deterministic_and_thins_curves(evaluated, tmp_path):
    first = page.build_report(evaluated / "metrics", evaluated / "plots", page.ReportConfig(curve_points=5))
    assert first == page.build_report(evaluated / "metrics", evaluated / "plots", page.ReportConfig(curve_points=5))
    for spec in _specs(first).values():
        for value in spec.get("data", {}).get("values", []):
            if isinstance(value, dict) and isinstance(value.get("fpr"), list):
                assert len(value["fpr"]) <= 5
    assert page.thin(10, 4) == [0, 3, 6, 9] and page.thin(3, 5) == [0, 1, 2]


def test_rec_section_appears_with_rec_outputs(evaluated, tmp_path):
    """The rec section reads rec_evaluate's leaderboard (dataset -> models -> protocol -> metric) and PNGs,
    only from the paths the report stage passes in."""
    board = {"shop": {"models": {
        "sasrec": {"full": {"ndcg@10": {"mean": 0.21, "std": 0.01}, "hr@10": {"mean": 0.4, "std": 0.02}},
                   "sampled": {"ndcg@10": {"mean": 0.55, "std": 0.01}}},
        "mostpop": {"full": {"ndcg@10": {"mean": 0.05, "std": 0.0}, "hr@10": {"mean": 0.1, "std": 0.0}},
                    "sampled": {"ndcg@10": {"mean": 0.30, "std": 0.0}}}},
        "best_reference": "mostpop",
        "comparisons": {"sasrec": {"difference": 0.16, "ci_low": 0.15, "ci_high": 0.17, "p_value_one_sided": 0.0}}}}
    rec_board, rec_plots = tmp_path / "rec_leaderboard.json", tmp_path / "plots_rec"
    rec_board.write_text(json.dumps(board))
    rec_plots.mkdir()
    shutil.copy(evaluated / "plots" / "leaderboard_heatmap.png", rec_plots / "rec_scatter.png")
    assert 'id="rec"' not in page.build_report(evaluated / "metrics", evaluated / "plots")  # not passed: no section
    text = page.build_report(evaluated / "metrics", evaluated / "plots", rec_board=rec_board, rec_plots=rec_plots)
    assert 'id="rec"' in text and "sasrec" in text and "0.2100 ± 0.0100" in text and "0.5500" in text
    assert "[0.1500, 0.1700]" in text  # the bootstrap against the best classic peer
    assert text.count("data:image/png;base64,") == 2  # the GAF figure and the rec PNG
    keys = {n: k for k, n in re.findall(r'data-spec="(p\d+)" data-name="([^"]*)"', text)}
    spec = _specs(text)[keys["rec leaderboard"]]
    assert {v["model"]: v["value"] for v in spec["data"]["values"]} == {"sasrec": 0.21, "mostpop": 0.05}
    rec_board.write_text("[1, 2")
    with pytest.raises(HmsparError, match="rec_leaderboard.json: cannot be read as JSON"):
        page.build_report(evaluated / "metrics", evaluated / "plots", rec_board=rec_board)
    rec_board.write_text(json.dumps([{"model": "sasrec"}]))
    with pytest.raises(HmsparError, match="rec_leaderboard.json: expected"):
        page.build_report(evaluated / "metrics", evaluated / "plots", rec_board=rec_board)


def test_bad_inputs_and_params_give_clear_errors(tmp_path):
    with pytest.raises(HmsparError, match=r"leaderboard.json: missing"):
        page.build_report(tmp_path / "metrics", tmp_path / "plots")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "leaderboard.json").write_text(json.dumps({"rows": [{"run": "r"}]}))
    with pytest.raises(HmsparError, match=r"leaderboard.json: row 0 lacks the field 'model'"):
        page.build_report(tmp_path / "metrics", tmp_path / "plots")
    for bad, message in (({"curve_points": 1}, "evaluate.report.curve_points: must be at least 2"),
                         ({"plot_width": 10}, "evaluate.report.plot_width: must be between 50 and 2000"),
                         ({"figures": ["../x.png"]}, r"evaluate.report.figures\[0\]: expected a PNG file name"),
                         ({"width": 300}, "evaluate.report.width: unknown key")):
        with pytest.raises(HmsparError, match=message):
            build(leaderboard.EvaluateConfig, {"report": bad}, "evaluate")


def test_vendored_scripts_are_pinned_and_the_dvc_template_is_current(tmp_path, monkeypatch):
    template = vega.dvc_page_template()
    assert "{plot_divs}" in template and "{scripts}" not in template  # dvc-render's CDN tags have no place
    assert "cdn.jsdelivr" not in template
    assert vega.main(["--check", "--path", str(ROOT / vega.DVC_TEMPLATE_PATH)]) == 0, \
        "the committed .dvc/plots/offline_page.html is out of date: run python -m hmspar.report.vega"
    config = (ROOT / ".dvc" / "config").read_text()
    assert re.search(r"html_template\s*=\s*plots/offline_page.html", config)
    # a tampered copy is refused
    vendor = tmp_path / "vendor"
    shutil.copytree(vega.VENDOR_DIR, vendor)
    (vendor / "vega.min.js").write_bytes((vendor / "vega.min.js").read_bytes() + b"\n")
    monkeypatch.setattr(vega, "VENDOR_DIR", vendor)
    with pytest.raises(HmsparError, match="vega.min.js: sha256 .* differs from the pinned"):
        vega.inline_scripts()
    for name in ("LICENSE.vega", "LICENSE.vega-lite", "LICENSE.vega-embed"):
        assert "Redistribution and use in source and binary forms" in (vega.VENDOR_DIR / name).read_text()
