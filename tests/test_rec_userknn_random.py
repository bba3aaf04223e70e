"""UserKNN and Random, seed 004's baselines: UserKNN against a hand computation, Random's independence."""

from __future__ import annotations

import numpy as np
import pytest

from hmspar.config import build
from hmspar.errors import HmsparError
from hmspar.rec.base import Histories
from hmspar.rec.peers.random import Random, RandomConfig
from hmspar.rec.peers.userknn import UserKNN, UserKNNConfig
from rec_tiny import tiny_items


def _histories(rows: list[list[int]], users: list[int] | None = None) -> Histories:
    L = max(len(r) for r in rows)
    items = np.array([[0] * (L - len(r)) + r for r in rows], dtype=np.int64)
    return Histories(items, np.zeros(items.shape), users=None if users is None else np.array(users))


def test_userknn_matches_a_hand_computation():
    items = tiny_items(n_items=6)
    train = _histories([[1, 2], [2, 3], [4, 5, 5], [1, 2, 3]], users=[10, 11, 12, 13])
    model = UserKNN(build(UserKNNConfig, {"neighbours": 2, "shrink": 1.0}, "userknn")).fit(train, items)
    query = _histories([[1, 2]], users=[99])  # not a training user: every row may vote
    s = model.score(query)[0]
    sets = [{1, 2}, {2, 3}, {4, 5}, {1, 2, 3}]
    sim = [len({1, 2} & v) / (np.sqrt(2 * len(v)) + 1.0) for v in sets]
    top = np.argsort(sim)[-2:]                                          # users 0 and 3
    expected = np.zeros(7)
    for v in top:
        for i in sets[v]:
            expected[i] += sim[v]
    np.testing.assert_allclose(s, expected, rtol=1e-6)
    # the query's own training row is not its neighbour: user 10 (items 1, 2) votes through users 13 and 11
    own = model.score(_histories([[1, 2]], users=[10]))[0]
    assert own[3] == pytest.approx(sim[3] + sim[1], rel=1e-6) and own[1] == pytest.approx(sim[3], rel=1e-6)


def test_userknn_batches_do_not_change_scores():
    items = tiny_items(n_items=20)
    rng = np.random.default_rng(0)
    train = _histories([list(rng.integers(1, 21, size=6)) for _ in range(30)], users=list(range(30)))
    q = train
    a = UserKNN(build(UserKNNConfig, {"neighbours": 5}, "userknn")).fit(train, items).score(q)
    b = UserKNN(build(UserKNNConfig, {"neighbours": 5, "batch_users": 7}, "userknn")).fit(train, items).score(q)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(HmsparError, match=r"userknn.neighbours: must be 0"):
        build(UserKNNConfig, {"neighbours": -1}, "userknn")


def test_random_is_per_user_reproducible_and_seeded():
    items = tiny_items(n_items=30)
    train = _histories([[1, 2], [3, 4]], users=[0, 1])
    h = _histories([[1], [2], [3]], users=[5, 6, 5])
    r0 = Random(RandomConfig(), seed=0).fit(train, items)
    s = r0.score(h)
    np.testing.assert_array_equal(s[0], s[2])                 # the same user: the same ranking
    assert not np.array_equal(s[0], s[1])                     # another user: another ranking
    np.testing.assert_array_equal(r0.score(h.subset(np.array([1]))), s[1:2])  # independent of the batch
    assert not np.array_equal(Random(RandomConfig(), seed=1).fit(train, items).score(h), s)
    with pytest.raises(HmsparError, match="before fit"):
        Random(RandomConfig(), seed=0).score(h)


def test_user_rows_finds_users_in_any_order_and_marks_the_absent():
    from hmspar.rec.base import user_rows

    known = np.array([40, 7, 19, 3])
    np.testing.assert_array_equal(user_rows(known, np.array([3, 40, 5, 19, 100, 7])), [3, 0, -1, 2, -1, 1])
    np.testing.assert_array_equal(user_rows(np.array([], dtype=np.int64), np.array([1, 2])), [-1, -1])
