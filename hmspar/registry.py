"""One registry helper for both tracks: names mapped to ``module:Class``, imported lazily.

:data:`hmspar.models.registry.MODELS` (classification: HMSPAR and the baselines) and
:data:`hmspar.rec.registry.RECOMMENDERS` are instances. A class carries a ``Config`` dataclass, built from its
params section by :func:`hmspar.config.build` (one error wording: ``baselines.lightgbm.num_leaves: ...``), and
capability tags (``TAGS``, a mapping) that the shared contract suite (``tests/test_contract_tags.py``) reads
instead of guessing from names:

``track``      ``"classification"`` or ``"recommendation"``;
``torch``      the class's module imports torch (a class without it can be asked for without importing torch);
``pretrained`` it needs a local checkpoint file named in its params (skipped by the contract tests without one).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any

from hmspar.config import build
from hmspar.errors import HmsparError

#: Tag keys every registered class defines, with the values each may take.
TAG_VALUES: dict[str, tuple[Any, ...]] = {
    "track": ("classification", "recommendation"),
    "torch": (True, False),
    "pretrained": (True, False),
}


@dataclasses.dataclass(frozen=True)
class Registry:
    """Registered names of one kind.

    Attributes
    ----------
    kind : str
        What a name names, for messages (``"model"``, ``"recommender"``).
    section : str
        The params path of a name's settings, with ``{name}`` (``"baselines.{name}"``).
    entries : mapping
        name -> ``"package.module:Class"``.
    """

    kind: str
    section: str
    entries: Mapping[str, str]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.entries)

    def module(self, name: str) -> str:
        """Dotted name of the module that holds ``name`` (nothing is imported)."""
        if name not in self.entries:
            raise HmsparError(f"unknown {self.kind} {name!r} (registered: {', '.join(sorted(self.entries))})")
        return self.entries[name].split(":")[0]

    def path(self, name: str) -> str:
        """The module's source file, relative to the repository root."""
        return self.module(name).replace(".", "/") + ".py"

    def cls(self, name: str) -> type:
        """Import and return the class registered under ``name``."""
        module = self.module(name)
        return getattr(importlib.import_module(module), self.entries[name].split(":")[1])

    def config(self, name: str, section: Any, where: str | None = None) -> Any:
        """``name``'s typed ``Config`` from its params section (unknown keys rejected, named at ``where``);
        a ``Config`` already built is returned as it is."""
        cls = self.cls(name)
        if isinstance(section, cls.Config):
            return section
        return build(cls.Config, section or {}, where or self.section.format(name=name))

    def build(self, name: str, section: Any, seed: int, where: str | None = None) -> Any:
        """An instance of ``name`` from its params section (or its already built ``Config``)."""
        return self.cls(name)(self.config(name, section, where), seed=seed)
