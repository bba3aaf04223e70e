"""Loading converted rec features (``data/rec/features/<dataset>/``) and the leave-one-out protocol split.

Leave-one-out by time: each kept user's last interaction is the test target, the one before it the
validation target, everything earlier the training history. Users with fewer than
``rec.protocol.min_interactions`` interactions are dropped. Three :class:`~hmspar.rec.base.Histories`
come out, aligned user by user:

``train``  the training histories (no target): what every recommender is fitted on; besides the padded
           matrix (last ``max_history`` interactions) they carry each user's whole training history
           (``Histories.sequences``), which the torch loop trains on;
``val``    the same histories with the validation item as target (for early stopping and selection);
``test``   the training history plus the validation item, with the test item as target.

Histories keep the last ``max_history`` interactions, left-padded with item 0. Whether already-seen items
are excluded from the ranking (``exclude_seen: auto`` excludes them unless the dataset has repeat
purchases) travels with the ``val`` and ``test`` histories, so every consumer ranks the same way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from hmspar.errors import HmsparError
from hmspar.rec.base import Histories, ItemFeatures, Sequences
from hmspar.rec.schema import read_meta


@dataclasses.dataclass(frozen=True)
class ProtocolConfig:
    """``params.yaml: rec.protocol`` -- the evaluation protocol shared by every model and dataset.

    Attributes
    ----------
    min_interactions : int
        Users with fewer interactions are dropped (at least 3: train, validation and test).
    exclude_seen : "auto" or bool
        Mask items already in the user's history from the ranking; ``auto``: mask unless the dataset has
        repeat purchases.
    max_history : int
        Histories keep their last ``max_history`` interactions.
    top_k : list of int
        Cut-offs of HR and NDCG in the leaderboard (MRR uses the smallest).
    save_k : int
        Length of the stored top-k lists (and of the NDCG@k curves).
    n_negatives : int
        Negatives of the secondary, sampled protocol (target among ``n_negatives`` sampled items).
    negative_seed : int
        Seeds the sampled negatives (the same for every model).
    """

    min_interactions: int = 5
    exclude_seen: str | bool = "auto"
    max_history: int = 200
    top_k: list[int] = dataclasses.field(default_factory=lambda: [10, 20])
    save_k: int = 50
    n_negatives: int = 100
    negative_seed: int = 0

    def __post_init__(self) -> None:
        if self.min_interactions < 3:
            raise ValueError(f"min_interactions must be at least 3, got {self.min_interactions!r}")
        if self.exclude_seen not in ("auto", True, False):
            raise ValueError(f"exclude_seen must be auto, true or false, got {self.exclude_seen!r}")
        if self.max_history < 1:
            raise ValueError(f"max_history must be positive, got {self.max_history!r}")
        if not self.top_k or min(self.top_k) < 1 or max(self.top_k) > self.save_k:
            raise ValueError(f"top_k must be non-empty cut-offs in [1, save_k], got {self.top_k!r}")
        if self.n_negatives < 1:
            raise ValueError(f"n_negatives must be positive, got {self.n_negatives!r}")


@dataclasses.dataclass
class RecData:
    """One dataset under the protocol: item features and the aligned train/val/test histories.

    Attributes
    ----------
    items : ItemFeatures
    train, val, test : Histories
    exclude_seen : bool
        The resolved masking rule.
    meta : dict
        The features' ``meta.json``.
    categories : list of str
        Category names (code ``c`` is ``categories[c - 1]``).
    """

    items: ItemFeatures
    train: Histories
    val: Histories
    test: Histories
    exclude_seen: bool
    meta: dict[str, Any]

    @property
    def n_items(self) -> int:
        return self.items.n_items

    def train_counts(self) -> np.ndarray:
        """(n_items + 1,) training interactions per item (index 0 = padding, always 0)."""
        counts = np.bincount(self.train.items.ravel(), minlength=self.n_items + 1)
        counts[0] = 0
        return counts


def resolve_exclude_seen(cfg: ProtocolConfig, meta: dict[str, Any]) -> bool:
    """The masking rule: ``cfg.exclude_seen`` unless ``auto`` (then: no repeat purchases in the data)."""
    if cfg.exclude_seen == "auto":
        return not bool(meta.get("repeat_purchases", False))
    return bool(cfg.exclude_seen)


def left_pad(values: np.ndarray, offsets: np.ndarray, stops: np.ndarray, length: int, fill: Any = 0
             ) -> np.ndarray:
    """Rows ``values[offsets[u]:stops[u]]`` (their last ``length`` elements), left-padded with ``fill``.

    Returns
    -------
    np.ndarray
        (U, length) with row ``u``'s last element in column -1.
    """
    n = stops.shape[0]
    out = np.full((n, length), fill, dtype=values.dtype)
    lengths = np.minimum(stops - offsets, length)
    cols = np.arange(length)[None, :]
    take = cols >= (length - lengths)[:, None]                      # (U, length)
    src = (stops[:, None] - length + cols)[take]
    out[take] = values[src]
    return out


def load_items(features_dir: str | Path) -> ItemFeatures:
    """The per-item modality tables of a converted dataset."""
    d = Path(features_dir)
    files = ("image", "text", "price", "category", "first_time")
    for f in files:
        if not (d / f"{f}.npy").is_file():
            raise HmsparError(f"{d / (f + '.npy')}: not found (run rec_convert first)")
    return ItemFeatures(*(np.load(d / f"{f}.npy") for f in files))


def load(features_dir: str | Path, cfg: ProtocolConfig) -> RecData:
    """Load a converted dataset and split it leave-one-out by time (see the module docstring).

    Raises
    ------
    HmsparError
        If a file is missing or no user has ``min_interactions`` interactions.
    """
    d = Path(features_dir)
    meta = read_meta(d)
    items = load_items(d)
    seq_items = np.load(d / "seq_items.npy")
    seq_times = np.load(d / "seq_times.npy")
    offsets = np.load(d / "seq_offsets.npy")
    lengths = np.diff(offsets)
    keep = np.flatnonzero(lengths >= cfg.min_interactions)
    if keep.size == 0:
        raise HmsparError(f"{d}: no user has rec.protocol.min_interactions = {cfg.min_interactions} "
                          f"interactions (longest history: {int(lengths.max()) if lengths.size else 0})")
    start, stop = offsets[keep], offsets[keep + 1]
    exclude = resolve_exclude_seen(cfg, meta)
    L = cfg.max_history
    train_items = left_pad(seq_items, start, stop - 2, L)
    train_times = left_pad(seq_times, start, stop - 2, L, 0.0)
    test_items = left_pad(seq_items, start, stop - 1, L)
    test_times = left_pad(seq_times, start, stop - 1, L, 0.0)
    users = keep.astype(np.int64)
    train = Histories(train_items, train_times, users=users,
                      sequences=Sequences.gather(seq_items, seq_times, start, stop - 2))
    val = Histories(train_items, train_times, seq_items[stop - 2], seq_times[stop - 2], users,
                    exclude_seen=exclude)
    test = Histories(test_items, test_times, seq_items[stop - 1], seq_times[stop - 1], users,
                     exclude_seen=exclude)
    return RecData(items, train, val, test, exclude, meta)


def history_matrix(histories: Histories, n_items: int, n_recent: int = 0, decay: float = 1.0) -> np.ndarray:
    """(B, n_items + 1) float32 user vectors: weight ``decay ** age`` of each item in the history (age 0 =
    most recent; an item seen twice keeps its most recent weight), only the last ``n_recent`` interactions
    when ``n_recent > 0``. Column 0 (padding) is zero."""
    items = histories.items
    if n_recent > 0:
        items = items[:, -n_recent:]
    b, length = items.shape
    x = np.zeros((b, n_items + 1), dtype=np.float32)
    age = np.arange(length - 1, -1, -1, dtype=np.float32)           # (L,), 0 for the last column
    w = np.broadcast_to((decay ** age)[None, :], items.shape)
    rows = np.broadcast_to(np.arange(b)[:, None], items.shape)
    x[rows, items] = w  # later columns overwrite earlier ones: an item keeps its most recent weight
    x[:, 0] = 0.0
    return x


def cooccurrence(histories: Histories, n_items: int) -> np.ndarray:
    """(n_items + 1, n_items + 1) float64 ``X^T X`` of the binary user-item matrix of ``histories`` (how
    many users have both items), computed sparsely (row and column 0, padding, are zero)."""
    from scipy import sparse

    rows = np.broadcast_to(np.arange(len(histories))[:, None], histories.items.shape)
    keep = histories.items > 0
    x = sparse.csr_matrix((np.ones(int(keep.sum())), (rows[keep], histories.items[keep])),
                          shape=(len(histories), n_items + 1))
    x.data[:] = 1.0  # duplicates were summed: binarise
    return (x.T @ x).toarray()
