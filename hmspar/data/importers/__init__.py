"""Bring your own data: importers that turn user files into the same raw schema the simulators write.

Two dataset kinds read files instead of simulating (``params.yaml: imports.<name>.kind``; the ``import@<name>`` stage):

``transactions`` (:mod:`hmspar.data.importers.transactions`)
    An event log (one row per purchase) aggregated into per-customer period series, a description of the
    input window, static attributes from the entity-level columns, and churn / repurchase / engagement
    labels from a horizon *after* the input window.
``series`` (:mod:`hmspar.data.importers.series`)
    A labelled sequence-classification table (one row per entity: id, label, values), binary or
    multi-class, optionally with a predefined train/test split.

Like the generators, each module defines ``Config`` (a frozen dataclass extending
:class:`~hmspar.data.generators.DatasetConfig`) and ``generate(cfg, progress=True) -> RawDataset``, so the
``generate`` stage and everything downstream (convert, train, baseline, evaluate) treat an imported dataset
exactly like a simulated one. :class:`ImportConfig` relaxes the simulator fields that a file decides:
``n_entities`` becomes an optional cap, ``length`` is read from the file (or from ``input_periods``), and
``seed`` only seeds the split drawn by the convert step (and the cap's sample).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hmspar.data.generators import IMPORTERS, DatasetConfig

__all__ = ["IMPORTERS", "ImportConfig", "cap_entities"]


@dataclasses.dataclass(frozen=True)
class ImportConfig(DatasetConfig):
    """Settings every importer shares (``params.yaml: imports.<name>``).

    Attributes
    ----------
    path : str
        The user's file, relative to the repository root.
    seed : int
        Seeds the train/validation/test split drawn by the convert step and the ``n_entities`` sample.
    n_entities : int or None
        Optional cap: keep a seeded random sample of this many entities (in their order). None keeps all.
    length : int or None
        Not a params key: the number of input periods, set by the importer's config where it is known
        from the params (``transactions``) and left None where the file decides (``series``).
    image_size : int or None
        ISA-GAF image side used by the convert step.
    """

    path: str = dataclasses.field(kw_only=True)
    seed: int = 0
    n_entities: int | None = None
    length: int | None = dataclasses.field(default=None, init=False)
    image_size: int | None = 16
    #: The dataset's name in params (set by :meth:`named`, not a params key), used in error messages.
    name: str = dataclasses.field(default="", init=False, repr=False, compare=False)

    @property
    def where(self) -> str:
        """``imports.<name>``, the params path that error messages point at."""
        return f"imports.{self.name or '<name>'}"

    def named(self, name: str) -> "ImportConfig":
        """Return a copy with ``name`` recorded for error messages (called by ``dataset_config``)."""
        out = dataclasses.replace(self)
        object.__setattr__(out, "name", name)
        return out

    def __post_init__(self) -> None:  # replaces DatasetConfig's checks, which require every field
        if not self.path.strip():
            raise ValueError("path must name the file to import (relative to the repository root)")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.n_entities is not None and self.n_entities <= 0:
            raise ValueError(f"n_entities must be positive (or null for all entities), got {self.n_entities!r}")
        if self.image_size is not None and self.image_size <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size!r}")
        if not (0 < self.val_fraction < 1 and 0 < self.test_fraction < 1
                and self.val_fraction + self.test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must lie in (0, 1) and sum to less than 1")


def cap_entities(n: int, cap: int | None, seed: int) -> np.ndarray:
    """Positions of the entities to keep: all of them, or a seeded random sample of ``cap`` in order.

    Parameters
    ----------
    n : int
        Number of entities found in the file.
    cap : int or None
        ``imports.<name>.n_entities``.
    seed : int
        ``imports.<name>.seed``; the sample uses ``np.random.default_rng([seed, 4049])``.
    """
    if cap is None or cap >= n:
        return np.arange(n)
    rng = np.random.default_rng([seed, 4049])
    return np.sort(rng.choice(n, size=cap, replace=False))
