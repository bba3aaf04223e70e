"""DVC stage `import@<dataset>`: the user's file -> raw -> features; see :func:`hmspar.pipeline.import_dataset`."""

from hmspar import cli
from hmspar.pipeline import features as pipeline
from hmspar.params import load_params


def dynamic_imports(argv: list[str], params: dict) -> list[str]:
    """The importer module this stage loads by name (for the dependency test)."""
    from hmspar.pipeline.data import dataset_module

    return [dataset_module(params, argv[0])]


def _run(argv: list[str]) -> None:
    pipeline.import_dataset(argv[0], load_params())


if __name__ == "__main__":
    cli.main(_run, "python -m stages.import_data <dataset>", n_args=1)
