"""DVC stage `recommend@<dataset>-<model>`: fit one recommender per seed, rank validation and test targets
(see :func:`hmspar.rec.runner.recommend`)."""

from hmspar import cli
from hmspar.params import load_params
from hmspar.rec.runner import recommend


def _run(argv: list[str]) -> None:
    print(f"recommend: wrote {recommend(argv[0], argv[1], load_params())}")


if __name__ == "__main__":
    cli.main(_run, "python -m stages.recommend <dataset> <model>", n_args=2)
