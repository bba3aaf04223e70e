"""Paired bootstrap of the test ROC-AUC difference between HMSPAR and the best baseline of each run.

The exact procedure is :data:`PROCEDURE` (below), which is also written into
``metrics/significance.json`` so that the numbers never travel without it.

ROC-AUC on a resample is computed exactly (ties count one half, as in scikit-learn) from the resample's
per-entity multiplicities, vectorised over resamples (:func:`auc_from_counts`).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from hmspar.errors import HmsparError

PROCEDURE = """\
1. The *best baseline* of a run is the non-HMSPAR model with the highest mean test ROC-AUC over seeds
(ties broken by name). Only seeds that both HMSPAR and that baseline ran are used.
2. Every model of a run is tested on the same entities (checked when the results are read); they are
put in one order (sorted by id), so entity i is the same for every model and seed.
3. Draw B = evaluate.bootstrap_samples resamples of the n test entity indices, with replacement,
from numpy.random.default_rng([evaluate.seed, crc32(run)]) (one independent, reproducible stream
per run). Resample b is the *same* for both models and for every seed (paired bootstrap).
Resamples holding a single class have no ROC-AUC and are dropped (n_resamples_used says how many remain).
4. For each resample b and seed s: d[b, s] = AUC_hmspar(s, b) - AUC_baseline(s, b). The pooled
statistic is D[b] = mean_s d[b, s].
5. Point estimate: the mean over seeds of the full-test-set AUC differences. Interval: the percentile
interval [q(alpha/2), q(1 - alpha/2)] of D with alpha = 1 - evaluate.confidence. Per seed, the
same from d[:, s]. p_value_one_sided is the fraction of resamples with D[b] <= 0;
significant means the pooled interval lies above zero; holds_across_seeds means HMSPAR's
full-test AUC beats the baseline's in every paired seed.
"""

_CHUNK_ELEMENTS = 2_000_000  # resamples x entities handled at once (peak memory ~100 MB)


def auc_from_counts(y: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC-AUC of ``score`` for binary labels ``y`` on many weighted resamples at once.

    Parameters
    ----------
    y : np.ndarray
        (n,) labels in {0, 1}.
    score : np.ndarray
        (n,) scores (higher means class 1 more likely).
    counts : np.ndarray
        (B, n) multiplicity of each entity in each resample (all ones: the plain AUC).

    Returns
    -------
    np.ndarray
        (B,) AUC per resample (Mann-Whitney statistic, ties count 1/2); ``nan`` where a resample holds
        only one class.
    """
    y = np.asarray(y)
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    pos = y[order] == 1
    c = np.take(np.atleast_2d(counts), order, axis=1).astype(np.float64)  # (B, n) sorted by score
    pos_w = np.where(pos, c, 0.0)
    neg_w = np.where(pos, 0.0, c)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])            # first index of each tie group
    if starts.size < s.size:                                         # ties: work on tie groups
        pos_w = np.add.reduceat(pos_w, starts, axis=1)               # (B, G)
        neg_w = np.add.reduceat(neg_w, starts, axis=1)               # (B, G)
    neg_cum = np.cumsum(neg_w, axis=1)
    # each positive beats the negatives strictly below it and ties with half of those in its group
    num = np.einsum("bi,bi->b", pos_w, neg_cum - 0.5 * neg_w)
    denom = pos_w.sum(axis=1) * neg_cum[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, num / np.where(denom > 0, denom, 1.0), np.nan)


def _resample_aucs(y: np.ndarray, prob: np.ndarray, idx: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """AUC of one model on each resample (binary: exact vectorised; multi-class:
    :func:`hmspar.metrics.roc_auc`, NaN on a resample missing a class)."""
    if prob.ndim == 1:
        return auc_from_counts(y, prob, counts)
    from hmspar.metrics import roc_auc

    return np.array([roc_auc(y[rows], prob[rows]) for rows in idx], dtype=np.float64)


def _full_auc(y: np.ndarray, prob: np.ndarray) -> float:
    """The observed AUC, by the same definition as the leaderboard's (:mod:`hmspar.metrics`)."""
    from hmspar.metrics import roc_auc

    return roc_auc(y, prob)


def paired_bootstrap(
    y: np.ndarray,
    probs_a: list[np.ndarray],
    probs_b: list[np.ndarray],
    n_samples: int,
    confidence: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Paired bootstrap of ``AUC(a) - AUC(b)`` over test entities, pooled over seeds (see module docstring).

    Parameters
    ----------
    y : np.ndarray
        (n,) test labels, shared by both models.
    probs_a, probs_b : list of np.ndarray
        Per seed, the (n,) or (n, K) probabilities of model a and model b, rows aligned with ``y``.
    n_samples : int
        Number of resamples.
    confidence : float
        Level of the percentile interval.
    rng : numpy.random.Generator
        Source of the resamples.

    Returns
    -------
    dict
        ``difference, ci_low, ci_high, p_value_one_sided, n_resamples_used`` and ``per_seed``, a list of
        ``{auc_a, auc_b, difference, ci_low, ci_high}``.
    """
    if len(probs_a) != len(probs_b) or not probs_a:
        raise HmsparError("paired bootstrap: need the same, non-zero number of seeds for both models")
    n = int(np.asarray(y).shape[0])
    n_seeds = len(probs_a)
    diffs = np.empty((n_samples, n_seeds))
    chunk = max(1, _CHUNK_ELEMENTS // max(n, 1))
    done = 0
    while done < n_samples:
        b = min(chunk, n_samples - done)
        idx = rng.integers(0, n, size=(b, n))
        counts = np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)
        for s in range(n_seeds):
            diffs[done:done + b, s] = (_resample_aucs(y, probs_a[s], idx, counts)
                                       - _resample_aucs(y, probs_b[s], idx, counts))
        done += b
    valid = np.all(np.isfinite(diffs), axis=1)
    diffs = diffs[valid]
    alpha = 1.0 - confidence
    q = [alpha / 2.0, 1.0 - alpha / 2.0]
    per_seed = []
    for s in range(n_seeds):
        auc_a, auc_b = _full_auc(y, probs_a[s]), _full_auc(y, probs_b[s])
        lo, hi = np.quantile(diffs[:, s], q) if diffs.size else (math.nan, math.nan)
        per_seed.append({"auc_a": auc_a, "auc_b": auc_b, "difference": auc_a - auc_b,
                         "ci_low": float(lo), "ci_high": float(hi)})
    pooled = diffs.mean(axis=1)
    lo, hi = np.quantile(pooled, q) if pooled.size else (math.nan, math.nan)
    return {
        "difference": float(np.mean([p["difference"] for p in per_seed])),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "p_value_one_sided": float(np.mean(pooled <= 0.0)) if pooled.size else math.nan,
        "n_resamples_used": int(pooled.size),
        "per_seed": per_seed,
    }


def run_rng(seed: int, run: str) -> np.random.Generator:
    """The bootstrap generator of one run: ``default_rng([seed, crc32(run)])``."""
    return np.random.default_rng([int(seed), zlib.crc32(run.encode("utf-8"))])


def significance(results: list, leaderboard: Mapping[str, Any], cfg) -> dict[str, Any]:
    """HMSPAR vs the best baseline on every run (the content of ``metrics/significance.json``).

    Parameters
    ----------
    results : list of hmspar.report.leaderboard.SeedResult
        Every seed result (as read by :func:`hmspar.report.leaderboard.discover_results`).
    leaderboard : mapping
        From :func:`hmspar.report.leaderboard.build_leaderboard` (picks the best baseline).
    cfg : hmspar.report.leaderboard.EvaluateConfig
        ``bootstrap_samples``, ``confidence`` and ``seed``.

    Returns
    -------
    dict
        ``{"procedure", "metric", "bootstrap_samples", "confidence", "seed", "runs": {run: {...}}}``; a run
        without HMSPAR, without a baseline or without a common seed gets ``{"skipped": reason}``.
    """
    from hmspar.report.leaderboard import HMSPAR, best_baseline, group_results, runs_of

    groups = group_results(results)
    out_runs: dict[str, Any] = {}
    for run in runs_of(leaderboard):
        hm = {r.seed: r for r in groups.get((run, HMSPAR), [])}
        base_row = best_baseline(leaderboard, run)
        if not hm:
            out_runs[run] = {"skipped": f"no results of model {HMSPAR!r}"}
            continue
        if base_row is None:
            out_runs[run] = {"skipped": "no baseline results"}
            continue
        base = {r.seed: r for r in groups[(run, base_row["model"])]}
        seeds = sorted(set(hm) & set(base))
        if not seeds:
            out_runs[run] = {"skipped": f"no seed shared by {HMSPAR!r} ({sorted(hm)}) and "
                                        f"{base_row['model']!r} ({sorted(base)})"}
            continue
        y = hm[seeds[0]].y
        res = paired_bootstrap(y, [hm[s].prob for s in seeds], [base[s].prob for s in seeds],
                               cfg.bootstrap_samples, cfg.confidence, run_rng(cfg.seed, run))
        per_seed = [{"seed": s, "hmspar_auc": p["auc_a"], "baseline_auc": p["auc_b"], "difference": p["difference"],
                     "ci_low": p["ci_low"], "ci_high": p["ci_high"]} for s, p in zip(seeds, res["per_seed"])]
        out_runs[run] = {
            "hmspar": HMSPAR,
            "baseline": base_row["model"],
            "seeds": seeds,
            "n_test": int(y.shape[0]),
            "auc_difference": res["difference"],
            "ci_low": res["ci_low"],
            "ci_high": res["ci_high"],
            "p_value_one_sided": res["p_value_one_sided"],
            "n_resamples_used": res["n_resamples_used"],
            "significant": bool(res["ci_low"] > 0.0),
            "holds_across_seeds": bool(all(p["difference"] > 0.0 for p in per_seed)),
            "per_seed": per_seed,
        }
    return {
        "procedure": PROCEDURE,
        "metric": "test ROC-AUC difference (hmspar - best baseline)",
        "bootstrap_samples": cfg.bootstrap_samples,
        "confidence": cfg.confidence,
        "seed": cfg.seed,
        "runs": out_runs,
    }
