"""DVC stage `evaluate`: leaderboard, significance, headline metrics, plots and the results table.

Reads ``params.yaml: evaluate`` (see :class:`hmspar.report.leaderboard.EvaluateConfig`) and every run
output under ``results/``; writes ``metrics/`` and ``plots/`` (see :func:`hmspar.report.leaderboard.evaluate`).
"""

from pathlib import Path

from hmspar import cli
from hmspar.config import build
from hmspar.params import load_params

RESULTS_DIR = Path("results")
FEATURES_ROOT = Path("data/features")
METRICS_DIR = Path("metrics")
PLOTS_DIR = Path("plots")


def _run(argv: list[str]) -> None:
    from hmspar.report.leaderboard import EvaluateConfig, evaluate

    params = load_params()
    build(EvaluateConfig, params.get("evaluate"), "evaluate")  # fail on a bad key before reading results
    written = evaluate(RESULTS_DIR, FEATURES_ROOT, params, METRICS_DIR, PLOTS_DIR)
    print("evaluate: wrote " + ", ".join(str(p) for p in written.values()))


if __name__ == "__main__":
    cli.main(_run, "python -m stages.evaluate", n_args=0)
