"""DVC stage `rec_ablation_evaluate`: the rec modality-ablation table and figure
(see :func:`hmspar.rec.ablation_report.rec_ablation_evaluate`)."""

from hmspar import cli
from hmspar.params import load_params
from hmspar.rec.ablation_report import rec_ablation_evaluate


def _run(argv: list[str]) -> None:
    written = rec_ablation_evaluate(load_params())
    print("rec_ablation_evaluate: wrote " + ", ".join(str(p) for p in written.values()))


if __name__ == "__main__":
    cli.main(_run, "python -m stages.rec_ablation_evaluate", n_args=0)
