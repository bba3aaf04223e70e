"""The shared torch training loop of sequential recommenders (SASRec, GRU4Rec and any model written against
:class:`hmspar.rec.base.Recommender` that learns from sequences).

How to use it from a recommender::

    class MyRec(TorchSequentialRecommender):   # fit/score/pickling as below come with the base class
        Config = MyConfig                        # a frozen dataclass with a field ``train: SeqTrainConfig``
        _build = staticmethod(build_my_net)      # (n_items, cfg) -> a SequentialNet (see below)

    # what TorchSequentialRecommender.fit and .score do (write them yourself if the net needs more):
    def fit(self, train, items, val=None):
        self.n_items = items.n_items
        with torch_seed(self.seed):                      # init and dropout seeded, global RNG untouched
            self.net_ = type(self)._build(items.n_items, self.cfg)
            self.report_ = fit_sequential(self.net_, train, val, self.cfg.train, self.seed)
        return self

    def score(self, histories):
        return score_histories(self.net_, histories, self.cfg.train)

A *SequentialNet* is a ``torch.nn.Module`` with two methods:

``loss(items, times) -> scalar``
    items (B, L) int64, left-padded training histories (0 = padding), times (B, L) float64 days. The net
    shifts internally: it encodes ``items[:, :-1]`` and position ``t`` predicts ``items[:, t + 1]``;
    :func:`next_item_loss` computes the cross-entropy over the whole catalogue at every non-padding
    position. (Encode ``L - 1`` inputs, not ``L``: scoring encodes ``max_len`` items and training
    histories are cropped to ``max_len + 1``, so positions line up.)
``score(items, times, target_times) -> (B, n_items + 1)``
    Scores of every item as the next one after each history (target_times (B,) may be used for the gap,
    never the target item).

:func:`fit_sequential` then does the rest, identically for every model: histories cropped to their last
``max_len + 1`` items (rows with fewer than two items dropped), batches shuffled by a ``torch.Generator``
seeded from the run seed, AdamW with gradient clipping, one validation pass per epoch scored by the
evaluation module (full ranking, the protocol's seen-item masking) and early stopping on validation
NDCG@10 with a *deep copy* of the best state, which is loaded back at the end. Test targets never reach it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from hmspar.rec.base import Histories, ItemFeatures, Recommender
from hmspar.rec.evaluate import ndcg, rank_batched


@dataclasses.dataclass(frozen=True)
class SeqTrainConfig:
    """``rec.recommenders.<model>.train`` -- the loop's settings.

    Attributes
    ----------
    epochs : int
        Maximum number of passes over the training histories.
    batch_size, eval_batch_size : int
        Training histories per step; histories per validation/scoring batch.
    lr, weight_decay : float
        AdamW settings.
    patience : int
        Stop after this many epochs without a better validation NDCG@10.
    grad_clip : float
        Clip the gradient norm (0: no clipping).
    max_len : int
        Histories are cropped to their last ``max_len`` items (training: ``max_len + 1`` to shift).
    num_threads : int
        ``torch.set_num_threads`` during fit and scoring (0: torch's default).
    """

    epochs: int = 20
    batch_size: int = 256
    eval_batch_size: int = 2048
    lr: float = 0.001
    weight_decay: float = 0.0
    patience: int = 3
    grad_clip: float = 1.0
    max_len: int = 50
    num_threads: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "max_len", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")


@contextlib.contextmanager
def torch_seed(seed: int) -> Iterator[None]:
    """Seed torch's layer randomness (init, dropout) inside ``fork_rng``: the global state is restored."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    import torch

    old = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def next_item_loss(hidden: Any, item_weight: Any, items: Any) -> Any:
    """Cross-entropy over the whole catalogue of the next item at every non-padding position.

    Parameters
    ----------
    hidden : torch.Tensor
        (B, L - 1, d) states of the net run on ``items[:, :-1]``; position ``t`` has seen
        ``items[:, :t + 1]`` and predicts ``items[:, t + 1]``.
    item_weight : torch.Tensor
        (n_items + 1, d) output item vectors (row 0, padding, is never a target).
    items : torch.Tensor
        (B, L) int64 left-padded item indices.

    Returns
    -------
    torch.Tensor
        Scalar mean loss over positions whose input and next item are both real.
    """
    import torch.nn.functional as F

    inputs, targets = items[:, :-1], items[:, 1:]                    # (B, L-1)
    valid = (inputs > 0) & (targets > 0)
    h = hidden[valid]                                                 # (N, d)
    logits = h @ item_weight.T                                        # (N, n_items + 1)
    logits[:, 0] = float("-inf")
    return F.cross_entropy(logits, targets[valid])


def crop(histories: Histories, length: int) -> Histories:
    """The last ``length`` columns of the histories (they are left-padded, so this keeps the recent items)."""
    return dataclasses.replace(histories, items=histories.items[:, -length:], times=histories.times[:, -length:])


def score_histories(net: Any, histories: Histories, cfg: SeqTrainConfig) -> np.ndarray:
    """(B, n_items + 1) float32 scores of ``net`` for ``histories`` (cropped to ``cfg.max_len``), in eval
    mode and without gradients, batch by batch."""
    import torch

    h = crop(histories, cfg.max_len)
    was_training = net.training
    net.eval()
    out = []
    with torch.no_grad(), _threads(cfg.num_threads):
        for s in range(0, len(h), cfg.eval_batch_size):
            items = torch.as_tensor(h.items[s:s + cfg.eval_batch_size], dtype=torch.long)
            times = torch.as_tensor(h.times[s:s + cfg.eval_batch_size], dtype=torch.float64)
            tt = None if h.target_times is None else torch.as_tensor(h.target_times[s:s + cfg.eval_batch_size])
            out.append(net.score(items, times, tt).float().numpy())
    net.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def validation_ndcg(net: Any, val: Histories, cfg: SeqTrainConfig, k: int = 10) -> float:
    """Mean validation NDCG@k under the protocol's masking (``val.exclude_seen``)."""
    ranks = rank_batched(lambda h: score_histories(net, h, cfg), val, batch_size=cfg.eval_batch_size)["rank"]
    return float(ndcg(ranks, k).mean())


def fit_sequential(net: Any, train: Histories, val: Histories | None, cfg: SeqTrainConfig, seed: int
                   ) -> dict[str, Any]:
    """Train ``net`` (a SequentialNet, see the module docstring) in place and load its best state.

    Parameters
    ----------
    net : torch.nn.Module
        With ``loss(items, times)`` and ``score(items, times, target_times)``.
    train : Histories
        Training histories (no targets).
    val : Histories or None
        Validation histories and targets; None trains for ``cfg.epochs`` without early stopping.
    cfg : SeqTrainConfig
    seed : int
        Seeds the batch order (a ``torch.Generator``); call inside :func:`torch_seed` for dropout.

    Returns
    -------
    dict
        ``best_epoch`` (1-based), ``best_val_ndcg@10``, ``epochs_run`` and ``history`` (per-epoch
        ``{epoch, loss, val_ndcg@10}``). Contains no timings (it goes into cached outputs).
    """
    import torch

    h = crop(train, cfg.max_len + 1)
    rows = np.flatnonzero((h.items > 0).sum(axis=1) >= 2)
    items = torch.as_tensor(h.items[rows], dtype=torch.long)
    times = torch.as_tensor(h.times[rows], dtype=torch.float64)
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state, best_epoch, bad = -1.0, None, 0, 0
    history = []
    with _threads(cfg.num_threads):
        for epoch in range(1, cfg.epochs + 1):
            net.train()
            perm = torch.randperm(items.shape[0], generator=gen)
            total, steps = 0.0, 0
            for s in range(0, perm.numel(), cfg.batch_size):
                idx = perm[s:s + cfg.batch_size]
                batch = items[idx]
                used = int((batch > 0).sum(dim=0).nonzero()[0]) if batch.numel() else 0  # drop all-pad columns
                loss = net.loss(batch[:, used:], times[idx][:, used:])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
                opt.step()
                total += float(loss.detach())
                steps += 1
            record = {"epoch": epoch, "loss": total / max(steps, 1)}
            if val is not None:
                score = validation_ndcg(net, val, cfg)
                record["val_ndcg@10"] = score
                if score > best:
                    best, best_epoch, bad = score, epoch, 0
                    best_state = copy.deepcopy(net.state_dict())
                else:
                    bad += 1
            history.append(record)
            if val is not None and bad >= cfg.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        best_epoch = len(history)
    net.eval()
    return {"best_epoch": best_epoch, "best_val_ndcg@10": best if val is not None else None,
            "epochs_run": len(history), "history": history}


class TorchSequentialRecommender(Recommender):
    """Base of recommenders whose net is trained by :func:`fit_sequential`.

    A subclass sets ``Config`` (with a ``train: SeqTrainConfig`` field) and ``_build``, a static function
    ``(n_items, cfg) -> SequentialNet``; ``fit``, ``score`` and pickling (weights only, so the net may be a
    class defined inside ``_build``, which keeps torch out of module import time) come from here.
    A multimodal model that needs item features inside the net can override ``fit`` and call
    ``type(self)._build`` with them.
    """

    _build: Any = None

    def fit(self, train: Histories, items: ItemFeatures, val: Histories | None = None) -> "TorchSequentialRecommender":
        self.n_items = items.n_items
        with torch_seed(self.seed):
            self.net_ = type(self)._build(items.n_items, self.cfg)
            self.report_ = fit_sequential(self.net_, train, val, self.cfg.train, self.seed)
        return self

    def score(self, histories: Histories) -> np.ndarray:
        return score_histories(self.net_, histories, self.cfg.train)

    def __getstate__(self) -> dict[str, Any]:  # the nets are local classes: pickle their weights only
        state = dict(self.__dict__)
        net = state.pop("net_", None)
        if net is not None:
            state["net_state_"] = {k: v.clone() for k, v in net.state_dict().items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state.pop("net_state_", None)
        self.__dict__.update(state)
        if weights is not None:
            self.net_ = type(self)._build(self.n_items, self.cfg)
            self.net_.load_state_dict(weights)
            self.net_.eval()
