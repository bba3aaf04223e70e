"""DVC stage `baseline@<dataset>-<model>`: see :func:`hmspar.pipeline.baseline`."""

from hmspar import cli, pipeline
from hmspar.params import load_params


def _run(argv: list[str]) -> None:
    pipeline.baseline(argv[0], argv[1], load_params())


if __name__ == "__main__":
    cli.main(_run, "python -m stages.baseline <dataset> <model>", n_args=2)
