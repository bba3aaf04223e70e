"""Loading converted rec features (``data/rec/features/<dataset>/``) and the protocol's split.

Two splits (``rec.protocol.split``) turn each user's time-ordered sequence into three
:class:`~hmspar.rec.base.Histories`:

``train``  the training histories (no target): what every recommender is fitted on; besides the padded
           matrix (last ``max_history`` interactions) they carry each user's whole training history
           (``Histories.sequences``), which the torch loop trains on;
``val``    histories with a validation target (for early stopping and selection only);
``test``   histories with a test target.

**leave_one_out** (the default): each user's own time. Users with fewer than
``rec.protocol.min_interactions`` interactions are dropped; for every other user the last interaction is
the test target, the one before it the validation target, everything earlier the training history. The
three Histories are aligned user by user: ``val`` has the training histories, ``test`` the training
history plus the validation item. Training histories hold events that happen *after* other users' test
events (the models can learn popularity from the future).

**global_time**: one clock for everybody. With ``T`` the times of *all* interactions of the log (every user,
before any filter), the cut-offs are actual event times::

    t_test = np.quantile(T, 1 - test_fraction, method="higher")
    t_val  = np.quantile(T, 1 - test_fraction - val_fraction, method="higher")

so roughly the last ``test_fraction`` of the events fall in the *test window* ``[t_test, inf)`` and the
``val_fraction`` before them in the *validation window* ``[t_val, t_test)`` (events tied with a cut-off
fall in the later window). Then:

``train``  every user with at least one interaction before ``t_val``, history = all their interactions
           before ``t_val``. Nothing at or after ``t_val`` is ever fitted on.
``val``    users with training history and an interaction in the validation window; target = their first
           interaction in the window, history = their training history.
``test``   users with an interaction in the test window and at least one earlier one; target = their first
           interaction in the test window, history = all their interactions before ``t_test`` (validation-
           window events included, though no model was fitted on them; a user may have none before
           ``t_val``).

``min_interactions`` under global_time applies to the evaluated rows, from the past alone: a validation
or test user needs at least ``min_interactions`` interactions up to and including its target (history
length >= ``min_interactions - 1``), as in leave_one_out's test row; training keeps every user with one
event before ``t_val`` (fitting on more users reveals no target). The three user sets differ, and rows are
*not* aligned: ``users`` says whose row is whose (indices into the log's users); no consumer may pair
``train``, ``val`` and ``test`` rows by position.

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
from hmspar.rec.base import Histories, ItemFeatures, Sequences, user_rows
from hmspar.rec.schema import read_meta

#: The protocol's splits (``rec.protocol.split``; see the module docstring).
SPLITS = ("leave_one_out", "global_time")
#: ProtocolConfig fields that only the global_time split reads (left out of leave_one_out records).
GLOBAL_TIME_FIELDS = ("split", "val_fraction", "test_fraction")


@dataclasses.dataclass(frozen=True)
class ProtocolConfig:
    """``params.yaml: rec.protocol`` -- the evaluation protocol shared by every model and dataset.

    Attributes
    ----------
    min_interactions : int
        Users with fewer interactions are dropped (at least 3: train, validation and test); under
        ``global_time``, a validation or test row needs this many interactions up to its target.
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
    split : str
        ``leave_one_out`` (each user's last two interactions) or ``global_time`` (cut-offs on one clock);
        see the module docstring.
    val_fraction, test_fraction : float
        ``global_time`` only: the shares of all interactions in the validation and test windows.
    """

    min_interactions: int = 5
    exclude_seen: str | bool = "auto"
    max_history: int = 200
    top_k: list[int] = dataclasses.field(default_factory=lambda: [10, 20])
    save_k: int = 50
    n_negatives: int = 100
    negative_seed: int = 0
    split: str = "leave_one_out"
    val_fraction: float = 0.1
    test_fraction: float = 0.1

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
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        for name in ("val_fraction", "test_fraction"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must lie in (0, 1), got {getattr(self, name)!r}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(f"val_fraction must leave a training share: val_fraction + test_fraction = "
                             f"{self.val_fraction + self.test_fraction!r} >= 1")


def protocol_record(cfg: ProtocolConfig) -> dict[str, Any]:
    """``cfg`` as a dict for ``meta.json``; under leave_one_out without the fields only global_time reads,
    so that leave-one-out records keep the bytes they had before the split became a setting."""
    record = dataclasses.asdict(cfg)
    if cfg.split == "leave_one_out":
        for name in GLOBAL_TIME_FIELDS:
            record.pop(name)
    return record


@dataclasses.dataclass
class RecData:
    """One dataset under the protocol: item features and the train/val/test histories (aligned row by row
    under leave_one_out only; ``users`` identifies the rows).

    Attributes
    ----------
    items : ItemFeatures
    train, val, test : Histories
    exclude_seen : bool
        The resolved masking rule.
    meta : dict
        The features' ``meta.json``.
    split : dict
        How the rows were made: ``{"split": "leave_one_out"}``, or for global_time also the cut-offs
        ``val_cutoff``/``test_cutoff`` (days) and the row counts ``n_train_users``, ``n_val_users``,
        ``n_test_users``.
    """

    items: ItemFeatures
    train: Histories
    val: Histories
    test: Histories
    exclude_seen: bool
    meta: dict[str, Any]
    split: dict[str, Any] = dataclasses.field(default_factory=lambda: {"split": "leave_one_out"})

    @property
    def n_items(self) -> int:
        return self.items.n_items

    def train_counts(self) -> np.ndarray:
        """(n_items + 1,) training interactions per item, every event of the whole training histories
        (not only the last ``max_history``); index 0 = padding, always 0."""
        counts = np.bincount(self.train.whole().items, minlength=self.n_items + 1)
        counts[0] = 0
        return counts

    def test_train_lengths(self) -> np.ndarray:
        """(len(test),) each test user's number of training interactions (0 for a test user without a
        training history, which global_time allows), found through ``users``, never by row position."""
        lengths = self.train.whole().lengths
        if self.test.users is None or self.train.users is None:
            if len(self.test) != len(self.train):
                raise HmsparError("test and training histories are not aligned and carry no users")
            return lengths
        if len(self.train) == 0:
            return np.zeros(len(self.test), dtype=np.int64)
        row = user_rows(self.train.users, self.test.users)
        return np.where(row >= 0, lengths[np.maximum(row, 0)], 0)


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
    """Load a converted dataset and split it per ``cfg.split`` (see the module docstring).

    Raises
    ------
    HmsparError
        If a file is missing, or a split leaves no training, validation or test user.
    """
    d = Path(features_dir)
    meta = read_meta(d)
    items = load_items(d)
    seq_items = np.load(d / "seq_items.npy")
    seq_times = np.load(d / "seq_times.npy")
    offsets = np.load(d / "seq_offsets.npy")
    exclude = resolve_exclude_seen(cfg, meta)
    if cfg.split == "global_time":
        train, val, test, info = _split_global_time(seq_items, seq_times, offsets, cfg, exclude, d)
        return RecData(items, train, val, test, exclude, meta, info)
    lengths = np.diff(offsets)
    keep = np.flatnonzero(lengths >= cfg.min_interactions)
    if keep.size == 0:
        raise HmsparError(f"{d}: no user has rec.protocol.min_interactions = {cfg.min_interactions} "
                          f"interactions (longest history: {int(lengths.max()) if lengths.size else 0})")
    start, stop = offsets[keep], offsets[keep + 1]
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


def global_cutoffs(times: np.ndarray, val_fraction: float, test_fraction: float) -> tuple[float, float]:
    """The global_time cut-offs ``(t_val, t_test)`` of interaction ``times`` (see the module docstring)."""
    times = np.asarray(times, dtype=np.float64)
    t_test = float(np.quantile(times, 1.0 - test_fraction, method="higher"))
    t_val = float(np.quantile(times, 1.0 - test_fraction - val_fraction, method="higher"))
    return t_val, t_test


def _split_global_time(seq_items: np.ndarray, seq_times: np.ndarray, offsets: np.ndarray, cfg: ProtocolConfig,
                       exclude: bool, where: Path) -> tuple[Histories, Histories, Histories, dict[str, Any]]:
    """The global_time split of the flat sequences (module docstring): train, val, test and the split info."""
    n_users = offsets.size - 1
    if seq_times.size == 0:
        raise HmsparError(f"{where}: the log has no interactions")
    lengths = np.diff(offsets)
    owner = np.repeat(np.arange(n_users), lengths)
    same = owner[1:] == owner[:-1]
    if np.any(np.diff(seq_times)[same] < 0):
        raise HmsparError(f"{where}: user sequences are not time-ordered (rerun rec_convert)")
    t_val, t_test = global_cutoffs(seq_times, cfg.val_fraction, cfg.test_fraction)
    # a user's events are time-ordered, so the events before a cut-off are a prefix of the sequence
    n_before_val = np.bincount(owner[seq_times < t_val], minlength=n_users)
    n_before_test = np.bincount(owner[seq_times < t_test], minlength=n_users)
    start = offsets[:-1]
    need = cfg.min_interactions - 1                     # history length that makes min_interactions with the target
    tr = np.flatnonzero(n_before_val >= 1)
    va = np.flatnonzero((n_before_val >= max(need, 1)) & (n_before_test > n_before_val))
    te = np.flatnonzero((n_before_test >= max(need, 1)) & (lengths > n_before_test))
    keys = "rec.protocol.split = global_time (rec.protocol.val_fraction, test_fraction, min_interactions)"
    for name, rows in (("training", tr), ("validation", va), ("test", te)):
        if rows.size == 0:
            raise HmsparError(f"{where}: no {name} user under {keys}: cut-offs t_val = {t_val:g}, "
                              f"t_test = {t_test:g} days")
    L = cfg.max_history

    def histories(rows: np.ndarray, n_hist: np.ndarray, with_target: bool) -> Histories:
        s, e = start[rows], start[rows] + n_hist[rows]
        users = rows.astype(np.int64)
        padded = (left_pad(seq_items, s, e, L), left_pad(seq_times, s, e, L, 0.0))
        if not with_target:
            return Histories(*padded, users=users, sequences=Sequences.gather(seq_items, seq_times, s, e))
        return Histories(*padded, seq_items[e], seq_times[e], users, exclude_seen=exclude)

    info = {"split": "global_time", "val_cutoff": t_val, "test_cutoff": t_test,
            "n_train_users": int(tr.size), "n_val_users": int(va.size), "n_test_users": int(te.size)}
    return (histories(tr, n_before_val, False), histories(va, n_before_val, True),
            histories(te, n_before_test, True), info)


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
    """(n_items + 1, n_items + 1) float64 ``X^T X`` of the binary user-item matrix of ``histories``' whole
    histories (:meth:`Histories.whole`: how many users have both items), computed sparsely (row and column
    0, padding, are zero)."""
    from scipy import sparse

    whole = histories.whole()
    rows = np.repeat(np.arange(len(whole)), whole.lengths)
    x = sparse.csr_matrix((np.ones(rows.size), (rows, whole.items)), shape=(len(whole), n_items + 1))
    x.data[:] = 1.0  # duplicates were summed: binarise
    return (x.T @ x).toarray()
