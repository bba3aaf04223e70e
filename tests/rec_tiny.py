"""A tiny, structured interaction log for recommender tests (no text encoder, no files): shared by the
contract test and the protocol tests.

Items 1..n_items form ``n_categories`` categories; each user walks a category's items in a fixed cyclic
order (with some noise), so a sequence model can learn the next item while popularity cannot.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from hmspar.rec.base import Histories, ItemFeatures
from hmspar.rec.data import RecData, left_pad


def tiny_items(n_items: int = 40, n_categories: int = 4, image_size: int = 8, text_dim: int = 16,
               seed: int = 0) -> ItemFeatures:
    """ItemFeatures with random pictures/texts, row 0 = padding (zeros)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(n_items + 1, 3, image_size, image_size), dtype=np.uint8)
    text = rng.standard_normal((n_items + 1, text_dim)).astype(np.float32)
    price = rng.uniform(1, 5, size=n_items + 1).astype(np.float32)
    category = np.concatenate([[0], 1 + np.arange(n_items) % n_categories]).astype(np.int64)
    first_time = np.zeros(n_items + 1)
    image[0] = 0
    text[0] = 0
    price[0] = 0
    return ItemFeatures(image, text, price, category, first_time)


def tiny_log(n_users: int = 120, n_items: int = 40, n_categories: int = 4, seed: int = 0,
             exclude_seen: bool = False, max_history: int = 20) -> RecData:
    """A :class:`~hmspar.rec.data.RecData` built like :func:`hmspar.rec.data.load` does (LOO by time)."""
    rng = np.random.default_rng(seed)
    items = tiny_items(n_items, n_categories, seed=seed)
    seqs, times = [], []
    for _ in range(n_users):
        length = int(rng.integers(5, 16))
        c = int(rng.integers(0, n_categories))
        members = np.arange(1 + c, n_items + 1, n_categories)
        pos = int(rng.integers(0, members.size))
        seq = []
        for _ in range(length):
            pos = (pos + 1) % members.size if rng.random() < 0.8 else int(rng.integers(0, members.size))
            seq.append(int(members[pos]))
        seqs.append(np.array(seq))
        times.append(np.cumsum(rng.exponential(1.0, size=length)))
    offsets = np.concatenate([[0], np.cumsum([s.size for s in seqs])]).astype(np.int64)
    flat, tflat = np.concatenate(seqs), np.concatenate(times)
    start, stop = offsets[:-1], offsets[1:]
    users = np.arange(n_users)
    tr_i, tr_t = left_pad(flat, start, stop - 2, max_history), left_pad(tflat, start, stop - 2, max_history, 0.0)
    te_i, te_t = left_pad(flat, start, stop - 1, max_history), left_pad(tflat, start, stop - 1, max_history, 0.0)
    train = Histories(tr_i, tr_t, users=users)
    val = Histories(tr_i, tr_t, flat[stop - 2], tflat[stop - 2], users, exclude_seen=exclude_seen)
    test = Histories(te_i, te_t, flat[stop - 1], tflat[stop - 1], users, exclude_seen=exclude_seen)
    return RecData(items, train, val, test, exclude_seen, {"repeat_purchases": True})


def tiny_config(cls: type, overrides: dict[str, Any] | None = None) -> Any:
    """``cls.Config`` with defaults, a fast ``train`` section when it has one, and ``overrides``."""
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    kwargs: dict[str, Any] = {}
    if "train" in fields:
        train_type = {f.name: f for f in dataclasses.fields(cls.Config)}["train"].type
        default = cls.Config().train if not isinstance(train_type, type) else train_type()
        kwargs["train"] = dataclasses.replace(default, max_steps=8, min_steps=0, eval_every=4, batch_size=32,
                                              eval_batch_size=64, patience=2,
                                              max_len=min(getattr(default, "max_len", 20), 20), num_threads=1)
    for small in ("d_model", "hidden"):
        if small in fields:
            kwargs[small] = 16
    kwargs.update(overrides or {})
    return cls.Config(**kwargs)


# ---------------------------------------------------------------- checks shared by the model test files
def without_items(histories: Histories, drop: list[int]) -> Histories:
    """``histories`` with every interaction of the items ``drop`` removed, rows left-padded again (with their
    times): those items then have no training interaction."""
    items = np.asarray(histories.items).copy()
    items[np.isin(items, drop)] = 0
    order = np.argsort(items != 0, axis=1, kind="stable")                # zeros first, the rest in time order
    return Histories(np.take_along_axis(items, order, 1), np.take_along_axis(np.asarray(histories.times), order, 1),
                     users=histories.users)


def assert_cold_item_follows_its_content(model: Any, test: Histories, table: Any) -> None:
    """For a model fitted without items 1 and 2: swapping rows 1 and 3 of its content ``table`` (a torch
    tensor the module scores from) moves the score of the cold item 1 and of no item beyond 3, for
    histories that hold neither item."""
    import torch

    rows = np.flatnonzero(~np.isin(np.asarray(test.items), [1, 3]).any(1))[:5]
    h = test.subset(rows)
    before = model.score(h)
    with torch.no_grad():
        table[[1, 3]] = table[[3, 1]].clone()
    after = model.score(h)
    assert not np.allclose(before[:, 1], after[:, 1])
    np.testing.assert_array_equal(before[:, 4:], after[:, 4:])


def assert_switch_changes_scores(make: Any, data: RecData, switch: dict[str, Any], steps: int = 15) -> None:
    """A short fit with ``switch`` scores the first ten test users differently from the same fit without it."""
    h = data.test.subset(np.arange(10))
    short = {"train": {"max_steps": steps, "eval_every": steps}}
    base = make(**short).fit(data.train, data.items, data.val)
    other = make(**switch, **short).fit(data.train, data.items, data.val)
    assert not np.array_equal(other.score(h), base.score(h))


def assert_seeded(make: Any, data: RecData, steps: int = 15) -> None:
    """Two short fits at seed 0 give the same bytes; seed 1 does not."""
    h = data.test.subset(np.arange(20))
    short = {"train": {"max_steps": steps, "eval_every": steps}}
    first = make(**short).fit(data.train, data.items, data.val).score(h)
    np.testing.assert_array_equal(make(**short).fit(data.train, data.items, data.val).score(h), first)
    assert not np.array_equal(make(seed=1, **short).fit(data.train, data.items, data.val).score(h), first)
