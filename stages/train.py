"""DVC stage `train@<run>`: HMSPAR on one dataset-task, every seed; see :func:`hmspar.pipeline.train`."""

from hmspar import cli, pipeline
from hmspar.params import load_params


def _run(argv: list[str]) -> None:
    pipeline.train(argv[0], load_params())


if __name__ == "__main__":
    cli.main(_run, "python -m stages.train <run>", n_args=1)
