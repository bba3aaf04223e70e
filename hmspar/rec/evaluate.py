"""The one evaluation module of the recommendation track: seen-item masking, target ranks against the whole
catalogue, top-k lists, the sampled protocol, accuracy and beyond-accuracy metrics, slices and the paired
bootstrap. Models only produce scores; nothing here lives inside a model.

Ranks are 0-based and *pessimistic on ties*: the target's rank counts every other item scoring strictly
higher **or equal**, so a model that scores everything alike ranks every target last, not first. A target
that the protocol masks (``exclude_seen`` and the target was already seen) counts as a miss (rank
``n_items``). Top-k lists break ties by the lower item index.

Metrics from a 0-based rank ``r``: ``HR@k = [r < k]``, ``NDCG@k = [r < k] / log2(r + 2)`` (one relevant
item, so the ideal DCG is 1), ``MRR@k = [r < k] / (r + 1)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hmspar.errors import HmsparError
from hmspar.rec.base import Histories


def mask_scores(scores: np.ndarray, histories: Histories) -> np.ndarray:
    """Copy of ``scores`` (B, n_items + 1) as float32 with padding column 0 at ``-inf`` and, when
    ``histories.exclude_seen``, every item of each history at ``-inf``."""
    s = np.array(scores, dtype=np.float32, copy=True)
    if s.ndim != 2 or s.shape[0] != len(histories):
        raise HmsparError(f"scores must be (B={len(histories)}, n_items + 1), got {s.shape}")
    if np.isnan(s).any():
        raise HmsparError("scores contain NaN")
    s[:, 0] = -np.inf
    if histories.exclude_seen:
        rows = np.broadcast_to(np.arange(s.shape[0])[:, None], histories.items.shape)
        s[rows, histories.items] = -np.inf  # padding 0 is already -inf
    return s


def target_ranks(masked: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(B,) 0-based pessimistic ranks of ``targets`` among all items of ``masked`` (see module docstring)."""
    b = masked.shape[0]
    t = masked[np.arange(b), targets]                                # (B,)
    ge = (masked >= t[:, None]).sum(axis=1) - 1                      # others scoring >= the target
    n_items = masked.shape[1] - 1
    return np.where(np.isfinite(t), ge, n_items).astype(np.int64)


def top_k(masked: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` items of each row (ties: lower index first) and their scores, both (B, k)."""
    k = min(k, masked.shape[1] - 1)
    part = np.argpartition(-masked, k - 1, axis=1)[:, :k]               # (B, k), unordered
    sc = np.take_along_axis(masked, part, axis=1)
    order = np.lexsort((part, -sc))                                     # by score, then index
    out = np.take_along_axis(part, order, axis=1)
    kth = sc.min(axis=1)
    tied = np.flatnonzero((masked >= kth[:, None]).sum(axis=1) > k)    # a tie straddles the cut-off
    for i in tied:
        idx = np.flatnonzero(masked[i] >= kth[i])
        out[i] = idx[np.lexsort((idx, -masked[i, idx]))[:k]]
    return out, np.take_along_axis(masked, out, axis=1)


def sample_negatives(histories: Histories, n_items: int, n: int, seed: int, stream: int = 0) -> np.ndarray:
    """(B, n) distinct items per user, uniform over items neither in the history nor the target.

    Depends on the histories, targets, ``seed`` and ``stream`` (0: validation, 1: test) only, so every
    model is ranked against the same negatives.
    """
    b = len(histories)
    rng = np.random.default_rng([seed, stream, b, n_items])
    seen_keys = np.unique((np.arange(b)[:, None] * (n_items + 1) + histories.items).ravel())
    out = rng.integers(1, n_items + 1, size=(b, n))
    for _ in range(1000):
        keys = np.arange(b)[:, None] * (n_items + 1) + out
        bad = np.isin(keys, seen_keys) | (out == histories.targets[:, None])
        srt = np.sort(out, axis=1)
        dup_rows = (srt[:, 1:] == srt[:, :-1]).any(axis=1)
        if dup_rows.any():  # redraw the later copy of a duplicate
            for i in np.flatnonzero(dup_rows):
                _, first = np.unique(out[i], return_index=True)
                mask = np.ones(n, dtype=bool)
                mask[first] = False
                bad[i] |= mask
        if not bad.any():
            return out
        out[bad] = rng.integers(1, n_items + 1, size=int(bad.sum()))
    raise HmsparError(f"could not draw {n} negatives per user from {n_items} items: too few unseen items")


def sampled_ranks(scores: np.ndarray, targets: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """(B,) pessimistic 0-based rank of each target among itself and its sampled negatives."""
    b = scores.shape[0]
    t = scores[np.arange(b), targets]
    neg = np.take_along_axis(scores, negatives, axis=1)
    return (neg >= t[:, None]).sum(axis=1).astype(np.int64)


def rank_batched(score_fn, histories: Histories, batch_size: int = 2048, k: int = 0,
                 negatives: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Score ``histories`` batch by batch with ``score_fn`` and rank their targets.

    Parameters
    ----------
    score_fn : callable
        ``Histories -> (B, n_items + 1)`` scores (a recommender's ``score``).
    k : int
        Length of the top-k lists to return (0: none).
    negatives : np.ndarray or None
        (U, n) sampled negatives; when given, ``sampled_rank`` is returned too.

    Returns
    -------
    dict
        ``rank`` (U,), optionally ``topk``/``topk_scores`` (U, k) and ``sampled_rank`` (U,).
    """
    parts: dict[str, list[np.ndarray]] = {"rank": [], "topk": [], "topk_scores": [], "sampled_rank": []}
    for s in range(0, len(histories), batch_size):
        idx = np.arange(s, min(s + batch_size, len(histories)))
        h = histories.subset(idx)
        masked = mask_scores(score_fn(h), h)
        parts["rank"].append(target_ranks(masked, h.targets))
        if k:
            items, sc = top_k(masked, k)
            parts["topk"].append(items)
            parts["topk_scores"].append(sc)
        if negatives is not None:
            parts["sampled_rank"].append(sampled_ranks(masked, h.targets, negatives[idx]))
    return {key: np.concatenate(v) for key, v in parts.items() if v}


def hit(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-user HR@k."""
    return (np.asarray(ranks) < k).astype(np.float64)


def ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@k (one relevant item)."""
    r = np.asarray(ranks, dtype=np.float64)
    return np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0)


def mrr(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-user MRR@k."""
    r = np.asarray(ranks, dtype=np.float64)
    return np.where(r < k, 1.0 / (r + 1.0), 0.0)


def accuracy(ranks: np.ndarray, top_ks: list[int]) -> dict[str, float]:
    """``hr@k``, ``ndcg@k`` for each k and ``mrr@min(k)``, averaged over users."""
    out = {}
    for k in top_ks:
        out[f"hr@{k}"] = float(hit(ranks, k).mean())
        out[f"ndcg@{k}"] = float(ndcg(ranks, k).mean())
    k0 = min(top_ks)
    out[f"mrr@{k0}"] = float(mrr(ranks, k0).mean())
    return out


def gini(exposure: np.ndarray) -> float:
    """Gini coefficient of a non-negative exposure vector (0: perfectly even, near 1: concentrated)."""
    x = np.sort(np.asarray(exposure, dtype=np.float64))
    n = x.size
    if n == 0 or x.sum() == 0:
        return 0.0
    cum = np.cumsum(x)
    return float((n + 1 - 2 * (cum.sum() / cum[-1])) / n)


def intra_list_diversity(lists: np.ndarray, embeddings: np.ndarray, chunk: int = 4096) -> float:
    """Mean pairwise cosine distance ``1 - cos`` between the items of each list, averaged over lists.

    Parameters
    ----------
    lists : np.ndarray
        (U, k) item indices.
    embeddings : np.ndarray
        (n_items + 1, D) item vectors (normalised here; zero vectors count as distance 1).
    """
    e = np.asarray(embeddings, dtype=np.float32)
    norm = np.linalg.norm(e, axis=1, keepdims=True)
    e = np.where(norm > 0, e / np.maximum(norm, 1e-12), 0.0)
    k = lists.shape[1]
    if k < 2:
        return 0.0
    total = 0.0
    for s in range(0, lists.shape[0], chunk):
        v = e[lists[s:s + chunk]]                                     # (C, k, D)
        gram = np.einsum("ckd,cjd->ckj", v, v)                        # (C, k, k)
        off = gram.sum(axis=(1, 2)) - np.trace(gram, axis1=1, axis2=2)
        total += float((1.0 - off / (k * (k - 1))).sum())
    return total / lists.shape[0]


def picture_vectors(image: np.ndarray, pool: int = 4) -> np.ndarray:
    """(n_items + 1, 3 * (S/pool)^2) centred, average-pooled pixel vectors (for picture diversity)."""
    img = np.asarray(image, dtype=np.float32) / 255.0
    n, c, s, _ = img.shape
    p = max(1, s // pool)
    s2 = (s // p) * p
    img = img[:, :, :s2, :s2].reshape(n, c, s2 // p, p, s2 // p, p).mean(axis=(3, 5))
    flat = img.reshape(n, -1)
    flat = flat - flat[1:].mean(axis=0, keepdims=True)
    flat[0] = 0.0
    return flat


def beyond_accuracy(lists: np.ndarray, train_counts: np.ndarray, text: np.ndarray | None,
                    pictures: np.ndarray | None) -> dict[str, float]:
    """Beyond-accuracy metrics of top-k lists.

    Parameters
    ----------
    lists : np.ndarray
        (U, k) recommended items.
    train_counts : np.ndarray
        (n_items + 1,) training interactions per item.
    text, pictures : np.ndarray or None
        Item text embeddings and picture vectors (:func:`picture_vectors`) for intra-list diversity.

    Returns
    -------
    dict
        ``coverage`` (share of the catalogue recommended to anyone), ``gini`` (of exposure over all
        items), ``novelty`` (mean ``-log2`` of the item's smoothed training popularity
        ``(count + 1) / (total + n_items)``), ``ild_text`` and ``ild_picture``.
    """
    n_items = train_counts.shape[0] - 1
    exposure = np.bincount(lists.ravel(), minlength=n_items + 1)[1:]
    counts = train_counts[1:].astype(np.float64)
    p = (np.concatenate([[0.0], counts]) + 1.0) / (counts.sum() + n_items)
    out = {"coverage": float((exposure > 0).mean()), "gini": gini(exposure),
           "novelty": float((-np.log2(p[lists])).mean())}
    if text is not None:
        out["ild_text"] = intra_list_diversity(lists, text)
    if pictures is not None:
        out["ild_picture"] = intra_list_diversity(lists, pictures)
    return out


def paired_bootstrap(per_user_a: np.ndarray, per_user_b: np.ndarray, n_samples: int, confidence: float,
                     rng: np.random.Generator, seeds_a: list[int] | None = None, seeds_b: list[int] | None = None,
                     resample_seeds: bool = True) -> dict[str, Any]:
    """Paired bootstrap of ``mean(a) - mean(b)`` over users *and* seeds.

    Each resample draws users with replacement (the same users for both models, so the pairing is kept)
    and, independently for each model, its seeds with replacement; the statistic is the resampled users'
    mean over the drawn seeds of ``a`` minus that of ``b``. The interval therefore carries both the
    sampling of users and the spread between training seeds (a model whose seeds disagree gets a wide
    interval). Drawing ``S`` seeds with replacement shrinks the between-seed variance of their mean by
    ``(S - 1) / S``; the seed part of each resample is rescaled by ``sqrt(S / (S - 1))`` to undo that
    (the rescaled bootstrap of a mean), so the interval is not too narrow for three seeds; and it is shrunk
    to the between-seed variance *beyond* the users' own seed-to-seed noise (:func:`seed_scale`), which the
    user resampling already carries, so that noise is not counted twice. With one seed a model has no seed
    variance to show (``seeds_resampled`` says whether any was resampled); with few seeds the interval is
    approximate, as the seed variance itself is estimated from them.

    Parameters
    ----------
    per_user_a, per_user_b : np.ndarray
        (S, U) per-seed, per-user metric values of two models on the same users (seed counts may differ).
    n_samples : int
        Bootstrap resamples.
    confidence : float
        Level of the percentile interval.
    rng : numpy.random.Generator
        Source of the resamples.
    seeds_a, seeds_b : list of int, optional
        Seed labels of the rows (default ``0..S-1``): the per-seed differences pair seed ``s`` of ``a``
        with seed ``s`` of ``b`` where both ran it.
    resample_seeds : bool
        False: users only, each model first averaged over its seeds (the former behaviour).

    Returns
    -------
    dict
        ``difference``, ``ci_low``, ``ci_high``, ``p_value_one_sided`` (share of resamples with a difference
        <= 0), ``n_users``, ``n_resamples``, ``n_seeds_a``, ``n_seeds_b``, ``seeds_resampled``,
        ``per_seed_differences`` (seed -> mean(a_s) - mean(b_s), seeds both ran) and
        ``per_seed_difference_std`` (their standard deviation, ddof 1; None for fewer than two).
    """
    a = np.asarray(per_user_a, dtype=np.float64).reshape(-1, np.shape(per_user_a)[-1])
    b = np.asarray(per_user_b, dtype=np.float64).reshape(-1, np.shape(per_user_b)[-1])
    if a.shape[1] != b.shape[1]:
        raise HmsparError(f"paired bootstrap: the two models were evaluated on different users "
                          f"({a.shape[1]} vs {b.shape[1]})")
    seeds_a = list(range(a.shape[0])) if seeds_a is None else [int(s) for s in seeds_a]
    seeds_b = list(range(b.shape[0])) if seeds_b is None else [int(s) for s in seeds_b]
    if len(seeds_a) != a.shape[0] or len(seeds_b) != b.shape[0]:
        raise HmsparError(f"paired bootstrap: {len(seeds_a)} and {len(seeds_b)} seed labels for {a.shape[0]} and "
                          f"{b.shape[0]} rows")
    n = a.shape[1]
    stats = np.empty(n_samples)
    chunk = max(1, 4_000_000 // max(n * (a.shape[0] + b.shape[0]), 1))
    for s in range(0, n_samples, chunk):
        m = min(chunk, n_samples - s)
        idx = rng.integers(0, n, size=(m, n))
        stats[s:s + m] = (_resampled_mean(a, idx, rng, resample_seeds)
                          - _resampled_mean(b, idx, rng, resample_seeds))
    alpha = 1.0 - confidence
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2]) if n else (math.nan, math.nan)
    row_a, row_b = dict(zip(seeds_a, a.mean(axis=1))), dict(zip(seeds_b, b.mean(axis=1)))
    per_seed = {str(k): float(row_a[k] - row_b[k]) for k in seeds_a if k in row_b}
    vals = np.array(list(per_seed.values()))
    return {"difference": float(a.mean(axis=0).mean() - b.mean(axis=0).mean()) if n else math.nan,
            "ci_low": float(lo), "ci_high": float(hi), "p_value_one_sided": float(np.mean(stats <= 0.0)),
            "n_users": int(n), "n_resamples": int(n_samples), "n_seeds_a": int(a.shape[0]),
            "n_seeds_b": int(b.shape[0]), "seeds_resampled": bool(resample_seeds and max(a.shape[0], b.shape[0]) > 1),
            "per_seed_differences": per_seed,
            "per_seed_difference_std": float(vals.std(ddof=1)) if vals.size > 1 else None}


def _resampled_mean(x: np.ndarray, idx: np.ndarray, rng: np.random.Generator, resample_seeds: bool) -> np.ndarray:
    """(m,) means of (S, U) values ``x`` over the users of each row of ``idx`` (m, U) and, when
    ``resample_seeds`` and ``S > 1``, over seeds drawn with replacement (seed part rescaled by
    ``sqrt(S / (S - 1))``, see :func:`paired_bootstrap`)."""
    per_seed = x[:, idx].mean(axis=2)                                    # (S, m)
    centre = per_seed.mean(axis=0)                                       # (m,) the seed-averaged resample
    n_seeds = x.shape[0]
    if not resample_seeds or n_seeds < 2:
        return centre
    draws = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=idx.shape[0]) / n_seeds  # (m, S)
    drawn = (draws * per_seed.T).sum(axis=1)
    return centre + seed_scale(x) * (drawn - centre)


def seed_scale(x: np.ndarray) -> float:
    """Factor on the seed part of a resample of (S, U) values ``x`` (see :func:`paired_bootstrap`).

    The spread of the per-seed means ``m_s`` has two sources: a real between-seed component ``tau^2`` and
    the users' own seed-to-seed noise ``w / U`` (``w``: mean over users of the within-user variance around
    the seed means), which the user resampling already carries. The one-way random-effects estimate
    ``tau^2 = max(0, var(m_s) - w / U)`` keeps only the former; the factor ``sqrt(S / (S - 1)) *
    sqrt(tau^2 / var(m_s))`` gives the drawn seeds' mean the variance ``tau^2 / S`` (the first root undoes
    the ``(S - 1) / S`` shrinkage of drawing ``S`` seeds with replacement).
    """
    n_seeds, n_users = x.shape
    if n_seeds < 2 or n_users < 1:
        return 0.0
    m = x.mean(axis=1)
    between = float(m.var(ddof=1))
    if between <= 0:
        return 0.0
    within = float((x - m[:, None]).var(axis=0, ddof=1).mean())
    tau2 = max(0.0, between - within / n_users)
    return math.sqrt(n_seeds / (n_seeds - 1)) * math.sqrt(tau2 / between)
