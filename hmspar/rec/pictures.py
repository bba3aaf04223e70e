"""Where the lab's picture encoder (stage ``rec_pictures@<dataset>``, :mod:`hmspar.rec.picture_encoder`) puts
its files, and how a recommender's ``vision: lab`` / ``image_weights: lab`` is turned into those paths.

Kept apart from the encoder so that the recommend stages, which resolve ``lab``, import neither torch nor the
encoder's code (their DVC dependencies stay what they run).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hmspar.errors import HmsparError

PICTURES_ROOT = Path("data/rec/pictures")
WEIGHTS_FILE = "cnn.pt"
FEATURES_FILE = "features.npy"
#: The value of ``vision`` (published models) and ``image_weights`` (two-tower) that asks for this encoder.
LAB = "lab"


def resolve_lab(section: dict[str, Any] | None, dataset: str, model: str,
                root: Path = PICTURES_ROOT) -> dict[str, Any]:
    """``section`` with ``vision: lab`` / ``image_weights: lab`` replaced by this dataset's encoder files.

    ``vision: lab`` becomes ``vision: weights`` with ``vision_features`` the encoder's ``features.npy``;
    ``image_weights: lab`` becomes the path of its ``cnn.pt``. Any other section is returned unchanged.

    Raises
    ------
    HmsparError
        ``vision_features`` set beside ``vision: lab``, or the encoder's file absent (naming the stage that
        writes it).
    """
    section = dict(section or {})
    where = f"rec.recommenders.{model}"
    folder = Path(root) / dataset
    if LAB in (section.get("vision"), section.get("image_weights")) and _without_pictures(folder):
        raise HmsparError(f"{where}: dataset {dataset!r} has no item pictures, so the lab's picture encoder has "
                          f"nothing to read (use vision: descriptor / image_weights: null, or drop image from inputs)")
    if section.get("vision") == LAB:
        if section.get("vision_features"):
            raise HmsparError(f"{where}.vision_features: must be null with vision: lab (the lab's encoder "
                              f"writes {folder / FEATURES_FILE})")
        path = folder / FEATURES_FILE
        if not path.is_file():
            raise HmsparError(f"{where}.vision: lab needs {path} (run `dvc repro rec_pictures@{dataset}`)")
        section.update(vision="weights", vision_features=str(path))
    if section.get("image_weights") == LAB:
        path = folder / WEIGHTS_FILE
        if not path.is_file():
            raise HmsparError(f"{where}.image_weights: lab needs {path} (run `dvc repro rec_pictures@{dataset}`)")
        section["image_weights"] = str(path)
    return section


def _without_pictures(folder: Path) -> bool:
    """Whether the encoder's folder says its dataset has no pictures (an imported log without them)."""
    meta = folder / "meta.json"
    return meta.is_file() and json.loads(meta.read_text()).get("has_pictures") is False
