"""The model registry: every model (HMSPAR and each baseline) is a name mapped to ``module:Class``.

Classes are imported lazily, so asking for LightGBM does not import torch and vice versa. Each class
implements :class:`hmspar.models.base.Model` and carries a ``Config`` dataclass read from
``baselines.<name>`` (or ``model`` for HMSPAR).
"""

from __future__ import annotations

import importlib
from typing import Any

from hmspar.config import build
from hmspar.errors import HmsparError

REGISTRY: dict[str, str] = {
    "hmspar": "hmspar.models.hmspar:HMSPAR",
    # gradient-boosted trees and forests
    "xgboost": "hmspar.models.baselines.trees:XGBoostModel",
    "lightgbm": "hmspar.models.baselines.trees:LightGBMModel",
    "catboost": "hmspar.models.baselines.trees:CatBoostModel",
    "random_forest": "hmspar.models.baselines.trees:RandomForestModel",
    # deep sequence models trained from scratch with the shared Trainer
    "lstm": "hmspar.models.baselines.sequence:LSTMModel",
    "cnn1d": "hmspar.models.baselines.sequence:CNN1DModel",
    "transformer": "hmspar.models.baselines.sequence:TransformerModel",
    "time_moe": "hmspar.models.baselines.time_moe:TimeMoEModel",
    "mptsnet": "hmspar.models.baselines.mptsnet:MPTSNetModel",
    "units": "hmspar.models.baselines.units:UniTSModel",
    "vqshape": "hmspar.models.baselines.vqshape:VQShapeModel",
    # representation learning, retrieval and kernels
    "tloss": "hmspar.models.baselines.tloss:TLossModel",
    "modern_nca": "hmspar.models.baselines.modern_nca:ModernNCAModel",
    "minirocket": "hmspar.models.baselines.minirocket:MiniRocketModel",
    # pretrained tabular foundation models (local checkpoint required; not in the default list)
    "tabpfn": "hmspar.models.baselines.foundation:TabPFNModel",
    "tabicl": "hmspar.models.baselines.foundation:TabICLModel",
}


def module_name(name: str) -> str:
    """Dotted name of the module that holds model ``name`` (imported only by :func:`model_class`)."""
    if name not in REGISTRY:
        raise HmsparError(f"unknown model {name!r} (registered: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[name].split(":")[0]


def model_class(name: str) -> type:
    """Import and return the class registered under ``name``."""
    module_name(name)
    module_name_, cls_name = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name_), cls_name)


def make_model(name: str, section: dict[str, Any] | None, seed: int, where: str | None = None) -> Any:
    """Build model ``name`` from its params section (unknown keys rejected) with the given seed."""
    cls = model_class(name)
    cfg = build(cls.Config, section or {}, where or f"baselines.{name}")
    return cls(cfg, seed=seed)
