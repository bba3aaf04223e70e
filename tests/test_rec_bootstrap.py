"""The paired bootstrap of the rec track (:func:`hmspar.rec.evaluate.paired_bootstrap`): users *and* seeds
resampled. Simulated per-user NDCG-like values with a known truth: under the null the 95% interval covers zero
about 95% of the time, a real difference is detected, and the interval widens with the spread between seeds
(where resampling users alone does not)."""

from __future__ import annotations

import numpy as np
import pytest

from hmspar.errors import HmsparError
from hmspar.rec.evaluate import paired_bootstrap, seed_scale


def simulate(rng: np.random.Generator, n_users: int, n_seeds: int, tau: float, delta: float = 0.0
             ) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed, per-user values of two models on the same users: user ``i`` is hit with probability
    ``p_i + e_s (+ delta for a)`` (``p_i`` shared, so the pairing matters; ``e_s ~ N(0, tau)`` a seed's
    luck), a hit scoring U(0.3, 1) like an NDCG. ``delta`` is the true difference in hit rate."""
    p = rng.beta(1.0, 6.0, size=n_users)
    out = []
    for d in (delta, 0.0):
        q = np.clip(p[None, :] + rng.normal(0.0, tau, size=(n_seeds, 1)) + d, 0.0, 1.0)
        out.append((rng.random((n_seeds, n_users)) < q) * rng.uniform(0.3, 1.0, size=(n_seeds, n_users)))
    return out[0], out[1]


def coverage(reps: int, tau: float, resample_seeds: bool = True, n_seeds: int = 3) -> float:
    rng = np.random.default_rng(123)
    hits = 0
    for r in range(reps):
        a, b = simulate(rng, 300, n_seeds, tau)
        res = paired_bootstrap(a, b, 400, 0.95, np.random.default_rng([r, 1]), resample_seeds=resample_seeds)
        hits += res["ci_low"] <= 0.0 <= res["ci_high"]
    return hits / reps


@pytest.mark.parametrize("tau", [0.0, 0.03], ids=["users-only-noise", "seeds-and-users"])
def test_null_interval_covers_zero_about_95_percent_of_the_time(tau):
    assert 0.90 <= coverage(200, tau) <= 0.99


def test_resampling_users_alone_undercovers_when_seeds_disagree():
    """The former method (seeds averaged first) is too confident once seed variance matters: the case for
    resampling seeds too."""
    assert coverage(100, 0.04, resample_seeds=False) < 0.85


def test_a_known_difference_is_detected():
    rng = np.random.default_rng(7)
    found = 0
    for r in range(40):
        a, b = simulate(rng, 300, 3, 0.01, delta=0.08)
        res = paired_bootstrap(a, b, 400, 0.95, np.random.default_rng([r, 2]))
        found += res["ci_low"] > 0.0
        assert res["difference"] == pytest.approx(a.mean() - b.mean())
    assert found >= 36                                                    # power >= 90% at this size


def test_the_interval_widens_with_the_spread_between_seeds():
    rng = np.random.default_rng(3)
    base_a = rng.random((1, 500)) * (rng.random((1, 500)) < 0.3)
    base_b = base_a * (rng.random((1, 500)) < 0.9)
    a0 = np.repeat(base_a, 3, axis=0) + 0.02 * rng.standard_normal((3, 500))   # users' own seed noise
    b0 = np.repeat(base_b, 3, axis=0) + 0.02 * rng.standard_normal((3, 500))
    shifts = np.array([[-1.0], [0.0], [1.0]])                              # seed s of a is off by spread * shift
    widths, user_only = [], []
    for spread in (0.0, 0.01, 0.03, 0.06):
        a = a0 + spread * shifts
        res = paired_bootstrap(a, b0, 1000, 0.95, np.random.default_rng(0))
        widths.append(res["ci_high"] - res["ci_low"])
        old = paired_bootstrap(a, b0, 1000, 0.95, np.random.default_rng(0), resample_seeds=False)
        user_only.append(old["ci_high"] - old["ci_low"])
        assert res["per_seed_difference_std"] == pytest.approx(np.std(a.mean(1) - b0.mean(1), ddof=1))
    assert all(w2 > w1 for w1, w2 in zip(widths, widths[1:])), widths
    assert widths[-1] > 3 * widths[0]
    # at a large spread the seed part dominates: about 2 * 1.96 * spread / sqrt(3) for a mean of three draws
    assert widths[-1] == pytest.approx(2 * 1.96 * 0.06 / np.sqrt(3), rel=0.35)
    assert max(user_only) - min(user_only) < 0.1 * min(user_only)         # users alone: blind to the spread


def test_seed_scale_counts_the_users_own_noise_once():
    rng = np.random.default_rng(0)
    noise_only = rng.random((3, 2000)) < 0.2                             # seeds differ by user noise only
    assert seed_scale(noise_only.astype(float)) < 0.5
    shifted = noise_only + np.array([[0.0], [0.2], [0.4]])
    assert seed_scale(shifted) == pytest.approx(np.sqrt(3 / 2), rel=0.02)
    assert seed_scale(np.ones((1, 10))) == 0.0


def test_per_seed_differences_pair_seeds_by_label():
    a = np.array([[1.0, 1.0], [0.0, 0.0], [0.5, 0.5]])                  # seeds 0, 1, 2
    b = np.array([[0.25, 0.25], [0.5, 0.5]])                              # seeds 2, 0
    res = paired_bootstrap(a, b, 50, 0.95, np.random.default_rng(0), seeds_a=[0, 1, 2], seeds_b=[2, 0])
    assert res["per_seed_differences"] == {"0": 0.5, "2": 0.25}
    assert res["per_seed_difference_std"] == pytest.approx(np.std([0.5, 0.25], ddof=1))
    assert res["n_seeds_a"] == 3 and res["n_seeds_b"] == 2 and res["seeds_resampled"]
    assert res["difference"] == pytest.approx(0.5 - 0.375)
    one = paired_bootstrap(a[:1], b[:1], 50, 0.95, np.random.default_rng(0))
    assert one["per_seed_difference_std"] is None and not one["seeds_resampled"]
    with pytest.raises(HmsparError, match="seed labels"):
        paired_bootstrap(a, b, 10, 0.95, np.random.default_rng(0), seeds_a=[0, 1])


def test_same_inputs_same_interval():
    rng = np.random.default_rng(1)
    a, b = simulate(rng, 200, 3, 0.02)
    assert paired_bootstrap(a, b, 300, 0.9, np.random.default_rng(5)) == paired_bootstrap(
        a, b, 300, 0.9, np.random.default_rng(5))
