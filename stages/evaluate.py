"""DVC stage `evaluate`: leaderboard, significance, headline metrics, plots and the results table.

Reads ``params.yaml: evaluate`` and every run output under ``results/{hmspar,ablation,baselines}``; see :func:`hmspar.pipeline.evaluate`.
"""

from hmspar import cli
from hmspar.pipeline import report as pipeline
from hmspar.params import load_params


def _run(argv: list[str]) -> None:
    written = pipeline.evaluate(load_params())
    print("evaluate: wrote " + ", ".join(str(p) for p in written.values()))


if __name__ == "__main__":
    cli.main(_run, "python -m stages.evaluate", n_args=0)
