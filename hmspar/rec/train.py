"""The one training loop of the torch recommenders (GRU4Rec, SASRec, MTSTRec, ATHWE, PixelRec):
:class:`TorchSeqRecommender` and its settings :class:`RecTrainConfig` (a model's ``train`` params section).

What the loop does, identically for every model:

- **Examples** (:func:`training_windows`): each user's *whole* training history (``train.whole()``) is cut
  into windows of ``max_len + 1`` items ending at ``n``, ``n - stride``, ``n - 2 stride``, ... (``n`` its
  length; the oldest window may be shorter and is left-padded with 0); position ``t`` of a window's first
  ``max_len`` items predicts item ``t + 1``. With the default stride ``max_len`` consecutive windows share
  one item, so every transition ``item[t] -> item[t + 1]`` of every history is a target exactly once per
  pass. A smaller stride gives the early targets of a window more context: a target that an older window
  holds at a later position (with a longer history before it) is trained there only, so each transition
  still counts once per pass, at the cost of more windows. ``windows: last`` keeps one window per user, the
  last ``max_len + 1`` items (the former behaviour, kept for comparison). ``windows: prefixes`` is
  RecBole's augmentation (:class:`Prefixes`): one example per transition, the up to ``max_len`` items before
  it, only its last position a target; a model whose positions see later items of their window (ATHWE's
  wavelet along time) needs it. Users with fewer than two interactions give no window.

  Why sliding windows rather than RecBole's augmentation (one example per prefix of every history, each
  predicting its last item): a prefix example costs one forward pass per target, whereas a causal model
  predicts all ``max_len`` targets of a window in one pass, with the same context for each target as the
  prefix would give (up to ``max_len`` items). Windows thus cover every interaction at about ``1 /
  max_len`` of the cost; earlier, training on the last window alone left most interactions of long
  histories unseen (on a log of ~1,000 users with 20 to several hundred events each, SASRec fell to
  popularity level).
- **Budget**: optimiser steps, not epochs. Batches of ``batch_size`` windows come from a ``torch.Generator``
  seeded from the run seed, as seeded permutations of the windows, pass after pass (``batching: random``,
  the default; ``length`` puts windows of similar length together: less padding, but measured worse);
  leading all-padding columns of a batch are cut. AdamW (weight decay on weight matrices and embeddings
  only, never on biases and norm parameters) with gradient clipping. Every ``eval_every`` steps and at the
  last step the validation NDCG@10 of a fixed, seeded subset of ``val_max_users`` validation users is
  computed by the evaluation module (full ranking, the protocol's seen-item masking); training stops when
  ``patience`` evaluations in a row brought no improvement and at least ``min_steps`` steps ran, or at
  ``max_steps``, and loads back a *deep copy* of the best state. Without validation it runs ``max_steps``
  steps and keeps the last weights. Steps rather than epochs because a pass means very different amounts
  of training on different logs (4 steps on ~1,000 users with one window each, thousands on a large shop).
- **Request time**: with ``request_time: false`` (the default) the loop hands every module NaN for the time
  of the interaction it predicts (``next_times`` in ``loss``, ``target_times`` in ``score``), so no model can
  read it; with ``true`` the real times (a model adds them through :class:`RequestGap`).

Test targets never reach the loop. Parameter initialisation and dropout run inside ``torch.random.fork_rng``
seeded from the run seed, so the caller's global random state is untouched; sampled negatives come from a
second seeded generator on the training device.

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

from hmspar import memory, threads
from hmspar.device import resolve_device
from hmspar.errors import HmsparError
from hmspar.rec.base import Histories, ItemFeatures, Recommender, Sequences
from hmspar.rec.evaluate import ndcg, rank_batched
from hmspar.training.optim import adamw


@dataclasses.dataclass(frozen=True)
class RecTrainConfig:
    """``rec.recommenders.<model>.train``: the loop's settings, shared by every torch recommender.

    Parameters
    ----------
    max_steps : int
        Most optimiser steps; without validation data exactly this many run.
    min_steps : int
        Steps that always run before early stopping may end training (capped at ``max_steps``).
    eval_every : int
        Steps between validation evaluations (one more at the last step).
    patience : int
        Evaluations in a row without a better validation NDCG@10 after which training stops (once
        ``min_steps`` have run).
    windows : {"all", "last", "prefixes"}
        Training examples: ``all`` = sliding windows over each user's whole training history, every
        transition a target once per pass; ``last`` = one window per user, its last ``max_len + 1`` items
        (the former behaviour, kept for comparison); ``prefixes`` = one example per transition, the
        ``max_len`` items before it with only the last position a target (RecBole's prefix augmentation,
        :class:`Prefixes`; about ``max_len`` times the cost of ``all`` per target).
    window_stride : int
        Items between the ends of a user's consecutive windows; 0 = ``max_len`` (windows share one item).
        Smaller strides give the early targets of a window longer context (a target is trained in the
        window where it has the most history before it), at ``max_len / window_stride`` times the cost.
    request_time : bool
        Whether modules receive the time of the interaction they predict (``next_times`` in ``loss``,
        ``target_times`` in ``score``); off, both are NaN.
    batch_size : int
        Windows per training step.
    batching : {"random", "length"}
        How windows are put into batches each pass: ``random`` (a seeded shuffle) or ``length`` (windows of
        similar length together: less padding, about 1.6x faster on the shop, but measured worse: seed 0
        test NDCG@10 SASRec 0.1113 vs 0.1202, ATHWE 0.1163 vs 0.1219, validation likewise).
    eval_batch_size : int
        Users per scoring batch.
    lr, weight_decay : float
        AdamW learning rate and decoupled weight decay (weight matrices and embeddings only; biases and
        norm parameters never decay).
    grad_clip : float
        Maximum global gradient norm; 0 disables clipping.
    max_len : int
        Most recent interactions a model reads (longer histories are cut on the left).
    val_max_users : int
        Validation users scored at each evaluation (a fixed, seeded subset); 0 = all.
    device : {"auto", "cpu", "cuda"}
        ``auto`` picks CUDA when available; the device is never hard-coded in a model.
    num_threads : int or "auto"
        Threads during fit, through :mod:`hmspar.threads` like every model (torch intra-op and BLAS pools;
        ``auto`` = this process's CPUs divided by the jobs running side by side; 0 leaves the defaults).
    """

    max_steps: int = 5000
    min_steps: int = 200
    eval_every: int = 100
    patience: int = 3
    windows: Literal["all", "last", "prefixes"] = "all"
    window_stride: int = 0
    request_time: bool = False
    batch_size: int = 128
    batching: Literal["random", "length"] = "random"
    eval_batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    max_len: int = 50
    val_max_users: int = 20000
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | str = 0

    def __post_init__(self) -> None:
        for name in ("max_steps", "eval_every", "batch_size", "eval_batch_size", "max_len"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        threads.check(self.num_threads, "num_threads", allow_zero=True)
        for name in ("min_steps", "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or positive, got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.patience < 1:
            raise ValueError(f"patience must be at least 1, got {self.patience!r}")
        if self.windows not in ("all", "last", "prefixes"):
            raise ValueError(f"windows must be 'all', 'last' or 'prefixes', got {self.windows!r}")
        if not 0 <= self.window_stride <= self.max_len:
            raise ValueError(f"window_stride must be 0 (= max_len) or between 1 and max_len={self.max_len}, "
                             f"got {self.window_stride!r}")
        if self.batching not in ("random", "length"):
            raise ValueError(f"batching must be 'random' or 'length', got {self.batching!r}")
        if self.val_max_users < 0:
            raise ValueError(f"val_max_users must be 0 (all) or positive, got {self.val_max_users!r}")


def validation_ndcgs(score_fn, val: Histories, batch_size: int, k: int = 10) -> np.ndarray:
    """Per-user validation NDCG@k from the track's evaluation module: full ranking against the catalogue
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

    Returns
    -------
    np.ndarray
        (U,) float64 NDCG@k of each user.
    """
    return ndcg(rank_batched(score_fn, val, batch_size=batch_size)["rank"], k)


def validation_ndcg(score_fn, val: Histories, batch_size: int, k: int = 10) -> float:
    """Mean validation NDCG@k (see :func:`validation_ndcgs`)."""
    return float(validation_ndcgs(score_fn, val, batch_size, k).mean())


def trim_left(items: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Drop leading columns that are padding in every row (keeps at least one column)."""
    nz = (items > 0).any(0)
    start = int(np.argmax(nz)) if nz.any() else items.shape[1] - 1
    return (items[:, start:],) + tuple(o[:, start:] for o in others)


@dataclasses.dataclass
class Windows:
    """Training windows, stored compactly (one row per window, right-aligned, left-padded with 0).

    Attributes
    ----------
    items : np.ndarray
        (W, max_len + 1) int32 item indices.
    times : np.ndarray
        (W, max_len + 1) float32 times (days), 0 on padding.
    first : np.ndarray
        (W,) int32 column of the window's first *target* item: the items in columns ``first`` and later
        are predicted from the column before them; earlier ones are context only (padding, the window's
        first item, or targets that an older window trains with a longer history).
    user : np.ndarray
        (W,) int64 row of ``train`` the window comes from.
    """

    items: np.ndarray
    times: np.ndarray
    first: np.ndarray
    user: np.ndarray

    def __len__(self) -> int:
        return int(self.items.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """(W,) items per window (padding excluded)."""
        return (self.items > 0).sum(1)

    def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """int64 items, float32 times and int64 targets (items with 0 before ``first``) of ``rows``, their
        leading all-padding columns cut."""
        items = self.items[rows].astype(np.int64)
        targets = np.where(np.arange(items.shape[1])[None, :] >= self.first[rows, None], items, 0)
        return trim_left(items, self.times[rows], targets)


@dataclasses.dataclass
class Prefixes:
    """RecBole's prefix augmentation, gathered lazily: example ``j`` is the history of ``user[j]`` up to and
    including its item ``stop[j] - 1`` (a flat position), cut to the last ``max_len + 1`` items; only that
    last item is a target. Holds two integers per example, so a log of millions of interactions does not
    materialise a (N, max_len + 1) matrix.

    Attributes
    ----------
    seqs : Sequences
        The whole training histories.
    stop : np.ndarray
        (N,) int64 exclusive end of each example in the flat arrays of ``seqs``.
    start : np.ndarray
        (N,) int64 first flat position of each example (``stop - start`` items, at most ``max_len + 1``).
    user : np.ndarray
        (N,) int64 row of ``seqs`` the example comes from.
    """

    seqs: Sequences
    stop: np.ndarray
    start: np.ndarray
    user: np.ndarray

    def __len__(self) -> int:
        return int(self.stop.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        """(N,) items per example."""
        return self.stop - self.start

    def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """int64 items, float32 times and int64 targets (the last column only) of ``rows``, right-aligned and
        left-padded to the batch's longest example."""
        n = self.lengths[rows]
        width = int(n.max())
        pos = self.stop[rows, None] - width + np.arange(width)[None, :]     # (b, width) flat positions
        real = pos >= self.start[rows, None]
        pos = np.where(real, pos, 0)
        items = np.where(real, np.asarray(self.seqs.items)[pos], 0).astype(np.int64)
        times = np.where(real, np.asarray(self.seqs.times)[pos], 0.0).astype(np.float32)
        targets = np.zeros_like(items)
        targets[:, -1] = items[:, -1]
        return items, times, targets


def training_prefixes(seqs: Sequences, max_len: int) -> Prefixes:
    """One example per transition of every history (:class:`Prefixes`), ordered by user, newest first."""
    n = seqs.lengths.astype(np.int64)
    count = np.maximum(n - 1, 0)                                              # transitions per user
    user = np.repeat(np.arange(n.size), count)
    k = np.arange(user.size) - np.repeat(np.cumsum(count) - count, count)     # 0 = the last transition
    base = seqs.offsets[user]
    stop = base + n[user] - k
    start = np.maximum(stop - (max_len + 1), base)
    return Prefixes(seqs, stop.astype(np.int64), start.astype(np.int64), user.astype(np.int64))


def training_windows(seqs: Sequences, max_len: int, windows: str = "all", stride: int = 0,
                     chunk: int = 1 << 16) -> Windows:
    """Cut whole histories into training windows (see the module docstring).

    Parameters
    ----------
    seqs : Sequences
        Each user's whole training history, oldest first.
    max_len : int
        Inputs per window (a window holds ``max_len + 1`` items).
    windows : {"all", "last"}
        ``all``: windows ending at ``n, n - stride, ...`` until one starts at the history's first item;
        ``last``: the last window only.
    stride : int
        Items between consecutive window ends; 0 = ``max_len`` (every transition once, no overlap of
        targets). With a smaller stride, every window but a user's oldest starts its targets at column
        ``max_len + 1 - stride``: the earlier ones are targets of the next older window, with more context.
    chunk : int
        Windows gathered at a time (bounds the temporary index arrays).

    Returns
    -------
    Windows
        Ordered by user, newest window first.
    """
    L = max_len + 1
    stride = stride or max_len
    n = seqs.lengths.astype(np.int64)
    users = np.flatnonzero(n >= 2)
    n_u = n[users]
    if windows == "all":
        count = 1 + np.ceil(np.maximum(n_u - L, 0) / stride).astype(np.int64)
    else:
        count = np.ones_like(n_u)
    user = np.repeat(users, count)                                            # (W,)
    k = np.arange(user.size) - np.repeat(np.cumsum(count) - count, count)     # window number, 0 = newest
    base = seqs.offsets[user]
    stop = base + n[user] - k * stride                                        # exclusive end in the flat arrays
    start = np.maximum(stop - L, base)
    oldest = k == np.repeat(count, count) - 1
    first = np.where(oldest, L - (stop - start) + 1, L - stride).astype(np.int32)
    items = np.zeros((user.size, L), np.int32)
    times = np.zeros((user.size, L), np.float32)
    flat_items, flat_times = np.asarray(seqs.items), np.asarray(seqs.times)
    cols = np.arange(L, dtype=np.int64)[None, :]
    for a in range(0, user.size, chunk):
        pos = stop[a:a + chunk, None] - L + cols                              # (c, L) flat positions
        real = pos >= start[a:a + chunk, None]
        pos = np.where(real, pos, 0)
        items[a:a + chunk] = np.where(real, flat_items[pos], 0)
        times[a:a + chunk] = np.where(real, flat_times[pos], 0.0)
    return Windows(items, times, first, user)


class TorchSeqRecommender(Recommender):
    """Base of the torch sequence recommenders: next-item training on every position of sliding windows
    over the whole training histories, a step budget with early stopping on validation NDCG@10, scoring
    from the last position.

    The protocol is described in the module docstring; it is the same for every torch recommender.

    Subclasses implement :meth:`build_module`, returning a module with

    - ``loss(items, times, next_items, next_times, generator) -> Tensor`` (scalar; items (B, L) int64,
      times and next_times (B, L) float32 days, next_items (B, L) with 0 where there is no target;
      next_times is NaN unless ``train.request_time``);
    - ``score(items, times, target_times) -> Tensor`` (B, n_items + 1) for the next item after the
      last position (``target_times`` (B,) float32, NaN where unknown and always unless
      ``train.request_time``).

    Attributes
    ----------
    module_ : nn.Module
        The network with the best evaluation's weights (kept on the CPU).
    history_ : list of dict
        One row per evaluation: ``step``, ``pass`` (steps / batches per pass), ``loss`` (mean training loss
        since the previous evaluation) and, with validation data, ``val_ndcg@10`` (under the protocol's
        masking).
    report_ : dict
        ``best_step, best_val_ndcg@10, steps_run, val_users, val_ndcg_se, history`` (the recommend stage's
        ``fit.json``); ``val_ndcg_se`` is the standard error of the per-user validation NDCG@10 at the best
        evaluation.
    best_step_ : int
        Step whose weights were kept (the last step without validation data).
    callback : callable or None
        ``callback(step, row)`` after every evaluation with the history row (e.g. DVCLive logging or a
        benchmark's timer); not pickled.
    """

    TAGS = {**Recommender.TAGS, "torch": True}

    def __init__(self, cfg: Any, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.module_: nn.Module | None = None
        self.history_: list[dict[str, float]] = []
        self.best_step_ = 0
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
    def _examples(self, train: Histories) -> "Windows | Prefixes":
        """Training windows of ``train.whole()`` under ``windows`` / ``window_stride`` (prefixes under
        ``windows: prefixes``)."""
        cfg = self.train_cfg
        if cfg.windows == "prefixes":
            return training_prefixes(train.whole(), cfg.max_len)
        return training_windows(train.whole(), cfg.max_len, cfg.windows, cfg.window_stride)

    def _batches(self, lengths: np.ndarray, generator: torch.Generator) -> list[np.ndarray]:
        """Row indices per batch of one pass, from ``generator``: ``batching: random`` cuts a seeded
        permutation of the rows; ``length`` sorts rows by length (ties in a seeded random order), cuts them
        into batches and shuffles the batch order."""
        bs = self.train_cfg.batch_size
        if self.train_cfg.batching == "random":
            perm = torch.randperm(lengths.size, generator=generator).numpy()
            return [perm[i:i + bs] for i in range(0, perm.size, bs)]
        jitter = torch.rand(lengths.size, generator=generator).numpy()
        order = np.lexsort((jitter, lengths))
        chunks = [order[i:i + bs] for i in range(0, order.size, bs)]
        perm = torch.randperm(len(chunks), generator=generator).numpy()
        return [chunks[i] for i in perm]

    def _stream(self, lengths: np.ndarray, generator: torch.Generator):
        """Batches pass after pass, each pass a fresh seeded permutation (endless)."""
        while True:
            yield from self._batches(lengths, generator)

    # -- fit ----------------------------------------------------------------------------------------
    def fit(self, train: Histories, items: ItemFeatures, val: Histories | None = None) -> "TorchSeqRecommender":
        """Train on the training histories; ``val`` (validation targets) decides early stopping only.

        Without ``val`` the model trains for ``train.max_steps`` steps and keeps the last weights.
        """
        self.n_items = items.n_items
        if val is not None and val.targets is None:
            raise HmsparError(f"{type(self).__name__}.fit: validation histories carry no targets")
        windows = self._examples(train)
        if len(windows) == 0:
            raise HmsparError(f"{type(self).__name__}.fit: no training user has two or more interactions")
        self._fit_with(train, items, lambda module, device: self._fit_loop(module, windows, val, device))
        return self

    def _fit_with(self, train: Histories, items: ItemFeatures, body) -> None:
        """Build the module and run ``body(module, device)`` on the configured device, under the thread
        policy, the heap policy (:func:`hmspar.memory.heap_reuse`: the catalogue-wide buffers of each step are
        reused, not mapped afresh) and inside ``torch.random.fork_rng`` seeded from the run seed (initialisation
        and dropout; the caller's global random state is restored on leaving)."""
        cfg = self.train_cfg
        device = resolve_device(cfg.device)
        n_threads = threads.resolve(cfg.num_threads, "train.num_threads", allow_zero=True)
        devices = [device.index or 0] if device.type == "cuda" else []
        with threads.limited(n_threads), torch.random.fork_rng(devices=devices), memory.heap_reuse():
            torch.manual_seed(self.seed)
            body(self.build_module(train, items), device)

    def _fit_loop(self, module: nn.Module, windows: "Windows | Prefixes", val: Histories | None,
                  device: torch.device) -> None:
        cfg = self.train_cfg
        module = module.to(device)
        gen = torch.Generator().manual_seed(self.seed)
        neg_gen = torch.Generator(device=device).manual_seed(self.seed + 1)

        def losses():
            lengths = windows.lengths
            for rows in self._stream(lengths, gen):
                it, tm, tg = windows.batch(rows)
                it_t = torch.from_numpy(it).to(device)
                tm_t = torch.from_numpy(tm).to(device)
                nt_t = tm_t[:, 1:] if cfg.request_time else torch.full_like(tm_t[:, 1:], float("nan"))
                yield module.loss(it_t[:, :-1], tm_t[:, :-1], torch.from_numpy(tg[:, 1:]).to(device), nt_t, neg_gen)

        self._run_steps(module, losses(), math.ceil(len(windows) / cfg.batch_size), val, device)

    def _run_steps(self, module: nn.Module, losses, per_pass: int, val: Histories | None, device: torch.device,
                   scheduler_factory=None) -> None:
        """The step loop every torch recommender shares: AdamW on the losses ``losses`` yields (one scalar per
        step, computed with the module in training mode), gradient clipping, validation NDCG@10 every
        ``eval_every`` steps and at the last, early stopping after ``patience`` evaluations without a gain
        once ``min_steps`` ran, the best state restored; fills ``module_``, ``history_``, ``best_step_`` and
        ``report_``. ``scheduler_factory(optimiser)``, when given, returns a learning-rate scheduler stepped
        with each validation NDCG@10 (``ReduceLROnPlateau``); its learning rate is logged in the history."""
        cfg = self.train_cfg
        optimiser = adamw(module, cfg.lr, cfg.weight_decay)
        scheduler = None if scheduler_factory is None else scheduler_factory(optimiser)
        if val is not None and cfg.val_max_users and len(val) > cfg.val_max_users:
            pick = np.sort(torch.randperm(len(val), generator=torch.Generator().manual_seed(self.seed + 2))
                           .numpy()[:cfg.val_max_users])
            val = val.subset(pick)
        min_steps = min(cfg.min_steps, cfg.max_steps)
        best, best_se, best_state, bad = -math.inf, None, None, 0
        self.history_ = []
        self.module_ = module
        self.best_step_ = 0
        total, n_loss, step = 0.0, 0, 0
        module.train()
        for loss in losses:
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
            optimiser.step()
            total += float(loss.detach())
            n_loss += 1
            step += 1
            if step % cfg.eval_every and step < cfg.max_steps:
                continue
            row: dict[str, float] = {"step": step, "pass": step / per_pass, "loss": total / n_loss}
            if scheduler is not None:
                row["lr"] = optimiser.param_groups[0]["lr"]
            total, n_loss = 0.0, 0
            if val is not None:
                per_user = validation_ndcgs(lambda h: self._score(h, device), val, cfg.eval_batch_size)
                module.train()
                row["val_ndcg@10"] = float(per_user.mean())
                if scheduler is not None:
                    scheduler.step(row["val_ndcg@10"])
                if row["val_ndcg@10"] > best:
                    best, bad, self.best_step_ = row["val_ndcg@10"], 0, step
                    best_se = float(per_user.std(ddof=1) / math.sqrt(per_user.size)) if per_user.size > 1 else None
                    best_state = copy.deepcopy(module.state_dict())  # a copy, not a live reference
                else:
                    bad += 1
            self.history_.append(row)
            if self.callback is not None:
                self.callback(step, row)
            if step >= cfg.max_steps or (val is not None and bad >= cfg.patience and step >= min_steps):
                break
        if best_state is not None:
            module.load_state_dict(best_state)
        else:
            self.best_step_ = step
        self.module_ = module.cpu().eval()
        # what the recommend stage stores in fit.json (no timings: it is a cached output)
        self.report_ = {"best_step": self.best_step_, "best_val_ndcg@10": best if val is not None else None,
                        "steps_run": step, "val_users": len(val) if val is not None else None,
                        "val_ndcg_se": best_se, "history": self.history_}

    # -- score --------------------------------------------------------------------------------------
    def _score(self, histories: Histories, device: torch.device) -> np.ndarray:
        cfg = self.train_cfg
        module = self.module_
        module.eval()
        L = cfg.max_len
        items = np.asarray(histories.items, dtype=np.int64)[:, -L:]
        times = np.asarray(histories.times, dtype=np.float64)[:, -L:]
        if histories.target_times is None or not cfg.request_time:
            tt = np.full(len(histories), np.nan)
        else:
            tt = np.asarray(histories.target_times, dtype=np.float64)
        out = np.empty((len(histories), self.n_items + 1), dtype=np.float32)
        order = np.argsort((items > 0).sum(1), kind="stable")  # similar lengths share a batch: less padding
        with torch.no_grad():
            for a in range(0, len(histories), cfg.eval_batch_size):
                rows = order[a:a + cfg.eval_batch_size]
                it, tm = trim_left(items[rows], times[rows])
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


def full_softmax_loss(h: torch.Tensor, item_emb: torch.Tensor, next_items: torch.Tensor,
                      age: ItemAge | None = None, times: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of the next item against the whole catalogue at every position with a target.

    Parameters
    ----------
    h : Tensor
        (B, L, d) user states.
    item_emb : Tensor
        (n_items + 1, d) output item embeddings (row 0 = padding, never a valid class).
    next_items : Tensor
        (B, L) next item, 0 where there is none.
    age : ItemAge or None
        The ``item_age`` input: its score of every item is added to the logits.
    times : Tensor or None
        (B, L) time of each position's own (last seen) interaction; needed with ``age``.
    """
    m = next_items > 0
    logits = h[m] @ item_emb.T                                              # (P, n_items + 1)
    if age is not None:
        if times is None:
            raise HmsparError("the item-age score needs the time of each state's last interaction")
        logits = logits + age(times[m])
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


# ----------------------------------------------------------------------------------------------------
# Item age (the ``item_age`` input of every torch recommender: the ID-only peers and the multimodal models)
# ----------------------------------------------------------------------------------------------------
#: Edges (days) of the item-age buckets: an item's age at the time of the interaction a state has seen last.
#: Negative ages are items that arrive after that interaction (the catalogue knows its arrival dates; the
#: next interaction, whose time no model reads, may fall after it): "within a week", "within a month"...
ITEM_AGE_EDGES = (-90.0, -30.0, -7.0, 0.0, 3.0, 14.0, 60.0, 180.0)


def item_arrivals(train: Histories, items: ItemFeatures) -> np.ndarray:
    """(n_items + 1,) float64 day each item is known to exist from: its catalogue date ``first_time`` where
    the dataset gives one (finite), else its first interaction in the *training* histories, else +inf
    (neither dated nor seen in training). An imported log has no catalogue dates (its ``first_time`` is
    NaN): a date taken from the whole log would tell a model which items are first bought in the
    validation or test window. Row 0 (padding) is +inf.
    """
    n = items.n_items
    first = np.asarray(items.first_time, dtype=np.float64).copy()
    if first.shape != (n + 1,):
        raise HmsparError(f"item first_time must have shape ({n + 1},), got {first.shape}")
    whole = train.whole()
    seen = np.full(n + 1, np.inf)
    np.minimum.at(seen, whole.items, whole.times)
    out = np.where(np.isfinite(first), first, seen)
    out[0] = np.inf
    return out


class ItemAge(nn.Module):
    """Additive score of an item's age: ``w[bucket(t - arrival)]`` for every candidate, where ``t`` is the
    time of the last interaction a user state has seen (never the time of the interaction it predicts) and
    the buckets are "unknown or far in the future" (no arrival date and not seen in training, or arriving
    more than 90 days later) and one per :data:`ITEM_AGE_EDGES` interval. The weights start at zero, so a model with this input starts as
    without it; it learns, for example, that fresh arrivals sell (the fashion shop's freshness bonus),
    which an ID embedding cannot express for an item that has no training interaction.

    Parameters
    ----------
    arrival : np.ndarray
        (n_items + 1,) arrival days (:func:`item_arrivals`).
    """

    def __init__(self, arrival: np.ndarray, edges: tuple[float, ...] = ITEM_AGE_EDGES) -> None:
        super().__init__()
        arr = np.asarray(arrival, dtype=np.float64)
        # +inf (unknown) as a day no history reaches: its age falls in the first bucket
        arr = np.where(np.isfinite(arr), arr, 1e12).astype(np.float32)
        self.register_buffer("arrival", torch.from_numpy(arr))
        self.register_buffer("edges", torch.tensor(edges, dtype=torch.float32), persistent=False)
        self.weight = nn.Parameter(torch.zeros(len(edges) + 1))

    def forward(self, ref_times: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Age scores.

        Parameters
        ----------
        ref_times : Tensor
            (P,) days: the time of the last interaction each state has seen.
        idx : Tensor or None
            Candidate items: None = the whole catalogue, or (K,) items shared by all rows, or (P, K).

        Returns
        -------
        Tensor
            (P, n_items + 1) or (P, K) additive scores.
        """
        arr = self.arrival if idx is None else self.arrival[idx]
        age = ref_times.float()[:, None] - (arr[None, :] if arr.dim() == 1 else arr)  # (P, N)
        return self.weight[torch.bucketize(age, self.edges, right=True)]


def item_age_module(on: bool, train: Histories, items: ItemFeatures) -> ItemAge | None:
    """An :class:`ItemAge` when the model's ``item_age`` switch is on, else None (no parameter, no buffer)."""
    return ItemAge(item_arrivals(train, items)) if on else None


class NextItemNet(nn.Module, abc.ABC):
    """Base of the ID-only next-item nets (GRU4Rec, SASRec): an item embedding table shared by the input
    and the output, an encoder written by the subclass, and the loop's ``loss``/``score`` interface.

    Parameters
    ----------
    n_items : int
        Catalogue size (row 0 of the table is padding).
    d : int
        Embedding size (the encoder's output size too).
    request_time : bool
        Whether the net reads the time of the interaction it predicts: it then owns a :class:`RequestGap`
        and adds it to each state, with the gap ``next_times - times`` in ``loss`` and ``target_times -
        times[:, -1]`` in ``score`` (the loop passes real times only under ``train.request_time``).
    age : ItemAge or None
        The ``item_age`` input (:func:`item_age_module`): the learned score of each candidate's age at the
        state's last interaction is added to its score, in ``loss`` and ``score`` alike.
    """

    def __init__(self, n_items: int, d: int, request_time: bool = False, age: ItemAge | None = None) -> None:
        super().__init__()
        self.item = init_embedding_(nn.Embedding(n_items + 1, d, padding_idx=0))
        self.request_time = bool(request_time)
        self.gap = RequestGap(d) if request_time else None
        self.age = age

    @abc.abstractmethod
    def encode(self, items: torch.Tensor) -> torch.Tensor:
        """items (B, L) left-padded item indices -> states (B, L, d); state ``t`` has seen the items up to ``t``."""

    def loss(self, items, times, next_items, next_times, generator) -> torch.Tensor:
        """Full-catalogue cross-entropy of the next item at every position whose own item is real (a
        padded position has seen nothing, so it predicts nothing); items and next_items (B, L)."""
        targets = torch.where(items > 0, next_items, torch.zeros_like(next_items))   # (B, L)
        h = self.encode(items)                                                       # (B, L, d)
        if getattr(self, "gap", None) is not None:
            h = self.gap(h, next_times - times)
        return full_softmax_loss(h, self.item.weight, targets, self.age, times)

    def score(self, items, times, target_times) -> torch.Tensor:
        """(B, n_items + 1) scores of the next item after the last position (``target_times`` is read only
        with ``request_time``; the history's last time only with the item-age input)."""
        h = self.encode(items)[:, -1]                                                # (B, d)
        if getattr(self, "gap", None) is not None:
            h = self.gap(h, target_times - times[:, -1])
        s = h @ self.item.weight.T                                                   # (B, n_items + 1)
        return s if self.age is None else s + self.age(times[:, -1])
