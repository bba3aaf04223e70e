"""Shared, vectorised features of (user history, candidate item) pairs for the feature-based peers
(:mod:`hmspar.rec.peers.recent`, :mod:`hmspar.rec.peers.ranker`).

Statistics are learned from training interactions only (:class:`ItemStats`); :func:`compute` then turns a
batch of histories into one ``(B, n_items + 1)`` array per feature, every catalogue item a candidate:

``repeat``          the user's own repeat weight of the item: ``sum(decay ** age)`` over its occurrences in the
                    history (age 0 = the most recent interaction);
``seen``            1 if the item is in the history;
``rebuy_seen``      the item's re-buy propensity times ``seen``; the propensity is the smoothed share of the
                    item's training buyers who bought it more than once,
                    ``(multi + prior * g) / (buyers + prior)`` with ``g`` the catalogue-wide share;
``rebuy_repeat``    the re-buy propensity times ``repeat``;
``rebuy_repeat_new`` ``rebuy_repeat * (1 - exp(-gap / session_days))``: re-buys belong to a new session (``gap``:
                    see ``same_cat_session``);
``session_seen``    1 if the item occurs in the *current session*: within ``session_days`` before the request
                    (the target's time only with ``request_time: true``; by default the last interaction's);
``same_cat_last``   1 if the item shares the last history item's category;
``same_cat_session`` ``same_cat_last * exp(-gap / session_days)``, ``gap`` the time from the last interaction to
                    the request (0 when unknown or ``request_time`` is off): the last category matters most in a session;
``cat_share``       share of the last ``last_k`` history items in the item's category;
``log_pop``         ``log1p`` of the item's training interactions, divided by its catalogue maximum (in [0, 1]);
``recent_pop``      the same over the training interactions of the last ``recent_days`` days before the
                    training period's end;
``transition``      how often the last history item was followed by the item in training, as a share:
                    ``count(last -> item) / (count(last -> any) + transition_smoothing)`` (a sparse scipy
                    matrix, densified for the batch's rows only, so large catalogues work).

Nothing is specific to a dataset: the features need item ids and times only. Without categories (fewer than
two distinct category codes, as an imported log without an item table has) the category features are 0.
Seen-item masking is the evaluator's business; the features are the same with it on or off (the ranker
drops what the mask would hide from its training examples, see :mod:`hmspar.rec.peers.ranker`).
Column 0 (padding) is 0 in every feature.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hmspar.rec.base import Histories, Sequences

#: Feature names, in the order of :func:`compute`'s output.
FEATURES = ("repeat", "seen", "rebuy_seen", "rebuy_repeat", "rebuy_repeat_new", "session_seen", "same_cat_last",
            "same_cat_session", "cat_share", "log_pop", "recent_pop", "transition")

#: Upper bound on ``rows * (n_items + 1)`` per chunk of :func:`linear_scores` (bounds memory).
CHUNK_ELEMENTS = 1 << 22


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """``rec.recommenders.<recent|ranker>.features``: how the shared features are computed.

    Attributes
    ----------
    decay : float
        Weight ``decay ** age`` of an occurrence in ``repeat`` (age in interactions, 0 = the last), in (0, 1].
    rebuy_prior : float
        Pseudo-buyers pulling an item's re-buy share toward the catalogue-wide share (>= 0).
    last_k : int
        History items behind ``cat_share``.
    recent_days : float
        Window of ``recent_pop`` before the training period's end (days).
    transition_smoothing : float
        Added to the last item's outgoing count in the ``transition`` share (>= 0).
    session_days : float
        Time scale of a session (days) in ``session_seen`` and ``same_cat_session``.
    request_time : bool
        Whether the features may read the time of the request (the interaction being predicted). Off by
        default, as for every model of the track: the request is then taken to come at the last
        interaction's time (gap 0), so ``rebuy_repeat_new`` is 0, ``session_seen`` is the last session so
        far and ``same_cat_session`` equals ``same_cat_last``. On: the gap from the last interaction to the
        request, as ``train.request_time`` gives it to the sequential models.
    """

    decay: float = 0.9
    rebuy_prior: float = 5.0
    last_k: int = 5
    recent_days: float = 14.0
    transition_smoothing: float = 1.0
    session_days: float = 0.05
    request_time: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.decay <= 1:
            raise ValueError(f"decay must lie in (0, 1], got {self.decay!r}")
        if self.rebuy_prior < 0:
            raise ValueError(f"rebuy_prior must be non-negative, got {self.rebuy_prior!r}")
        if self.last_k < 1:
            raise ValueError(f"last_k must be positive, got {self.last_k!r}")
        if self.recent_days <= 0:
            raise ValueError(f"recent_days must be positive, got {self.recent_days!r}")
        if self.transition_smoothing < 0:
            raise ValueError(f"transition_smoothing must be non-negative, got {self.transition_smoothing!r}")
        if self.session_days <= 0:
            raise ValueError(f"session_days must be positive, got {self.session_days!r}")


@dataclasses.dataclass
class ItemStats:
    """Per-item statistics learned from training interactions (see the module docstring).

    Attributes
    ----------
    cfg : FeatureConfig
    counts : np.ndarray
        (n_items + 1,) float64 training interactions per item.
    log_pop, recent_pop, rebuy : np.ndarray
        (n_items + 1,) float32, 0 at the padding index.
    category : np.ndarray or None
        (n_items + 1,) int64 category codes, None when the catalogue has fewer than two categories.
    transition : scipy.sparse.csr_matrix
        (n_items + 1, n_items + 1) float32 shares ``count(a -> b) / (count(a -> any) + smoothing)``.
    end_time : float
        The last training interaction's time (days).
    """

    cfg: FeatureConfig
    counts: np.ndarray
    log_pop: np.ndarray
    recent_pop: np.ndarray
    rebuy: np.ndarray
    category: np.ndarray | None
    transition: object
    end_time: float

    @property
    def n_items(self) -> int:
        return int(self.counts.shape[0]) - 1

    @classmethod
    def fit(cls, seqs: Sequences, n_items: int, category: np.ndarray | None, cfg: FeatureConfig) -> "ItemStats":
        """Learn the statistics from the training interactions ``seqs`` (every user's, oldest first)."""
        from scipy import sparse

        items = np.asarray(seqs.items, dtype=np.int64)
        times = np.asarray(seqs.times, dtype=np.float64)
        n1 = n_items + 1
        counts = np.bincount(items, minlength=n1).astype(np.float64)
        counts[0] = 0.0
        end = float(times.max()) if times.size else 0.0
        recent = np.bincount(items[times > end - cfg.recent_days], minlength=n1).astype(np.float64)
        recent[0] = 0.0
        # re-buy propensity: per (user, item) pair, did the user buy it more than once?
        user = np.repeat(np.arange(len(seqs)), seqs.lengths)
        pairs, per_pair = np.unique(user * n1 + items, return_counts=True)
        pair_item = pairs % n1
        buyers = np.bincount(pair_item, minlength=n1).astype(np.float64)
        multi = np.bincount(pair_item[per_pair > 1], minlength=n1).astype(np.float64)
        share = multi.sum() / max(buyers.sum(), 1.0)
        rebuy = (multi + cfg.rebuy_prior * share) / np.maximum(buyers + cfg.rebuy_prior, 1e-12)
        rebuy[0] = 0.0
        # first-order transitions within each user's sequence
        follows = np.ones(items.size, dtype=bool)
        follows[seqs.offsets[1:-1] - 1] = False                        # a row's last item is followed by nothing
        if items.size:
            follows[-1] = False
        src, dst = items[follows], items[np.flatnonzero(follows) + 1]
        trans = sparse.csr_matrix((np.ones(src.size, dtype=np.float64), (src, dst)), shape=(n1, n1))
        trans.sum_duplicates()
        out_deg = np.asarray(trans.sum(axis=1)).ravel()
        trans = sparse.diags(1.0 / (out_deg + cfg.transition_smoothing + (out_deg == 0))) @ trans
        cat = None
        if category is not None:
            cat = np.asarray(category, dtype=np.int64)
            if cat.shape[0] != n1:
                raise ValueError(f"category must have n_items + 1 = {n1} entries, got {cat.shape[0]}")
            if np.unique(cat[1:]).size < 2:
                cat = None                                            # one category (or none): no category signal
        return cls(cfg, counts, _unit_log(counts), _unit_log(recent), rebuy.astype(np.float32), cat,
                   sparse.csr_matrix(trans, dtype=np.float32), end)


def _unit_log(counts: np.ndarray) -> np.ndarray:
    """``log1p(counts) / log1p(max(counts))`` as float32 (all zeros when every count is 0)."""
    top = float(np.log1p(counts.max())) if counts.size else 0.0
    return (np.log1p(counts) / top if top > 0 else np.zeros_like(counts)).astype(np.float32)


def repeat_weights(items: np.ndarray, n_items: int, decay: float) -> tuple[np.ndarray, np.ndarray]:
    """``repeat`` and ``seen`` of left-padded histories ``items`` (B, L): both (B, n_items + 1) float32."""
    b, length = items.shape
    n1 = n_items + 1
    age = np.arange(length - 1, -1, -1, dtype=np.float64)             # 0 for the last column
    w = np.broadcast_to(decay ** age, items.shape)
    real = items > 0
    keys = (np.arange(b)[:, None] * n1 + items)[real]
    repeat = np.bincount(keys, weights=w[real], minlength=b * n1).reshape(b, n1)
    seen = np.bincount(keys, minlength=b * n1).reshape(b, n1) > 0
    return repeat.astype(np.float32), seen.astype(np.float32)


def compute(histories: Histories, stats: ItemStats, names: tuple[str, ...] = FEATURES) -> dict[str, np.ndarray]:
    """Every feature of ``names`` for a batch of histories against the whole catalogue.

    Returns
    -------
    dict
        name -> (B, n_items + 1) float32 array; the popularity features are read-only broadcast views of one
        row (every user gets the same values).
    """
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise ValueError(f"unknown feature {unknown[0]!r} (known: {', '.join(FEATURES)})")
    items = np.asarray(histories.items, dtype=np.int64)
    b = items.shape[0]
    n1 = stats.n_items + 1
    shape = (b, n1)
    out: dict[str, np.ndarray] = {}
    last = items[:, -1]                                                # 0 for an empty history
    times = np.asarray(histories.times, dtype=np.float64)
    if stats.cfg.request_time and histories.target_times is not None:
        request = np.asarray(histories.target_times, np.float64)
        request = np.where(np.isfinite(request), request, times[:, -1])
    else:  # the time of the interaction being predicted is not read (see FeatureConfig.request_time)
        request = times[:, -1]
    in_session = np.exp(-np.maximum(request - times[:, -1], 0.0) / stats.cfg.session_days).astype(np.float32)
    if {"repeat", "seen", "rebuy_seen", "rebuy_repeat", "rebuy_repeat_new"} & set(names):
        repeat, seen = repeat_weights(items, stats.n_items, stats.cfg.decay)
        rebuy_repeat = repeat * stats.rebuy[None, :]
        out.update(repeat=repeat, seen=seen, rebuy_seen=seen * stats.rebuy[None, :], rebuy_repeat=rebuy_repeat,
                   rebuy_repeat_new=rebuy_repeat * (1.0 - in_session)[:, None])
    if "session_seen" in names:
        cur = (items > 0) & (times >= (request - stats.cfg.session_days)[:, None])
        keys = (np.arange(b)[:, None] * n1 + items)[cur]
        out["session_seen"] = (np.bincount(keys, minlength=b * n1).reshape(b, n1) > 0).astype(np.float32)
    if stats.category is None:
        out["same_cat_last"] = out["same_cat_session"] = out["cat_share"] = np.broadcast_to(np.zeros(n1, np.float32),
                                                                                           shape)
    else:
        cat = stats.category
        n_cat = int(cat.max()) + 1
        same = (cat[None, :] == cat[last][:, None]) & (last[:, None] > 0)
        same[:, 0] = False
        out["same_cat_last"] = same.astype(np.float32)
        out["same_cat_session"] = out["same_cat_last"] * in_session[:, None]
        window = items[:, -stats.cfg.last_k:]
        real = window > 0
        per_cat = np.bincount((np.arange(b)[:, None] * n_cat + cat[window])[real], minlength=b * n_cat)
        per_cat = per_cat.reshape(b, n_cat).astype(np.float32)
        per_cat[:, 0] = 0.0                                            # padding's category
        per_cat /= np.maximum(real.sum(axis=1, keepdims=True), 1)
        out["cat_share"] = per_cat[:, cat]
    out["log_pop"] = np.broadcast_to(stats.log_pop, shape)
    out["recent_pop"] = np.broadcast_to(stats.recent_pop, shape)
    if "transition" in names:
        out["transition"] = np.asarray(stats.transition[last].toarray(), dtype=np.float32)
    return {n: out[n] for n in names}


def linear_scores(histories: Histories, stats: ItemStats, weights: dict[str, float]) -> np.ndarray:
    """(B, n_items + 1) float32 ``sum_f weights[f] * feature_f``, computed in row chunks of at most
    :data:`CHUNK_ELEMENTS` entries so that memory stays bounded on large catalogues."""
    names = tuple(f for f in FEATURES if weights.get(f, 0.0) != 0.0)
    n1 = stats.n_items + 1
    out = np.zeros((len(histories), n1), dtype=np.float32)
    rows = max(1, CHUNK_ELEMENTS // n1)
    for s in range(0, len(histories), rows):
        idx = np.arange(s, min(s + rows, len(histories)))
        feats = compute(histories.subset(idx), stats, names)
        acc = out[idx[0]:idx[-1] + 1]
        for name in names:
            acc += np.float32(weights[name]) * feats[name]
    out[:, 0] = 0.0
    return out


def holdout_last(train: Histories) -> tuple[Histories, Sequences]:
    """Each training history's last interaction as a target, and the training data without it.

    Returns
    -------
    examples : Histories
        The padded histories before their last interaction (one column shorter, left-padded back to the
        same width), ``targets``/``target_times`` the held-out interaction; rows with nothing before the
        held-out one are dropped.
    rest : Sequences
        Every user's whole training sequence without its last interaction: what the statistics of a fit on
        these examples are learned from, so that no held-out interaction reaches them.
    """
    items = np.asarray(train.items, dtype=np.int64)
    times = np.asarray(train.times, dtype=np.float64)
    keep = np.flatnonzero(items[:, -2] > 0) if items.shape[1] > 1 else np.zeros(0, dtype=np.int64)
    hist_items = np.zeros_like(items[keep])
    hist_times = np.zeros_like(times[keep])
    hist_items[:, 1:] = items[keep, :-1]
    hist_times[:, 1:] = times[keep, :-1]
    users = None if train.users is None else train.users[keep]
    examples = Histories(hist_items, hist_times, items[keep, -1], times[keep, -1], users, train.exclude_seen)
    whole = train.whole()
    starts, stops = whole.offsets[:-1], whole.offsets[1:]
    rest = Sequences.gather(whole.items, whole.times, starts, np.maximum(stops - 1, starts))
    return examples, rest
