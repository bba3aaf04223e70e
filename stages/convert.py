"""DVC stage `convert@<dataset>`: see :func:`hmspar.pipeline.convert`."""

from hmspar import cli
from hmspar.pipeline import features as pipeline
from hmspar.params import load_params


def dynamic_imports(argv: list[str], params: dict) -> list[str]:
    """The dataset's module (its typed config), loaded by name (for the dependency test)."""
    from hmspar.pipeline.data import dataset_module

    return [dataset_module(params, argv[0])]


def _run(argv: list[str]) -> None:
    pipeline.convert(argv[0], load_params())


if __name__ == "__main__":
    cli.main(_run, "python -m stages.convert <dataset>", n_args=1)
