"""Feature stages: ``convert@<dataset>`` (raw -> features) and ``import@<dataset>`` (the user's file -> raw ->
features, one stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.io import atomic_dir
from hmspar.pipeline import FEATURES_ROOT, GAF_EXAMPLES_ROOT, RAW_ROOT, dataset_names, dataset_section
from hmspar.pipeline.data import generate


def convert(name: str, params: dict[str, Any], progress: bool = True) -> Path:
    """``convert@<name>``: raw dataset -> ``data/features/<name>/`` (images, text, static, splits), and
    ``data/gaf_examples/<name>.npz`` (the entities the evaluate stage's GAF figure draws; see
    :func:`hmspar.convert.gaf_example`)."""
    from hmspar.convert import TextConfig, convert_dataset, write_gaf_example
    from hmspar.data.generators import dataset_config

    cfg = dataset_config(name, dataset_section(params, name))
    text_cfg = build(TextConfig, params.get("text"), "text")
    out = FEATURES_ROOT / name
    with atomic_dir(out) as tmp:
        convert_dataset(RAW_ROOT / name, tmp, cfg, text_cfg, progress=progress)
        write_gaf_example(tmp, GAF_EXAMPLES_ROOT / f"{name}.npz", shown_as=out)
    return out


def import_dataset(name: str, params: dict[str, Any], progress: bool = True) -> tuple[Path, Path]:
    """``import@<name>``: the user's file (``imports.<name>.path``) -> ``data/raw/<name>/`` -> features.

    One stage does both steps, so only ``imports.<name>`` and its file are dependencies: a simulated
    dataset never depends on ``data/external``.
    """
    if dataset_names(params).get(name) != "imports":
        raise HmsparError(f"imports.{name}: no such imported dataset in params.yaml")
    return generate(name, params, progress), convert(name, params, progress)
