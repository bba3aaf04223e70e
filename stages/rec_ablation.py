"""DVC stage `rec_ablation@<dataset>-<model>`: refit one multimodal recommender with each item modality
dropped in turn (see :func:`hmspar.rec.ablation.rec_ablation`)."""

from hmspar import cli
from hmspar.params import load_params
from hmspar.rec import registry
from hmspar.rec.ablation import rec_ablation


def dynamic_imports(argv: list[str], params: dict) -> list[str]:
    """The recommender module this stage loads by name (for the dependency test)."""
    return [registry.REGISTRY[argv[1]].split(":")[0]] if argv[1] in registry.REGISTRY else []


def _run(argv: list[str]) -> None:
    print(f"rec_ablation: wrote {rec_ablation(argv[0], argv[1], load_params())}")


if __name__ == "__main__":
    cli.main(_run, "python -m stages.rec_ablation <dataset> <model>", n_args=2)
