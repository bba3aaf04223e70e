"""The recommender registry: every recommender is a name mapped to ``module:Class``.

Classes are imported lazily (asking for MostPop does not import torch). Each class implements
:class:`hmspar.rec.base.Recommender` and carries a ``Config`` dataclass read from
``params.yaml: rec.recommenders.<name>``. To add a model, add one entry here and one section under
``rec.recommenders`` (and its name to ``rec.models`` to run it): the contract test in
``tests/test_rec_contract.py`` picks every entry up.
"""

from __future__ import annotations

import importlib
from typing import Any

from hmspar.config import build
from hmspar.errors import HmsparError

REGISTRY: dict[str, str] = {
    # classic peers (numpy only)
    "mostpop": "hmspar.rec.peers.mostpop:MostPop",
    "samecat": "hmspar.rec.peers.samecat:SameCategory",
    "itemknn": "hmspar.rec.peers.itemknn:ItemKNN",
    "ease": "hmspar.rec.peers.ease:EASE",
    # ID-only sequential peers (torch, the shared loop of hmspar.rec.train)
    "gru4rec": "hmspar.rec.peers.gru4rec:GRU4Rec",
    "sasrec": "hmspar.rec.peers.sasrec:SASRec",
}


def recommender_class(name: str) -> type:
    """The class registered under ``name``."""
    if name not in REGISTRY:
        raise HmsparError(f"unknown recommender {name!r} (registered: {', '.join(REGISTRY)})")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def module_path(name: str) -> str:
    """The source file of a registered recommender, relative to the repository root."""
    if name not in REGISTRY:
        raise HmsparError(f"unknown recommender {name!r} (registered: {', '.join(REGISTRY)})")
    return REGISTRY[name].split(":")[0].replace(".", "/") + ".py"


def build_recommender(name: str, section: dict[str, Any] | None, seed: int) -> Any:
    """Instantiate recommender ``name`` from its ``rec.recommenders.<name>`` section."""
    cls = recommender_class(name)
    cfg = build(cls.Config, section, f"rec.recommenders.{name}")
    return cls(cfg, seed=seed)
