"""DVC stage `baseline_<family>@<dataset>-<model>`: see :func:`hmspar.pipeline.baseline`."""

from hmspar import cli
from hmspar.pipeline import baseline_registry_name
from hmspar.pipeline import fit as pipeline
from hmspar.params import load_params


def dynamic_imports(argv: list[str], params: dict) -> list[str]:
    """The baseline's module, loaded through the registry (for the dependency test)."""
    from hmspar.models.registry import module_name

    return [module_name(baseline_registry_name(params, argv[1]))]


def _run(argv: list[str]) -> None:
    pipeline.baseline(argv[0], argv[1], load_params())


if __name__ == "__main__":
    cli.main(_run, "python -m stages.baseline <dataset> <model>", n_args=2)
