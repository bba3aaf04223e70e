"""DVC stage `rec_pictures@<dataset>`: the lab's picture encoder, pretrained on the training items' pictures,
with its weights, every item's frozen features and a linear probe (see :mod:`hmspar.rec.picture_encoder`)."""

from hmspar import cli
from hmspar.params import load_params
from hmspar.rec.picture_encoder import picture_encoder


def _run(argv: list[str]) -> None:
    print(f"rec_pictures: wrote {picture_encoder(argv[0], load_params())}")


if __name__ == "__main__":
    cli.main(_run, "python -m stages.rec_pictures <dataset>", n_args=1)
