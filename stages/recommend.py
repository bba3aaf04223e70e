"""DVC stage `recommend@<dataset>-<model>` (and `recommend_seq@`, `recommend_mm@`, `recommend_global@`): fit
one recommender per seed, rank validation and test targets (see :func:`hmspar.rec.runner.recommend`).

``python -m stages.recommend [--split <split>] <dataset> <model>``: ``--split`` overrides
``rec.protocol.split`` for a secondary run, written to that split's own results root
(``--split global_time``: ``results/rec_global/<dataset>/<model>``)."""

import sys

from hmspar import cli
from hmspar.params import load_params
from hmspar.rec import registry
from hmspar.rec.runner import recommend

USAGE = "python -m stages.recommend [--split leave_one_out|global_time] <dataset> <model>"


def split_option(argv: list[str]) -> tuple[str | None, list[str]]:
    """``[--split <split>] <dataset> <model>`` -> (the split or None, the positional arguments)."""
    if argv[:1] == ["--split"]:
        return (argv[1] if len(argv) > 1 else None), argv[2:]
    return None, list(argv)


def dynamic_imports(argv: list[str], params: dict) -> list[str]:
    """The recommender module this stage loads by name (for the dependency test)."""
    _, args = split_option(argv)
    return [registry.REGISTRY[args[1]].split(":")[0]] if len(args) > 1 and args[1] in registry.REGISTRY else []


def _run(argv: list[str]) -> None:
    split, (dataset, model) = split_option(argv)
    print(f"recommend: wrote {recommend(dataset, model, load_params(), split=split)}")


if __name__ == "__main__":
    cli.main(_run, USAGE, n_args=4 if sys.argv[1:2] == ["--split"] else 2)
