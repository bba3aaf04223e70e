"""The one training loop of the torch recommenders (GRU4Rec, SASRec, MTSTRec, ATHWE, PixelRec):
:class:`TorchSeqRecommender` and its settings :class:`RecTrainConfig` (a model's ``train`` params section).

What the loop does, identically for every model: training histories are cropped to their last
``max_len + 1`` items (users with fewer than two dropped); position ``t`` of ``items[:, :-1]`` predicts
``items[:, t + 1]``. Batches come from a ``torch.Generator`` seeded from the run seed: a random permutation
(``batching: random``, the default) or histories of similar length together (``length``: less padding, but
measured worse); leading all-padding columns of a batch are cut. AdamW with gradient
clipping; after every epoch the validation NDCG@10 of a fixed, seeded subset of ``val_max_users``
validation users is computed by the evaluation module (full ranking, the protocol's seen-item masking),
and training stops after ``patience`` epochs without improvement, loading back a *deep copy* of the best
state. Test targets never reach the loop. Parameter initialisation and dropout run inside
``torch.random.fork_rng`` seeded from the run seed, so the caller's global random state is untouched;
sampled negatives come from a second seeded generator on the training device.

A model subclasses :class:`TorchSeqRecommender` and implements ``build_module`` (see the class).
ID-only nets derive from :class:`NextItemNet` and only write their encoder.

torch is imported at module level: only the torch recommenders import this module (the registry imports
recommender classes lazily).
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import math
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmspar.device import resolve_device
from hmspar.errors import HmsparError
from hmspar.rec.base import Histories, ItemFeatures, Recommender
from hmspar.rec.evaluate import ndcg, rank_batched


@dataclasses.dataclass(frozen=True)
class RecTrainConfig:
    """``rec.recommenders.<model>.train``: the loop's settings, shared by every torch recommender.

    Parameters
    ----------
    epochs : int
        Maximum passes over the training users.
    batch_size : int
        Users per training step.
    batching : {"random", "length"}
        How training users are put into batches each epoch: ``random`` (a seeded shuffle) or ``length``
        (users of similar history length together: less padding, about 1.6x faster on the shop, but measured
        worse: seed 0 test NDCG@10 SASRec 0.1113 vs 0.1202, ATHWE 0.1163 vs 0.1219, validation likewise).
    eval_batch_size : int
        Users per scoring batch.
    lr, weight_decay : float
        AdamW learning rate and decoupled weight decay.
    grad_clip : float
        Maximum global gradient norm; 0 disables clipping.
    patience : int
        Epochs without a better validation NDCG@10 before training stops.
    max_len : int
        Most recent interactions a model reads (longer histories are cut on the left).
    val_max_users : int
        Validation users scored per epoch for early stopping (a fixed, seeded subset); 0 = all.
    device : {"auto", "cpu", "cuda"}
        ``auto`` picks CUDA when available; the device is never hard-coded in a model.
    num_threads : int
        ``torch.set_num_threads`` during fit (0 leaves torch's default).
    """

    epochs: int = 20
    batch_size: int = 128
    batching: Literal["random", "length"] = "random"
    eval_batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    patience: int = 3
    max_len: int = 50
    val_max_users: int = 3000
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "max_len"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.patience < 1:
            raise ValueError(f"patience must be at least 1, got {self.patience!r}")
        if self.batching not in ("random", "length"):
            raise ValueError(f"batching must be 'random' or 'length', got {self.batching!r}")
        if self.val_max_users < 0:
            raise ValueError(f"val_max_users must be 0 (all) or positive, got {self.val_max_users!r}")


def validation_ndcg(score_fn, val: Histories, batch_size: int, k: int = 10) -> float:
    """Mean validation NDCG@k from the track's evaluation module: full ranking against the catalogue
    with the protocol's seen-item masking (``val.exclude_seen``), exactly as the evaluator ranks.

    Parameters
    ----------
    score_fn : callable
        ``Histories -> (B, n_items + 1)`` scores (a recommender's ``score``).
    val : Histories
        Histories with targets.
    batch_size : int
        Users per scoring batch.
    k : int
        Cut-off.
    """
    return float(ndcg(rank_batched(score_fn, val, batch_size=batch_size)["rank"], k).mean())


def _trim(items: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Drop leading columns that are padding in every row (keeps at least one column)."""
    nz = (items > 0).any(0)
    start = int(np.argmax(nz)) if nz.any() else items.shape[1] - 1
    return (items[:, start:],) + tuple(o[:, start:] for o in others)


class TorchSeqRecommender(Recommender):
    """Base of the torch sequence recommenders: next-item training on every position of the training
    histories, early stopping on validation NDCG@10, scoring from the last position.

    The protocol is described in the module docstring; it is the same for every torch recommender.

    Subclasses implement :meth:`build_module`, returning a module with

    - ``loss(items, times, next_items, next_times, generator) -> Tensor`` (scalar; items (B, L) int64,
      times and next_times (B, L) float32 days, next_items (B, L) with 0 where there is no target);
    - ``score(items, times, target_times) -> Tensor`` (B, n_items + 1) for the next item after the
      last position (``target_times`` (B,) float32, NaN where unknown).

    Attributes
    ----------
    module_ : nn.Module
        The network with the best validation epoch's weights (kept on the CPU).
    history_ : list of dict
        Per-epoch ``epoch, loss, val_ndcg@10`` (validation NDCG@10 under the protocol's masking).
    report_ : dict
        ``best_epoch, best_val_ndcg@10, epochs_run, history`` (the recommend stage's ``fit.json``).
    best_epoch_ : int
        1-based epoch whose weights were kept (0 = the initial weights).
    callback : callable or None
        ``callback(epoch, row)`` after every epoch with the history row (e.g. DVCLive logging or a
        benchmark's timer); not pickled.
    """

    def __init__(self, cfg: Any, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.module_: nn.Module | None = None
        self.history_: list[dict[str, float]] = []
        self.best_epoch_ = 0
        self.report_: dict[str, Any] = {}
        self.callback = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["callback"] = None  # may hold an open logger
        return state

    @property
    def train_cfg(self) -> RecTrainConfig:
        return getattr(self.cfg, "train", None) or RecTrainConfig()

    @abc.abstractmethod
    def build_module(self, train: Histories, items: ItemFeatures) -> nn.Module:
        """Build the network for this catalogue (sizes read from ``items``, statistics from ``train``)."""

    # -- data ---------------------------------------------------------------------------------------
    def _examples(self, train: Histories) -> tuple[np.ndarray, np.ndarray]:
        """Training windows: (U, max_len + 1) items and times of users with at least two interactions."""
        L = self.train_cfg.max_len + 1
        items = np.asarray(train.items, dtype=np.int64)[:, -L:]
        times = np.asarray(train.times, dtype=np.float64)[:, -L:]
        if items.shape[1] < L:
            pad = L - items.shape[1]
            items = np.pad(items, ((0, 0), (pad, 0)))
            times = np.pad(times, ((0, 0), (pad, 0)))
        keep = (items > 0).sum(1) >= 2
        return items[keep], times[keep]

    def _batches(self, lengths: np.ndarray, generator: torch.Generator) -> list[np.ndarray]:
        """Row indices per batch, from ``generator``: ``batching: random`` cuts a seeded permutation of the
        rows; ``length`` sorts rows by length (ties in a seeded random order), cuts them into batches and
        shuffles the batch order."""
        bs = self.train_cfg.batch_size
        if self.train_cfg.batching == "random":
            perm = torch.randperm(lengths.size, generator=generator).numpy()
            return [perm[i:i + bs] for i in range(0, perm.size, bs)]
        jitter = torch.rand(lengths.size, generator=generator).numpy()
        order = np.lexsort((jitter, lengths))
        chunks = [order[i:i + bs] for i in range(0, order.size, bs)]
        perm = torch.randperm(len(chunks), generator=generator).numpy()
        return [chunks[i] for i in perm]

    # -- fit ----------------------------------------------------------------------------------------
    def fit(self, train: Histories, items: ItemFeatures, val: Histories | None = None) -> "TorchSeqRecommender":
        """Train on the training histories; ``val`` (validation targets) decides early stopping only.

        Without ``val`` the model trains for ``train.epochs`` epochs and keeps the last weights.
        """
        cfg = self.train_cfg
        self.n_items = items.n_items
        if val is not None and val.targets is None:
            raise HmsparError(f"{type(self).__name__}.fit: validation histories carry no targets")
        ex_items, ex_times = self._examples(train)
        if ex_items.shape[0] == 0:
            raise HmsparError(f"{type(self).__name__}.fit: no training user has two or more interactions")
        device = resolve_device(cfg.device)
        old_threads = torch.get_num_threads()
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        devices = [device.index or 0] if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)  # initialisation and dropout; restored on leaving fork_rng
                module = self.build_module(train, items)
                self._fit_loop(module, ex_items, ex_times, val, device)
        finally:
            if cfg.num_threads > 0:
                torch.set_num_threads(old_threads)
        return self

    def _fit_loop(self, module: nn.Module, ex_items: np.ndarray, ex_times: np.ndarray,
                  val: Histories | None, device: torch.device) -> None:
        cfg = self.train_cfg
        module = module.to(device)
        gen = torch.Generator().manual_seed(self.seed)
        neg_gen = torch.Generator(device=device).manual_seed(self.seed + 1)
        optimiser = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad],
                                      lr=cfg.lr, weight_decay=cfg.weight_decay)
        if val is not None and cfg.val_max_users and len(val) > cfg.val_max_users:
            pick = np.sort(torch.randperm(len(val), generator=torch.Generator().manual_seed(self.seed + 2))
                           .numpy()[:cfg.val_max_users])
            val = val.subset(pick)
        lengths = (ex_items > 0).sum(1)
        best, best_state, bad = -math.inf, None, 0
        self.history_ = []
        self.module_ = module
        for epoch in range(1, cfg.epochs + 1):
            module.train()
            total, steps = 0.0, 0
            for rows in self._batches(lengths, gen):
                it, tm = _trim(ex_items[rows], ex_times[rows])
                it_t = torch.from_numpy(it).to(device)
                tm_t = torch.from_numpy(tm.astype(np.float32)).to(device)
                loss = module.loss(it_t[:, :-1], tm_t[:, :-1], it_t[:, 1:], tm_t[:, 1:], neg_gen)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
                optimiser.step()
                total += float(loss.detach())
                steps += 1
            row: dict[str, float] = {"epoch": epoch, "loss": total / max(steps, 1)}
            if val is not None:
                row["val_ndcg@10"] = validation_ndcg(lambda h: self._score(h, device), val, cfg.eval_batch_size)
                if row["val_ndcg@10"] > best:
                    best, bad = row["val_ndcg@10"], 0
                    best_state = copy.deepcopy(module.state_dict())  # a copy, not a live reference
                    self.best_epoch_ = epoch
                else:
                    bad += 1
            self.history_.append(row)
            if self.callback is not None:
                self.callback(epoch, row)
            if val is not None and bad >= cfg.patience:
                break
        if best_state is not None:
            module.load_state_dict(best_state)
        else:
            self.best_epoch_ = len(self.history_)
        self.module_ = module.cpu().eval()
        # what the recommend stage stores in fit.json (no timings: it is a cached output)
        self.report_ = {"best_epoch": self.best_epoch_, "best_val_ndcg@10": best if val is not None else None,
                        "epochs_run": len(self.history_), "history": self.history_}

    # -- score --------------------------------------------------------------------------------------
    def _score(self, histories: Histories, device: torch.device) -> np.ndarray:
        cfg = self.train_cfg
        module = self.module_
        module.eval()
        L = cfg.max_len
        items = np.asarray(histories.items, dtype=np.int64)[:, -L:]
        times = np.asarray(histories.times, dtype=np.float64)[:, -L:]
        if histories.target_times is None:
            tt = np.full(len(histories), np.nan)
        else:
            tt = np.asarray(histories.target_times, dtype=np.float64)
        out = np.empty((len(histories), self.n_items + 1), dtype=np.float32)
        order = np.argsort((items > 0).sum(1), kind="stable")  # similar lengths share a batch: less padding
        with torch.no_grad():
            for a in range(0, len(histories), cfg.eval_batch_size):
                rows = order[a:a + cfg.eval_batch_size]
                it, tm = _trim(items[rows], times[rows])
                s = module.score(torch.from_numpy(it).to(device),
                                 torch.from_numpy(tm.astype(np.float32)).to(device),
                                 torch.from_numpy(tt[rows].astype(np.float32)).to(device))
                out[rows] = s.float().cpu().numpy()
        out[:, 0] = -np.inf
        return out

    def score(self, histories: Histories) -> np.ndarray:
        """(B, n_items + 1) float32 scores of every item as the next one; column 0 is ``-inf``."""
        if self.module_ is None:
            raise HmsparError(f"{type(self).__name__}: score called before fit")
        if np.asarray(histories.items).shape[1] == 0:
            raise HmsparError(f"{type(self).__name__}: histories have no columns")
        device = resolve_device(self.train_cfg.device)
        self.module_.to(device)
        try:
            return self._score(histories, device)
        finally:
            self.module_.cpu()


def full_softmax_loss(h: torch.Tensor, item_emb: torch.Tensor, next_items: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the next item against the whole catalogue at every position with a target.

    Parameters
    ----------
    h : Tensor
        (B, L, d) user states.
    item_emb : Tensor
        (n_items + 1, d) output item embeddings (row 0 = padding, never a valid class).
    next_items : Tensor
        (B, L) next item, 0 where there is none.
    """
    m = next_items > 0
    logits = h[m] @ item_emb.T                                              # (P, n_items + 1)
    logits[:, 0] = -1e9
    return F.cross_entropy(logits, next_items[m])



#: Edges (days) of the request-gap buckets: the gap between a user's last interaction and the request.
REQUEST_GAP_EDGES = (1 / 24, 0.25, 1.0, 3.0, 7.0, 14.0, 30.0, 60.0, 120.0, 365.0)


def init_embedding_(emb: nn.Embedding, std: float = 0.02) -> nn.Embedding:
    """Truncated normal N(0, std) on [-2 std, 2 std], as SASRec/BERT4Rec initialise every embedding
    (item, position, gap): torch's default N(0, 1) drowns the item signal at the start of training.
    The padding row, if any, is zeroed."""
    nn.init.trunc_normal_(emb.weight, std=std, a=-2 * std, b=2 * std)
    if emb.padding_idx is not None:
        with torch.no_grad():
            emb.weight[emb.padding_idx].zero_()
    return emb


class RequestGap(nn.Module):
    """The ``request_time`` input, the same for every sequential model: an embedding of the bucketed gap
    (days) between each position's interaction and the request it predicts, added to the state.

    With ``request_time: false`` (the default) the loop passes NaN gaps, and no module is built at all.
    Bucket 0 is "unknown" (NaN) and stays zero, so an unknown gap leaves the state unchanged.
    """

    def __init__(self, d: int, edges: tuple[float, ...] = REQUEST_GAP_EDGES) -> None:
        super().__init__()
        self.register_buffer("edges", torch.tensor(edges, dtype=torch.float32), persistent=False)
        self.emb = init_embedding_(nn.Embedding(len(edges) + 2, d, padding_idx=0))

    def forward(self, h: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
        """h (..., d), gap (...) days (NaN = unknown) -> h plus the gap's embedding."""
        known = ~torch.isnan(gap)
        b = torch.bucketize(torch.nan_to_num(gap, nan=0.0).clamp(min=0).float(), self.edges, right=True) + 1
        return h + self.emb(torch.where(known, b, torch.zeros_like(b)))


class NextItemNet(nn.Module, abc.ABC):
    """Base of the ID-only next-item nets (GRU4Rec, SASRec): an item embedding table shared by the input
    and the output, an encoder written by the subclass, and the loop's ``loss``/``score`` interface.

    Parameters
    ----------
    n_items : int
        Catalogue size (row 0 of the table is padding).
    d : int
        Embedding size (the encoder's output size too).
    """

    def __init__(self, n_items: int, d: int) -> None:
        super().__init__()
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        nn.init.normal_(self.item.weight, std=0.05)
        with torch.no_grad():
            self.item.weight[0].zero_()

    @abc.abstractmethod
    def encode(self, items: torch.Tensor) -> torch.Tensor:
        """items (B, L) left-padded item indices -> states (B, L, d); state ``t`` has seen the items up to ``t``."""

    def loss(self, items, times, next_items, next_times, generator) -> torch.Tensor:
        """Full-catalogue cross-entropy of the next item at every position whose own item is real (a
        padded position has seen nothing, so it predicts nothing); items and next_items (B, L)."""
        targets = torch.where(items > 0, next_items, torch.zeros_like(next_items))   # (B, L)
        return full_softmax_loss(self.encode(items), self.item.weight, targets)

    def score(self, items, times, target_times) -> torch.Tensor:
        """(B, n_items + 1) scores of the next item after the last position (times are not used)."""
        return self.encode(items)[:, -1] @ self.item.weight.T                          # (B, d) @ (d, n_items + 1)
