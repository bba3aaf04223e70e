"""DVC stage `ablation@<run>`: HMSPAR retrained on modality subsets; see :func:`hmspar.pipeline.ablation`."""

from hmspar import cli
from hmspar.pipeline import fit as pipeline
from hmspar.params import load_params


def dynamic_imports(argv: list[str], params: dict) -> list[str]:
    """HMSPAR's module, loaded through the registry (for the dependency test)."""
    from hmspar.models.registry import module_name

    return [module_name("hmspar")]


def _run(argv: list[str]) -> None:
    pipeline.ablation(argv[0], load_params())


if __name__ == "__main__":
    cli.main(_run, "python -m stages.ablation <run>", n_args=1)
