"""DVC stage `rec_generate@<dataset>`: simulate the shop or import a log into data/rec/raw/<dataset>/
(see :func:`hmspar.rec.datasets.generate_dataset`)."""

from hmspar import cli
from hmspar.params import load_params
from hmspar.rec.datasets import generate_dataset


def dynamic_imports(argv: list[str], params: dict) -> list[str]:
    """None: the shop and the log importer are imported statically. (The shop imports the trend simulator's
    picture renderer, whose package can load a classification simulator by name; this stage never does.)"""
    return []


def _run(argv: list[str]) -> None:
    print(f"rec_generate: wrote {generate_dataset(argv[0], load_params())}")


if __name__ == "__main__":
    cli.main(_run, "python -m stages.rec_generate <dataset>", n_args=1)
