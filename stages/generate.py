"""DVC stage `generate@<dataset>`: simulate ``datasets.<dataset>``; see :func:`hmspar.pipeline.generate`."""

from hmspar import cli
from hmspar.pipeline import data as pipeline
from hmspar.params import load_params


def dynamic_imports(argv: list[str], params: dict) -> list[str]:
    """The simulator module this stage loads by name (for the dependency test)."""
    return [pipeline.dataset_module(params, argv[0])]


def _run(argv: list[str]) -> None:
    pipeline.generate(argv[0], load_params())


if __name__ == "__main__":
    cli.main(_run, "python -m stages.generate <dataset>", n_args=1)
