"""Classification losses used by the Trainer: BCE with a positive-class weight, focal loss (binary and
multi-class), class-weighted cross-entropy, and class weights computed from the *training* labels.

Conventions: binary logits are (B, 1) or (B,) and targets (B,) in {0, 1}; multi-class logits are (B, K)
and targets (B,) in 0..K-1. Every loss returns a scalar (the mean over the batch).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmspar.errors import HmsparError


def class_weights_from_labels(y: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """Balanced class weights ``n / (K * count_k)`` (scikit-learn's ``"balanced"``).

    Parameters
    ----------
    y : np.ndarray
        (n,) training labels encoded 0..K-1.
    n_classes : int, optional
        K; defaults to ``max(y) + 1``.

    Returns
    -------
    np.ndarray
        (K,) float64 weights; a balanced label vector gives all ones.

    Raises
    ------
    HmsparError
        If a class has no training example.
    """
    y = np.asarray(y, dtype=np.int64)
    if y.ndim != 1 or y.size == 0:
        raise HmsparError("class weights: labels must be a non-empty 1-D array")
    k = int(n_classes) if n_classes is not None else int(y.max()) + 1
    if y.min() < 0 or y.max() >= k:
        raise HmsparError(f"class weights: labels must lie in 0..{k - 1}, got {int(y.min())}..{int(y.max())}")
    counts = np.bincount(y, minlength=k).astype(np.float64)
    if np.any(counts == 0):
        raise HmsparError(f"class weights: class {int(np.flatnonzero(counts == 0)[0])} has no training example")
    return y.size / (k * counts)


def _binary_logits(logits: torch.Tensor) -> torch.Tensor:
    if logits.ndim == 2 and logits.shape[1] == 1:
        return logits[:, 0]
    if logits.ndim != 1:
        raise HmsparError(f"binary loss expects logits of shape (B, 1) or (B,), got {tuple(logits.shape)}")
    return logits


class BinaryBCELoss(nn.Module):
    """Binary cross-entropy on logits, positives weighted by ``pos_weight`` (e.g. ``n_neg / n_pos``)."""

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        self.register_buffer("pos_weight", None if pos_weight is None
                             else torch.tensor([float(pos_weight)], dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = _binary_logits(logits)  # (B,)
        return F.binary_cross_entropy_with_logits(x, target.to(x.dtype), pos_weight=self.pos_weight)


class BinaryFocalLoss(nn.Module):
    """Focal loss (Lin et al., 2017): ``-alpha_t (1 - p_t)^gamma log p_t``, averaged over the batch.

    ``alpha`` weighs positives and ``1 - alpha`` negatives; ``alpha=None`` weighs both by one.
    ``gamma = 0`` and ``alpha = None`` give plain binary cross-entropy.
    """

    def __init__(self, alpha: float | None = None, gamma: float = 2.0) -> None:
        super().__init__()
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise HmsparError(f"focal loss: alpha must be in [0, 1], got {alpha!r}")
        self.alpha = None if alpha is None else float(alpha)
        self.gamma = float(gamma)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = _binary_logits(logits)  # (B,)
        t = target.to(x.dtype)
        log_p = F.logsigmoid(x)        # log p(y=1)
        log_q = F.logsigmoid(-x)       # log p(y=0)
        log_pt = t * log_p + (1 - t) * log_q
        pt = log_pt.exp()
        loss = -((1 - pt) ** self.gamma) * log_pt
        if self.alpha is not None:
            loss = loss * (t * self.alpha + (1 - t) * (1 - self.alpha))
        return loss.mean()


class MulticlassFocalLoss(nn.Module):
    """Multi-class focal loss ``-w_y (1 - p_y)^gamma log p_y`` averaged over the batch.

    With ``gamma = 0`` and weights, this is the *plain* mean of weighted cross-entropies (unlike
    :class:`WeightedCrossEntropy`, which divides by the summed weights as torch does).
    """

    def __init__(self, weight: np.ndarray | None = None, gamma: float = 2.0) -> None:
        super().__init__()
        self.register_buffer("weight", None if weight is None
                             else torch.as_tensor(np.asarray(weight), dtype=torch.float32))
        self.gamma = float(gamma)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_prob = F.log_softmax(logits, dim=1)                        # (B, K)
        log_py = log_prob.gather(1, target.long()[:, None])[:, 0]     # (B,)
        loss = -((1 - log_py.exp()) ** self.gamma) * log_py
        if self.weight is not None:
            loss = loss * self.weight[target.long()]
        return loss.mean()


class WeightedCrossEntropy(nn.Module):
    """Multi-class cross-entropy with optional class weights (torch's weighted mean)."""

    def __init__(self, weight: np.ndarray | None = None) -> None:
        super().__init__()
        self.register_buffer("weight", None if weight is None
                             else torch.as_tensor(np.asarray(weight), dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target.long(), weight=self.weight)


def make_loss(kind: str, y_train: np.ndarray, n_classes: int, class_weight: bool = True,
              gamma: float = 2.0) -> nn.Module:
    """The loss for ``kind`` (``"bce"`` or ``"focal"``), weighted from the *training* labels.

    Binary: BCE with ``pos_weight = n_neg / n_pos``, or focal with ``alpha = n_neg / n`` (the share of
    negatives, so the rarer positives weigh more). Multi-class: cross-entropy or focal with balanced class
    weights. ``class_weight=False`` disables all weighting.
    """
    if kind not in ("bce", "focal"):
        raise HmsparError(f"train.loss: expected 'bce' or 'focal', got {kind!r}")
    weights = class_weights_from_labels(y_train, n_classes) if class_weight else None
    if n_classes == 2:
        if kind == "bce":
            return BinaryBCELoss(None if weights is None else weights[1] / weights[0])
        return BinaryFocalLoss(None if weights is None else weights[1] / weights.sum(), gamma)
    if kind == "bce":
        return WeightedCrossEntropy(weights)
    return MulticlassFocalLoss(weights, gamma)
