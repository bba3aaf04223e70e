"""Dataset simulators, one module each, found by name.

Each module defines ``Config`` (a dataclass extending :class:`DatasetConfig`) and
``generate(cfg: Config, progress: bool = True) -> RawDataset``. Modules are imported lazily.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any

from hmspar.config import build, require_positive
from hmspar.errors import HmsparError

GENERATORS = ("merchant", "retail", "cdnow", "instacart", "tafeng", "sales_weekly", "trend", "shapes")


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """Settings every dataset has (``params.yaml: datasets.<name>``).

    ``kind`` selects the generator (default: the dataset's own name), so two entries may share one
    simulator at different sizes. ``length`` is the number of observed periods the model sees; label
    windows (``horizon`` in the generators that have one) come after it and are never stored.
    """

    seed: int
    n_entities: int
    length: int
    image_size: int
    kind: str = ""
    val_fraction: float = 0.15
    test_fraction: float = 0.15

    def __post_init__(self) -> None:
        for name in ("n_entities", "length", "image_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if not (0 < self.val_fraction < 1 and 0 < self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must lie in (0, 1) and sum to less than 1")


#: Kinds that read the user's files instead of simulating (modules in ``hmspar.data.importers``).
IMPORTERS = ("transactions", "series")


def module_name(kind: str) -> str:
    """Dotted name of the module that implements dataset ``kind`` (a simulator or an importer)."""
    if kind in IMPORTERS:
        return f"hmspar.data.importers.{kind}"
    if kind not in GENERATORS:
        raise HmsparError(f"unknown dataset kind {kind!r} (known: {', '.join(GENERATORS + IMPORTERS)})")
    return f"hmspar.data.generators.{kind}"


def generator_module(kind: str) -> ModuleType:
    """Import the module of dataset ``kind`` (see :func:`module_name`)."""
    return importlib.import_module(module_name(kind))


def dataset_config(name: str, section: dict[str, Any]) -> Any:
    """Build the typed config of dataset ``name`` from its ``datasets.<name>`` params section."""
    if not isinstance(section, dict):
        raise HmsparError(f"datasets.{name}: expected a mapping of settings, got {section!r}")
    kind = section.get("kind") or name
    module = generator_module(kind)
    where = f"imports.{name}" if kind in IMPORTERS else f"datasets.{name}"  # the section holding it
    cfg = build(module.Config, section, where)
    require_positive(where, n_entities=cfg.n_entities, length=cfg.length)
    cfg = dataclasses.replace(cfg, kind=kind)
    return cfg.named(name) if kind in IMPORTERS else cfg  # importers name imports.<name> in their errors
