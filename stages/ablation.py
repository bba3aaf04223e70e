"""DVC stage `ablation`: HMSPAR retrained on modality subsets; see :func:`hmspar.pipeline.ablation`."""

from hmspar import cli, pipeline
from hmspar.params import load_params


def _run(argv: list[str]) -> None:
    pipeline.ablation(load_params())


if __name__ == "__main__":
    cli.main(_run, "python -m stages.ablation", n_args=0)
