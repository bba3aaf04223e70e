"""Re-ranking of score matrices: plain top-k, maximal marginal relevance (MMR), intra-list diversity,
and the accuracy-diversity trade-off as MMR's λ varies (with its plot).

Numpy only (matplotlib imported inside the plot function), so the evaluator can call it on any
recommender's scores. Items the evaluator excludes (seen items, padding column 0) must carry ``-inf``
scores; they are never recommended.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from hmspar.errors import HmsparError
from hmspar.rec.evaluate import intra_list_diversity  # the evaluator's definition (1 - cos), one for all


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(B, k) item indices by decreasing score, ties broken by the lower index.

    Parameters
    ----------
    scores : np.ndarray
        (B, N) scores; ``-inf`` marks excluded items.
    k : int
    """
    scores = np.asarray(scores)
    if k < 1:
        raise HmsparError(f"top_k: k must be positive, got {k!r}")
    n = scores.shape[1]
    k = min(k, n)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (len(scores), 1))
    vals = np.take_along_axis(scores, part, 1)
    out = np.take_along_axis(part, np.lexsort((part, -vals), axis=1), 1)   # by (-score, index)
    if k < n:  # argpartition may cut a tie at the k-th score arbitrarily: redo those rows stably
        kth = vals.min(1, keepdims=True)
        for r in np.flatnonzero((scores == kth).sum(1) > (vals == kth).sum(1)):
            out[r] = np.argsort(-scores[r], kind="stable")[:k]
    return out


def _unit(emb: np.ndarray) -> np.ndarray:
    emb = np.asarray(emb, dtype=np.float64)
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norm > 0, norm, 1.0)


def mmr(scores: np.ndarray, item_emb: np.ndarray, k: int = 10, lam: float = 0.5,
        n_candidates: int = 100) -> np.ndarray:
    """Maximal marginal relevance re-ranking of each row's best ``n_candidates`` items.

    Step by step, pick the candidate maximising ``lam * rel(i) - (1 - lam) * max_j cos(i, j)`` over the
    items ``j`` already picked, where ``rel`` is the score min-max scaled to [0, 1] over the row's
    candidates. ``lam = 1`` returns exactly :func:`top_k`; smaller ``lam`` trades relevance for diversity.

    Parameters
    ----------
    scores : np.ndarray
        (B, N) scores (``-inf`` = excluded).
    item_emb : np.ndarray
        (N, D) item vectors whose cosine similarity measures redundancy.
    k : int
        List length.
    lam : float
        Trade-off in [0, 1].
    n_candidates : int
        Candidates per row taken from the plain ranking (>= k).

    Returns
    -------
    np.ndarray
        (B, k) item indices.
    """
    if not 0.0 <= lam <= 1.0:
        raise HmsparError(f"mmr: lambda must be in [0, 1], got {lam!r}")
    scores = np.asarray(scores, dtype=np.float64)
    if item_emb.shape[0] != scores.shape[1]:
        raise HmsparError(f"mmr: {item_emb.shape[0]} item vectors for {scores.shape[1]} score columns")
    cand = top_k(scores, max(k, n_candidates))                              # (B, C)
    B, C = cand.shape
    rel = np.take_along_axis(scores, cand, 1)
    finite = np.isfinite(rel)
    lo = np.where(finite, rel, np.inf).min(1, keepdims=True)
    hi = np.where(finite, rel, -np.inf).max(1, keepdims=True)
    rel = np.where(finite, (rel - lo) / np.where(hi > lo, hi - lo, 1.0), -np.inf)
    unit = _unit(item_emb)
    vecs = unit[cand]                                                       # (B, C, D)
    sim = np.einsum("bcd,bed->bce", vecs, vecs)                             # (B, C, C)
    chosen = np.zeros((B, min(k, C)), dtype=np.int64)
    taken = np.zeros((B, C), dtype=bool)
    max_sim = np.zeros((B, C))
    rows = np.arange(B)
    for step in range(chosen.shape[1]):
        value = lam * rel - (1.0 - lam) * (max_sim if step else 0.0)
        value = np.where(taken, -np.inf, value)
        pick = np.argmax(value, axis=1)                                     # first index on ties
        chosen[:, step] = pick
        taken[rows, pick] = True
        max_sim = np.maximum(max_sim, sim[rows, :, pick])
    return np.take_along_axis(cand, chosen, 1)


def ndcg_of_lists(lists: np.ndarray, targets: np.ndarray) -> float:
    """Mean NDCG of one target per row given ranked lists (B, k) (0 when the target is not listed)."""
    lists = np.asarray(lists)
    hit = lists == np.asarray(targets)[:, None]
    gains = hit / np.log2(np.arange(2, lists.shape[1] + 2))[None, :]
    return float(gains.sum(1).mean())


def mmr_tradeoff(scores: np.ndarray, targets: np.ndarray, item_emb: np.ndarray,
                 lambdas: Sequence[float] = (1.0, 0.9, 0.8, 0.7, 0.5, 0.3), k: int = 10,
                 n_candidates: int = 100) -> list[dict[str, float]]:
    """NDCG@k and intra-list diversity of MMR lists for each λ (validation data to choose λ; test to report).

    Returns
    -------
    list of dict
        ``{"lambda", "ndcg", "ild"}`` per λ, in the given order.
    """
    rows = []
    for lam in lambdas:
        lists = mmr(scores, item_emb, k, float(lam), n_candidates)
        rows.append({"lambda": float(lam), "ndcg": ndcg_of_lists(lists, targets),
                     "ild": intra_list_diversity(lists, item_emb)})
    return rows


def plot_mmr_tradeoff(rows: Sequence[dict[str, float]], path: str | os.PathLike, title: str = "") -> None:
    """Save NDCG@10 against intra-list diversity, one point per λ (labelled), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    x = [r["ild"] for r in rows]
    y = [r["ndcg"] for r in rows]
    ax.plot(x, y, "o-")
    for r in rows:
        ax.annotate(f"λ={r['lambda']:g}", (r["ild"], r["ndcg"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=8)
    ax.set_xlabel("intra-list diversity (1 - cos)")
    ax.set_ylabel("NDCG@10")
    ax.set_title(title or "MMR: accuracy vs diversity")
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


def scores_from_topk(topk: np.ndarray, topk_scores: np.ndarray, n_items: int) -> np.ndarray:
    """(U, n_items + 1) score matrix from stored top-k lists (the ``recommend`` stage's ``test_topk.npy``
    and ``test_topk_scores.npy``): listed items keep their score, every other item is ``-inf``, so MMR
    can re-rank a model's stored candidates without refitting it."""
    out = np.full((topk.shape[0], n_items + 1), -np.inf)
    np.put_along_axis(out, np.asarray(topk, dtype=np.int64), np.asarray(topk_scores, dtype=np.float64), 1)
    return out
