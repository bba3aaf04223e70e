"""DVC stage `convert@<dataset>`: see :func:`hmspar.pipeline.convert`."""

from hmspar import cli
from hmspar.pipeline import data as pipeline
from hmspar.params import load_params


def dynamic_imports(argv: list[str], params: dict) -> list[str]:
    """The dataset's module (its typed config), loaded by name (for the dependency test)."""
    return [pipeline.dataset_module(params, argv[0])]


def _run(argv: list[str]) -> None:
    pipeline.convert(argv[0], load_params())


if __name__ == "__main__":
    cli.main(_run, "python -m stages.convert <dataset>", n_args=1)
