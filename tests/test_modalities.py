"""metrics/modalities.json: per run, the best model of each single modality, series + static, late fusion and
HMSPAR, and the two gains with paired-bootstrap intervals (issue 23)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hmspar.report.evaluate import evaluate as report_evaluate
from test_report import PARAMS, RUNS, _write_features, _write_run  # the evaluate fixture's writers

RUN = "alpha-churn"
# model -> (signal strength, results sub-folder, inputs): text carries signal the series and static do not
MODELS = {
    "hmspar": (2.4, "hmspar/{run}", ["series", "image", "text", "static"]),
    "hmspar[series]": (0.6, "ablation/series/{run}", ["series"]),
    "hmspar[text]": (0.9, "ablation/text/{run}", ["text"]),
    "lightgbm": (0.7, "baselines/{dataset}/lightgbm/{run}", ["series", "static"]),
    "lstm": (0.8, "baselines/{dataset}/lstm/{run}", ["series", "static"]),
    "lightgbm_text": (2.2, "baselines/{dataset}/lightgbm_text/{run}", ["series", "static", "text"]),
    "minirocket": (0.5, "baselines/{dataset}/minirocket/{run}", ["series"]),
}


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    base = tmp_path_factory.mktemp("modalities")
    rng = np.random.default_rng(1)
    dataset, task, _ = RUNS[RUN]
    data = _write_features(base / "features", dataset, task, rng)
    from hmspar.convert import write_gaf_example

    write_gaf_example(base / "features" / dataset, base / "gaf" / f"{dataset}.npz")
    for model, (signal, sub, inputs) in MODELS.items():
        for seed in (0, 1):
            folder = base / "results" / sub.format(run=RUN, dataset=dataset) / f"seed{seed}"
            _write_run(folder, model, RUN, seed, data, signal, inputs, rng)
    written = report_evaluate(base / "results", base / "gaf", PARAMS, base / "metrics", base / "plots")
    return json.loads(written["modalities"].read_text())


def test_single_modality_bests_and_the_fusion_rows(table):
    run = table["runs"][RUN]
    assert run["single"]["series"]["model"] in ("hmspar[series]", "minirocket")
    assert run["single"]["text"]["model"] == "hmspar[text]"
    assert run["single"]["image"]["model"] is None and "image" in run["single"]["image"]["reason"]
    assert run["single"]["static"]["model"] is None
    assert run["series_static"]["model"] in ("lightgbm", "lstm")  # the better of the two on test
    assert run["late_fusion"]["model"] == "lightgbm_text"
    assert run["hmspar"]["model"] == "hmspar"


def test_gains_have_paired_intervals_that_see_the_signal(table):
    run = table["runs"][RUN]
    late, fusion = run["late_fusion_gain"], run["fusion_gain"]
    assert (late["a"], fusion["a"], fusion["b"]) == ("lightgbm_text", "hmspar", "hmspar[series]")
    for gain in (late, fusion):
        assert gain["seeds"] == [0, 1]
        assert gain["ci_low"] <= gain["difference"] <= gain["ci_high"]
        assert gain["above_zero"] and not gain["below_zero"]  # signal 2.2-2.4 against 0.6-0.8
    assert table["summary"] == {"runs": 1, "late_fusion_gain_at_least_0.02": 1, "late_fusion_gain_above_zero": 1,
                                "fusion_gain_above_zero": 1, "fusion_gain_below_zero": 0}


def test_runs_without_the_needed_models_say_why(tmp_path):
    from test_report import _build_tree

    results, examples = _build_tree(tmp_path)
    written = report_evaluate(results, examples, PARAMS, tmp_path / "metrics", tmp_path / "plots")
    runs = json.loads(written["modalities"].read_text())["runs"]
    assert "skipped" in runs["alpha-churn"]["fusion_gain"]  # the fixture has hmspar[series+text], not [series]
    assert "skipped" in runs["beta-risk-G0"]["late_fusion_gain"]  # no baseline reads text there
    assert runs["beta-risk-G0"]["single"]["static"]["model"] == "logreg"
