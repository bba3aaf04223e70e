"""Optimiser pieces shared by every torch training loop (the classification Trainer, the recommendation
loop, the baselines that train their own modules).

torch is not imported here: the functions take modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn


def param_groups(module: "nn.Module", weight_decay: float) -> list[dict[str, Any]]:
    """AdamW parameter groups of ``module``'s trainable parameters: weight matrices, kernels and embedding
    tables (two or more axes) decay by ``weight_decay``; biases and normalisation scales and shifts (one
    axis) do not.

    Returns
    -------
    list of dict
        ``[{"params": decayed, "weight_decay": weight_decay}, {"params": others, "weight_decay": 0.0}]``
        (empty groups left out).
    """
    decay, no_decay = [], []
    for p in module.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def adamw(module: "nn.Module", lr: float, weight_decay: float) -> Any:
    """AdamW over :func:`param_groups` of ``module``, with torch's multi-tensor (``foreach``) update.

    On the CPU torch otherwise updates one tensor at a time; the multi-tensor update computes the same
    values in the same order (tested bit for bit) in about 70% of the time (HMSPAR's 176 tensors: 8.0 against
    11.5 ms per step on two cores, 2026-12-07).
    """
    import torch

    return torch.optim.AdamW(param_groups(module, weight_decay), lr=lr, foreach=True)
