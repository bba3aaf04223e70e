"""The ``generate@<dataset>`` stage (simulate ``datasets.<dataset>``); features are :mod:`hmspar.pipeline.features`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hmspar.io import atomic_dir
from hmspar.pipeline import RAW_ROOT, dataset_section


def dataset_module(params: dict[str, Any], name: str) -> str:
    """The simulator or importer module that dataset ``name`` loads by name (see ``stages/*.dynamic_imports``)."""
    from hmspar.data.generators import module_name

    section = dataset_section(params, name)
    return module_name(section.get("kind") or name if isinstance(section, dict) else name)


def generate(name: str, params: dict[str, Any], progress: bool = True) -> Path:
    """``generate@<name>``: simulate dataset ``name`` into ``data/raw/<name>/``."""
    from hmspar.data.generators import dataset_config, generator_module

    cfg = dataset_config(name, dataset_section(params, name))
    dataset = generator_module(cfg.kind).generate(cfg, progress=progress)
    dataset.name = name
    out = RAW_ROOT / name
    with atomic_dir(out) as tmp:
        dataset.save(tmp)
    return out
