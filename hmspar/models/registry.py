"""The model registry: every model (HMSPAR and each baseline) is a name mapped to ``module:Class``.

Classes are imported lazily, so asking for LightGBM does not import torch and vice versa. Each class
implements :class:`hmspar.models.base.Model` and carries a ``Config`` dataclass read from
``baselines.<name>`` (or ``model`` for HMSPAR) and capability ``TAGS`` (:mod:`hmspar.registry`).
"""

from __future__ import annotations

from typing import Any

from hmspar.registry import Registry

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


MODELS = Registry("model", "baselines.{name}", REGISTRY)


def module_name(name: str) -> str:
    """Dotted name of the module that holds model ``name`` (imported only by :func:`model_class`)."""
    return MODELS.module(name)


def model_class(name: str) -> type:
    """Import and return the class registered under ``name``."""
    return MODELS.cls(name)


def make_model(name: str, section: dict[str, Any] | None, seed: int, where: str | None = None) -> Any:
    """Build model ``name`` from its params section (unknown keys rejected) with the given seed."""
    return MODELS.build(name, section, seed, where)
