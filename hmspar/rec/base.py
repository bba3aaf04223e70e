"""The one contract every recommender follows: ``fit`` on training histories and item features,
``score`` a batch of histories against every item of the catalogue.

Top-k selection, seen-item masking and every metric live in the evaluation module, never inside a
model. This module imports numpy only, so classic peers (MostPop, ItemKNN, EASE) stay torch-free.

Item indices run from 1 to ``n_items``; index 0 is padding. ``score`` therefore returns
``(B, n_items + 1)`` with column 0 ignored by the evaluator (set it to ``-inf``).
"""

from __future__ import annotations

import abc
import dataclasses
import os
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hmspar.errors import HmsparError

#: Item modalities a recommender may declare in ``inputs`` (``id`` is the item index itself).
ITEM_MODALITIES = ("id", "image", "text", "price", "category")


@dataclasses.dataclass
class ItemFeatures:
    """Per-item modality tables, row ``i`` for item ``i`` (row 0 is the padding item, all zeros).

    Attributes
    ----------
    image : np.ndarray
        (n_items + 1, 3, S, S) uint8 product pictures.
    text : np.ndarray
        (n_items + 1, D) float32 sentence embeddings of the item titles/descriptions.
    price : np.ndarray
        (n_items + 1,) float32 log1p price (standardised by the model if it wants to).
    category : np.ndarray
        (n_items + 1,) int64 category code, 0 for padding, 1..n_categories otherwise.
    first_time : np.ndarray
        (n_items + 1,) float64 time (days) the item entered the catalogue.
    """

    image: np.ndarray
    text: np.ndarray
    price: np.ndarray
    category: np.ndarray
    first_time: np.ndarray

    @property
    def n_items(self) -> int:
        return int(self.price.shape[0]) - 1


@dataclasses.dataclass
class Histories:
    """A batch of time-ordered user histories, left-padded to a common length.

    Attributes
    ----------
    items : np.ndarray
        (B, L) int64 item indices, 0 = padding on the left; the most recent interaction is column -1.
    times : np.ndarray
        (B, L) float64 timestamps in days (0 where padded).
    targets : np.ndarray or None
        (B,) int64 item to predict next (the validation or test target), None when scoring only.
    target_times : np.ndarray or None
        (B,) float64 time of the target interaction (a model may use the gap to it, never the item).
    users : np.ndarray or None
        (B,) int64 user indices.
    exclude_seen : bool
        Whether the protocol masks the items of ``items`` from the ranking of ``targets`` (set by
        :func:`hmspar.rec.data.load`; used by the evaluator and by validation inside ``fit``).
    sequences : Sequences or None
        Each row's *whole* history, uncropped (``items``/``times`` keep only the last ``max_history``
        interactions). The loader sets it on the training histories, so that the torch loop can train on
        every interaction of long histories; None elsewhere (scoring reads the padded matrix).
    """

    items: np.ndarray
    times: np.ndarray
    targets: np.ndarray | None = None
    target_times: np.ndarray | None = None
    users: np.ndarray | None = None
    exclude_seen: bool = False
    sequences: "Sequences | None" = None

    def __len__(self) -> int:
        return int(self.items.shape[0])

    def subset(self, idx: np.ndarray) -> "Histories":
        pick = (lambda a: None if a is None else a[idx])
        seqs = None if self.sequences is None else self.sequences.subset(idx)
        return Histories(self.items[idx], self.times[idx], pick(self.targets), pick(self.target_times),
                         pick(self.users), self.exclude_seen, seqs)

    def whole(self) -> "Sequences":
        """Every row's whole history: ``sequences`` when set, else the rows of the padded matrix."""
        if self.sequences is not None:
            return self.sequences
        return Sequences.from_padded(self.items, self.times)


@dataclasses.dataclass
class Sequences:
    """Ragged histories: row ``u`` is ``items[offsets[u]:offsets[u + 1]]`` (oldest first), with its times.

    Attributes
    ----------
    items : np.ndarray
        (N,) int64 item indices (no padding).
    times : np.ndarray
        (N,) float64 timestamps in days.
    offsets : np.ndarray
        (U + 1,) int64 row starts, ``offsets[0] == 0`` and ``offsets[-1] == N``.
    """

    items: np.ndarray
    times: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return int(self.offsets.shape[0]) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def subset(self, idx: np.ndarray) -> "Sequences":
        idx = np.arange(len(self))[idx]
        return Sequences.gather(self.items, self.times, self.offsets[idx], self.offsets[idx + 1])

    @classmethod
    def gather(cls, items: np.ndarray, times: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> "Sequences":
        """Rows ``items[starts[u]:stops[u]]`` (and their times) of flat arrays, vectorised."""
        starts, stops = np.asarray(starts, dtype=np.int64), np.asarray(stops, dtype=np.int64)
        lengths = np.maximum(stops - starts, 0)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        take = np.arange(offsets[-1], dtype=np.int64) + np.repeat(starts - offsets[:-1], lengths)
        return cls(np.asarray(items, dtype=np.int64)[take], np.asarray(times, dtype=np.float64)[take], offsets)

    @classmethod
    def from_padded(cls, items: np.ndarray, times: np.ndarray) -> "Sequences":
        """The non-padding entries of left-padded (U, L) matrices, row by row."""
        items = np.asarray(items, dtype=np.int64)
        real = items > 0
        offsets = np.concatenate([[0], np.cumsum(real.sum(axis=1))]).astype(np.int64)
        return cls(items[real], np.asarray(times, dtype=np.float64)[real], offsets)


def user_rows(known: np.ndarray, query: np.ndarray) -> np.ndarray:
    """(len(query),) int64 position of each ``query`` user in ``known`` (user indices, any order), -1 where
    absent: how a model or a report finds a user's training row through ``users``, never by row position."""
    known = np.asarray(known, dtype=np.int64)
    query = np.asarray(query, dtype=np.int64)
    if known.size == 0:
        return np.full(query.shape, -1, dtype=np.int64)
    order = np.argsort(known, kind="stable")
    pos = np.minimum(np.searchsorted(known, query, sorter=order), order.size - 1)
    row = order[pos]
    return np.where(known[row] == query, row, -1).astype(np.int64)


class Recommender(abc.ABC):
    """Base class of every recommender (classic peers and the multimodal systems alike).

    Subclasses set ``Config`` (a frozen dataclass with at least ``inputs: list[str]``, a subset of
    :data:`ITEM_MODALITIES`) and implement :meth:`fit` and :meth:`score`.

    ``fit`` receives the training histories (every user's sequence without its validation and test
    targets) and may use ``val`` (histories whose ``targets`` are the validation items) for early
    stopping on validation NDCG@10 only. Test targets are never passed to ``fit``.
    """

    Config: ClassVar[type]
    name: ClassVar[str] = "recommender"
    #: Capability tags (:mod:`hmspar.registry`): read by the shared contract suite and the tools.
    TAGS: ClassVar[dict[str, Any]] = {"track": "recommendation", "torch": False, "pretrained": False}

    def __init__(self, cfg: Any, seed: int = 0) -> None:
        inputs = list(getattr(cfg, "inputs", ["id"]))
        for m in inputs:
            if m not in ITEM_MODALITIES:
                raise HmsparError(f"{type(self).__name__}: unknown item modality {m!r} "
                                  f"(known: {', '.join(ITEM_MODALITIES)})")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise HmsparError(f"{type(self).__name__}: seed must be an integer, got {seed!r}")
        self.cfg = cfg
        self.seed = int(seed)
        self.n_items: int | None = None

    @property
    def uses(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(getattr(self.cfg, "inputs", ["id"])))

    @abc.abstractmethod
    def fit(self, train: Histories, items: ItemFeatures, val: Histories | None = None) -> "Recommender":
        """Fit on training histories; ``val`` (with validation targets) for early stopping only."""

    @abc.abstractmethod
    def score(self, histories: Histories) -> np.ndarray:
        """(B, n_items + 1) float32 scores of every catalogue item for each history (higher is better)."""

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        with open(path, "wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Recommender":
        with open(path, "rb") as fh:
            model = pickle.load(fh)
        if not isinstance(model, cls):
            raise HmsparError(f"{path}: holds a {type(model).__name__}, not a {cls.__name__}")
        return model
