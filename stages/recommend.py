"""DVC stage `recommend@<dataset>-<model>` (and `recommend_seq@`, `recommend_mm@`): fit one recommender
per seed, rank validation and test targets (see :func:`hmspar.rec.runner.recommend`)."""

from hmspar import cli
from hmspar.params import load_params
from hmspar.rec import registry
from hmspar.rec.runner import recommend


def dynamic_imports(argv: list[str], params: dict) -> list[str]:
    """The recommender module this stage loads by name (for the dependency test)."""
    return [registry.REGISTRY[argv[1]].split(":")[0]] if argv[1] in registry.REGISTRY else []


def _run(argv: list[str]) -> None:
    print(f"recommend: wrote {recommend(argv[0], argv[1], load_params())}")


if __name__ == "__main__":
    cli.main(_run, "python -m stages.recommend <dataset> <model>", n_args=2)
