"""The recommender registry: every recommender is a name mapped to ``module:Class``.

Classes are imported lazily (asking for MostPop does not import torch). Each class implements
:class:`hmspar.rec.base.Recommender` and carries a ``Config`` dataclass read from
``params.yaml: rec.recommenders.<name>``. To add a model, add one entry here and one section under
``rec.recommenders`` (and its name to ``rec.models``, ``rec.sequential_models`` or ``rec.multimodal_models``,
by the stage family whose code it uses, to run it): the contract test in
``tests/test_rec_contract.py`` picks every entry up.
"""

from __future__ import annotations

from typing import Any

from hmspar.registry import Registry

REGISTRY: dict[str, str] = {
    # classic peers (numpy only)
    "mostpop": "hmspar.rec.peers.mostpop:MostPop",
    "samecat": "hmspar.rec.peers.samecat:SameCategory",
    "itemknn": "hmspar.rec.peers.itemknn:ItemKNN",
    "ease": "hmspar.rec.peers.ease:EASE",
    # the chance level and user-based collaborative filtering (seed 004's baselines)
    "random": "hmspar.rec.peers.random:Random",
    "userknn": "hmspar.rec.peers.userknn:UserKNN",
    # repeat- and session-aware peers over the shared features of hmspar/rec/peers/features.py (numpy only)
    "recent": "hmspar.rec.peers.recent:Recent",
    "ranker": "hmspar.rec.peers.ranker:Ranker",
    # ID-only sequential peers (torch, trained by the one loop of hmspar.rec.train)
    "gru4rec": "hmspar.rec.peers.gru4rec:GRU4Rec",
    "sasrec": "hmspar.rec.peers.sasrec:SASRec",
    # the multimodal reference systems (torch, the same loop; shared model parts in hmspar/rec/models/common.py)
    "mtstrec": "hmspar.rec.models.mtstrec:MTSTRec",
    "mtstrec_paper": "hmspar.rec.models.mtstrec_paper:MTSTRecPaper",
    "athwe": "hmspar.rec.models.athwe:ATHWE",
    "athwe_paper": "hmspar.rec.models.athwe_paper:ATHWEPaper",
    "pixelrec": "hmspar.rec.models.pixelrec:PixelRecTwoTower",
    # the seed-004 recommender as its source describes it: a pointwise user-item scorer (same loop settings)
    "pixelrec_paper": "hmspar.rec.models.pixelrec_paper:PixelRecPaper",
}

#: Models run by the ``recommend_seq`` stage (listed in ``rec.sequential_models``): their stage also depends
#: on the torch loop ``hmspar/rec/train.py`` (and ``hmspar/device.py``), which the numpy peers' ``recommend``
#: stage must not.
SEQUENTIAL = ("gru4rec", "sasrec")

#: Models run by the ``recommend_mm`` stage (listed in ``rec.multimodal_models``), whose files live in
#: ``hmspar/rec/models/``: their stage also depends on the torch loop ``hmspar/rec/train.py`` (and
#: ``hmspar/device.py``) and on the model parts ``hmspar/rec/models/common.py``, which the peers'
#: ``recommend`` stage must not.
MULTIMODAL = ("mtstrec", "mtstrec_paper", "athwe", "athwe_paper", "pixelrec", "pixelrec_paper")


RECOMMENDERS = Registry("recommender", "rec.recommenders.{name}", REGISTRY)


def recommender_class(name: str) -> type:
    """The class registered under ``name``."""
    return RECOMMENDERS.cls(name)


def module_path(name: str) -> str:
    """The source file of a registered recommender, relative to the repository root."""
    return RECOMMENDERS.path(name)


def build_recommender(name: str, section: dict[str, Any] | None, seed: int) -> Any:
    """Instantiate recommender ``name`` from its ``rec.recommenders.<name>`` section."""
    return RECOMMENDERS.build(name, section, seed)
