"""Recommendation datasets by kind: the ``shop`` and ``fashion`` simulators and the ``interactions`` importer,
found by ``params.yaml: rec.datasets.<name>.kind`` (default: the entry's name)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.io import atomic_dir
from hmspar.rec import fashion, importer, shop

RAW_ROOT = Path("data/rec/raw")

#: kind -> module with ``Config`` and ``generate(cfg, out_dir, progress)``.
KINDS = {"shop": shop, "fashion": fashion, "interactions": importer}


def datasets_section(params: dict[str, Any]) -> dict[str, Any]:
    """``rec.datasets`` of the params, checked to be a non-empty mapping."""
    rec = params.get("rec")
    if not isinstance(rec, dict):
        raise HmsparError("params.yaml: missing key 'rec' (the recommendation track's section)")
    datasets = rec.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        raise HmsparError("params.yaml: 'rec.datasets' must be a non-empty mapping")
    return datasets


def dataset_config(name: str, params: dict[str, Any]) -> Any:
    """The typed config of ``rec.datasets.<name>`` (its ``kind`` picks the module)."""
    datasets = datasets_section(params)
    if name not in datasets:
        raise HmsparError(f"unknown rec dataset {name!r} (rec.datasets in params.yaml: {', '.join(datasets)})")
    section = datasets[name]
    if not isinstance(section, dict):
        raise HmsparError(f"rec.datasets.{name}: expected a mapping of settings, got {section!r}")
    kind = section.get("kind") or name
    if kind not in KINDS:
        raise HmsparError(f"rec.datasets.{name}.kind: unknown kind {kind!r} (known: {', '.join(KINDS)})")
    cfg = build(KINDS[kind].Config, {**section, "kind": kind}, f"rec.datasets.{name}")
    if kind == "interactions":
        cfg = dataclasses.replace(cfg, name=name)
    return cfg


def generate(name: str, params: dict[str, Any], out_dir: Path, progress: bool = False) -> dict[str, Any]:
    """Simulate or import dataset ``name`` into ``out_dir`` (raw schema of :mod:`hmspar.rec.schema`)."""
    cfg = dataset_config(name, params)
    meta = KINDS[cfg.kind].generate(cfg, Path(out_dir), progress=progress)
    return meta


def generate_dataset(name: str, params: dict[str, Any], raw_root: Path = RAW_ROOT, progress: bool = False) -> Path:
    """``rec_generate@<name>``: write ``data/rec/raw/<name>/`` atomically (nothing half-written on failure)."""
    dataset_config(name, params)  # fail on a bad key before touching the output
    out = Path(raw_root) / name
    with atomic_dir(out) as tmp:
        generate(name, params, tmp, progress=progress)
    return out
