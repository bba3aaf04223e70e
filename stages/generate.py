"""DVC stage `generate@<dataset>`: see :func:`hmspar.pipeline.generate`."""

from hmspar import cli, pipeline
from hmspar.params import load_params


def _run(argv: list[str]) -> None:
    pipeline.generate(argv[0], load_params())


if __name__ == "__main__":
    cli.main(_run, "python -m stages.generate <dataset>", n_args=1)
