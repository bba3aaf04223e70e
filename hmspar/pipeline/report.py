"""The ``evaluate`` stage (leaderboard, significance, plots, results table); see :mod:`hmspar.report.evaluate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hmspar.config import build
from hmspar.pipeline import CLASSIFICATION_RESULTS, GAF_EXAMPLES_ROOT, LIVE_ROOT, RESULTS_ROOT


def evaluate(params: dict[str, Any]) -> dict[str, Path]:
    """``evaluate``: leaderboard, significance, headline metrics, plots and the results table.

    Reads ``params.yaml: evaluate`` only, every run output under ``results/{hmspar,ablation,baselines}``, the DVCLive curves and the
    GAF figure's examples under ``data/gaf_examples`` (picked by the convert stages); see :func:`hmspar.report.evaluate.evaluate`.
    """
    from hmspar.report.evaluate import evaluate as run_evaluate
    from hmspar.report.leaderboard import EvaluateConfig

    cfg = build(EvaluateConfig, params.get("evaluate"), "evaluate")  # fail on a bad key before reading results
    return run_evaluate(RESULTS_ROOT, GAF_EXAMPLES_ROOT, cfg, Path("metrics"), Path("plots"), live_root=LIVE_ROOT,
                        result_folders=CLASSIFICATION_RESULTS)

