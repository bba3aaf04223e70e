"""``params.yaml: rec.ablation``, the settings of the recommenders' modality ablation, shared by the
``rec_ablation`` stages (:mod:`hmspar.rec.ablation`) and ``rec_ablation_evaluate``
(:mod:`hmspar.rec.ablation_report`) without importing the models.
"""

from __future__ import annotations

import dataclasses

from hmspar.rec.base import ITEM_MODALITIES

#: Name of the folder (and table row) of the full, unablated model.
FULL = "full"


@dataclasses.dataclass(frozen=True)
class AblationConfig:
    """``params.yaml: rec.ablation``.

    Attributes
    ----------
    models : list of str
        Recommenders ablated, one ``rec_ablation@<dataset>-<model>`` stage each.
    variants : dict of str to str
        Variant name -> the item modality it drops (``image`` is the picture).
    seeds : list of int
        Seeds every variant (and the full model) is fitted at; default ``[0]`` bounds the cost.
    """

    models: list[str] = dataclasses.field(default_factory=lambda: ["mtstrec", "athwe", "pixelrec"])
    variants: dict[str, str] = dataclasses.field(
        default_factory=lambda: {"no_picture": "image", "no_text": "text", "no_price": "price"})
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])

    def __post_init__(self) -> None:
        for name, modality in self.variants.items():
            if name == FULL:
                raise ValueError(f"variant name {FULL!r} is reserved for the full model")
            if modality not in ITEM_MODALITIES or modality == "id":
                raise ValueError(f"variant {name!r}: unknown item modality {modality!r} "
                                 f"(one of {', '.join(m for m in ITEM_MODALITIES if m != 'id')})")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or \
                any(isinstance(s, bool) or not isinstance(s, int) for s in self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {self.seeds!r}")
