"""DVC stage `rec_evaluate`: the rec leaderboard, comparisons, plots and results tables
(see :func:`hmspar.rec.report.rec_evaluate`)."""

from hmspar import cli
from hmspar.params import load_params
from hmspar.rec.report import rec_evaluate


def _run(argv: list[str]) -> None:
    written = rec_evaluate(load_params())
    print("rec_evaluate: wrote " + ", ".join(str(p) for p in written.values()))


if __name__ == "__main__":
    cli.main(_run, "python -m stages.rec_evaluate", n_args=0)
