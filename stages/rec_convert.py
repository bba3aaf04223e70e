"""DVC stage `rec_convert@<dataset>`: item modality tables and user sequences in data/rec/features/<dataset>/
(see :func:`hmspar.rec.convert.convert_dataset`)."""

from hmspar import cli
from hmspar.params import load_params
from hmspar.rec.convert import convert_dataset


def _run(argv: list[str]) -> None:
    print(f"rec_convert: wrote {convert_dataset(argv[0], load_params())}")


if __name__ == "__main__":
    cli.main(_run, "python -m stages.rec_convert <dataset>", n_args=1)
