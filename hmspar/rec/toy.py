"""A small synthetic interaction log with item pictures, text vectors and prices, for the recommender
tests and benchmarks (not the ``shop`` simulator of the track: no sessions, no rendered products).

Items have a category, a latent style vector that sets their picture colours and stripes, a text
vector (a fixed random projection of style and category plus noise) and a category-dependent price;
a fraction of items enters the catalogue late (cold items). Users have a style taste; each next item
is drawn from a softmax over the items already released, mixing taste x style, staying in the last
item's category, and price.
"""

from __future__ import annotations

import numpy as np

from hmspar.rec.base import Histories, ItemFeatures


def _pictures(style: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """(n, 3, size, size) uint8: background colour from style[:, :3], stripes whose frequency and
    strength follow style[:, 3]."""
    n = style.shape[0]
    colour = 1.0 / (1.0 + np.exp(-style[:, :3]))                          # (n, 3) in (0, 1)
    freq = 1.0 + 3.0 * (1.0 / (1.0 + np.exp(-style[:, 3])))               # (n,)
    xs = np.linspace(0.0, 2 * np.pi, size)
    stripes = np.sin(freq[:, None] * xs[None, :])                         # (n, S)
    img = colour[:, :, None, None] * (0.7 + 0.3 * stripes[:, None, None, :])
    img = img + 0.05 * rng.normal(size=(n, 3, size, size))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def toy_log(n_users: int = 300, n_items: int = 100, mean_len: float = 12.0, seed: int = 0,
            n_categories: int = 5, image_size: int = 32, text_dim: int = 384,
            cold_fraction: float = 0.1) -> tuple[list[np.ndarray], list[np.ndarray], ItemFeatures]:
    """Simulate a log.

    Parameters
    ----------
    n_users, n_items : int
    mean_len : float
        Mean number of interactions per user (at least 3 each).
    seed : int
        Seed of ``np.random.default_rng``; the output depends on the arguments only.
    cold_fraction : float
        Share of items released in the last fifth of the time horizon.

    Returns
    -------
    (list of np.ndarray, list of np.ndarray, ItemFeatures)
        Per-user item sequences (1..n_items) and times (days, increasing), and the item tables.
    """
    rng = np.random.default_rng(seed)
    cat = rng.integers(1, n_categories + 1, n_items)
    style = rng.normal(size=(n_items, 4))
    proj = rng.normal(size=(4 + n_categories, text_dim)) / np.sqrt(4 + n_categories)
    onehot = np.eye(n_categories)[cat - 1]
    text = np.concatenate([style, onehot], 1) @ proj + 0.3 * rng.normal(size=(n_items, text_dim))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    price = np.exp(rng.normal(1.0 + 0.5 * cat, 0.3))
    horizon = 100.0
    first = np.zeros(n_items)
    cold = rng.random(n_items) < cold_fraction
    first[cold] = rng.uniform(0.8 * horizon, 0.95 * horizon, cold.sum())
    pop = rng.normal(0.0, 0.5, n_items)

    lengths = 3 + rng.geometric(1.0 / max(mean_len - 2.0, 1.0), n_users)
    taste = rng.normal(size=(n_users, 4))
    price_pref = rng.normal(0.0, 0.5, n_users)
    t = rng.uniform(0.0, 0.3 * horizon, n_users)
    seqs = [[] for _ in range(n_users)]
    tims = [[] for _ in range(n_users)]
    last = np.zeros(n_users, dtype=np.int64)
    base = taste @ style.T * 1.2 + pop[None, :]                           # (U, n)
    zprice = (np.log(price) - np.log(price).mean()) / np.log(price).std()
    for step in range(int(lengths.max())):
        act = np.flatnonzero(lengths > step)
        gap = rng.exponential(1.5, act.size) * np.where(rng.random(act.size) < 0.1, 15.0, 1.0)
        t[act] = t[act] + gap
        logits = base[act] + price_pref[act, None] * zprice[None, :]
        if step:
            same = cat[None, :] == cat[last[act] - 1][:, None]
            stick = np.where(gap < 5.0, 1.5, 0.3)                          # long gap: back to base taste
            logits = logits + stick[:, None] * same
        logits = np.where(first[None, :] <= t[act, None], logits, -np.inf)
        pick = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)  # Gumbel-max sampling
        last[act] = pick + 1
        for u, i in zip(act, pick):
            seqs[u].append(i + 1)
            tims[u].append(t[u])
    pad = lambda a, v: np.concatenate([[v], a])  # row 0 is the padding item
    feats = ItemFeatures(
        image=np.concatenate([np.zeros((1, 3, image_size, image_size), np.uint8),
                              _pictures(style, rng, image_size)]),
        text=np.concatenate([np.zeros((1, text_dim)), text]).astype(np.float32),
        price=pad(np.log1p(price), 0.0).astype(np.float32),
        category=pad(cat, 0).astype(np.int64),
        first_time=pad(first, 0.0).astype(np.float64),
    )
    return ([np.asarray(s, dtype=np.int64) for s in seqs], [np.asarray(s, dtype=np.float64) for s in tims],
            feats)


def _pad_left(seqs: list[np.ndarray], dtype: type) -> np.ndarray:
    L = max(1, max(len(s) for s in seqs))
    out = np.zeros((len(seqs), L), dtype=dtype)
    for r, s in enumerate(seqs):
        if len(s):
            out[r, L - len(s):] = s
    return out


def leave_one_out(seqs: list[np.ndarray], times: list[np.ndarray]) -> tuple[Histories, Histories, Histories]:
    """Split per-user sequences by time: last item = test target, the one before = validation target.

    Returns
    -------
    (Histories, Histories, Histories)
        ``train`` (histories without both targets), ``val`` (same histories, validation targets and
        times) and ``test`` (histories including the validation item, test targets and times).
    """
    users = np.arange(len(seqs))
    train = Histories(_pad_left([s[:-2] for s in seqs], np.int64), _pad_left([t[:-2] for t in times], np.float64),
                      users=users)
    val = Histories(train.items, train.times, np.array([s[-2] for s in seqs]), np.array([t[-2] for t in times]),
                    users)
    test = Histories(_pad_left([s[:-1] for s in seqs], np.int64), _pad_left([t[:-1] for t in times], np.float64),
                     np.array([s[-1] for s in seqs]), np.array([t[-1] for t in times]), users)
    return train, val, test
