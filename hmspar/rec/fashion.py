"""The ``fashion`` simulator: a shop where content matters (``kind: fashion``; the old shop stays ``kind: shop``).

The ``shop`` simulator makes content a noisy subset of what an item ID learns: an item's popularity is drawn
independently of its look, its picture shows only the look and category, almost no test target is new, and
heavy users' time lines run past the simulated year. This simulator keeps the shop's vocabulary (categories,
brands, prices, looks, the session and intent process, the repeat and re-buy rules) and changes what makes
content informative (documented in docs/recommendation.md, "The fashion shop"):

* **Arrivals through the whole period.** ``launch_fraction`` of the items are on sale from day 0; the others
  arrive uniformly over ``(0, days)``. A *new-arrivals shelf* puts recent items (those of the last
  :data:`NEW_WINDOW` days) in every consideration set, and a freshness bonus favours them, so a share of the
  validation and test targets are items nobody bought in training (``meta.json: oracle.*.new_item_share``).
* **Appeal caused by what can be seen.** Each item has three *visible traits* (tone: light to deep; cut: slim
  to oversized; print scale: fine to bold), rendered in its picture and named, sometimes, in its text. Its
  latent style is its look's centre plus a category offset plus a projection of the traits plus a hidden rest
  (:data:`HIDDEN_STYLE_SD`), so content reveals most of the style, not all of it. Its static appeal
  (popularity) is partly caused by the traits and its brand's quality, partly hidden. A *trend* moves through
  the looks over time (each look's weight a sinusoid of its own period and phase), and every user's utility
  includes ``trend(t) . style``: what is in fashion is visible, and it changes.
* **A capped timeline.** Each user's session times are drawn first (from their own stream), spaced as the
  shop's ``fit_period`` does, and events after ``days`` are dropped, so no event lies beyond the period.
* **An oracle** that knows every latent variable ranks the whole catalogue (items on sale at the event time)
  for each leave-one-out validation and test target, by the log-probability that the item enters the
  consideration set plus its utility; ``meta.json: oracle`` holds its NDCG@10 with the full state, without
  each term, and with items known only through their content (the ceiling of a content model on new items),
  overall and on new-item targets.

Randomness: items from ``default_rng([seed, 0])`` and ``[seed, 2]`` (pictures), event counts from
``[seed, 3]`` (as the shop), session times of user block ``b`` from ``[seed, 4, b]`` and the rest of block
``b`` from ``[seed, 1, b]``; users are simulated and written in blocks of :data:`BLOCK_SIZE`, so memory is
bounded whatever ``n_users``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from hmspar.data.pictures import (GARMENTS, PALETTE_ARRAY, PALETTE_NAMES, PATTERNS, SKIN_TONES, pattern_masks,
                                  silhouettes)
from hmspar.rec.schema import EVENT_DTYPES, EVENT_FILES, NpyWriter, write_items, write_meta
from hmspar.rec.shop import (BLOCK_SIZE, CATEGORIES, IN_SESSION_GAP, MEMORY, N_CAT_CANDIDATES,
                             N_POP_CANDIDATES, P_NEW_SESSION, PALETTE_WORDS, PATTERN_WORDS, TAU_DAYS, TIER_WORDS,
                             W_BRAND, W_CATEGORY, W_INTENT, W_POPULARITY, W_REBUY, W_REPEAT, W_STYLE,
                             DRIFT_PER_YEAR, brand_names, check_catalogue_shape, draw_categories_and_looks,
                             gumbel_argmax, n_events_per_user)

# What differs from the shop (module constants: the simulator's definition, documented in docs/).
W_TREND = 0.6            # trend(t) . style
W_FRESH = 1.5            # freshness bonus exp(-(t - arrival) / FRESH_DAYS)
FRESH_DAYS = 20.0
NEW_WINDOW = 14.0        # days an item stays on the new-arrivals shelf
N_NEW_CANDIDATES = 12    # shelf items in each consideration set
TRAIT_NAMES = ("tone", "cut", "print_scale")
TRAIT_LOADING = 0.8      # norm of each trait's direction in style space
HIDDEN_STYLE_SD = 0.35   # per-dimension sd of the style no content shows
APPEAL_TRAITS, APPEAL_BRAND, APPEAL_HIDDEN = 0.55, 0.45, 0.7   # popularity = these x (traits, brand, hidden)
TREND_PERIODS = (90.0, 365.0)   # each look's in-fashion cycle, days (uniform in this range)
TREND_SHARPNESS = 3.0    # softmax temperature of the looks' trend weights
START_SHARE = 0.6        # users start uniformly within this share of the period
SPAN_SHARE = 0.8         # a user's expected span, as a share of the days left after their start
MIN_EVENTS = 5           # the oracle scores users with at least this many events (rec.protocol.min_interactions)
#: (low words, high words) of each visible trait, used in texts when the trait is far from 0.
TRAIT_WORDS = ((("light", "pale", "washed"), ("deep", "dark", "rich")),
               (("slim", "fitted", "tailored"), ("oversized", "relaxed", "boxy")),
               (("fine-print", "micro-pattern", "delicate"), ("bold-print", "large-print", "graphic")))
#: Oracle variants (docs/recommendation.md): the full state, without one term each, and items by content.
ORACLE_VARIANTS = ("full", "no_style", "no_trend", "no_popularity", "no_intent", "no_repeats", "no_age",
                   "items_by_content")


@dataclasses.dataclass(frozen=True)
class Config:
    """``params.yaml: rec.datasets.<name>`` for ``kind: fashion``.

    Attributes
    ----------
    seed : int
        Seeds everything (see the module docstring).
    n_users, n_items, n_categories, n_brands, n_looks, style_dim, image_size, days, mean_events, max_events
        As for ``kind: shop``; ``max_events`` caps the events drawn per user before the timeline cap drops
        those after ``days``.
    launch_fraction : float
        Share of the items on sale from day 0 (in (0, 1]); the rest arrive uniformly over the period.
    """

    seed: int
    kind: str = "fashion"
    n_users: int = 3000
    n_items: int = 8000
    n_categories: int = 20
    n_brands: int = 80
    n_looks: int = 12
    style_dim: int = 8
    image_size: int = 32
    days: float = 365.0
    mean_events: float = 12.0
    max_events: int = 300
    launch_fraction: float = 0.3

    def __post_init__(self) -> None:
        check_catalogue_shape(self)
        if not 0 < self.launch_fraction <= 1:
            raise ValueError(f"launch_fraction must lie in (0, 1], got {self.launch_fraction!r}")


@dataclasses.dataclass
class Catalogue:
    """The simulated items (arrays indexed by item code), their content-only expectations and the samplers."""

    category: np.ndarray      # (I,) int
    brand: np.ndarray         # (I,) int
    look: np.ndarray          # (I,) int
    traits: np.ndarray        # (I, 3) visible traits
    style: np.ndarray         # (I, d) latent style
    style_seen: np.ndarray    # (I, d) what content shows of it: E[style | look, category, traits]
    rel_price: np.ndarray     # (I,) log price minus the category's mean
    popularity: np.ndarray    # (I,) latent static appeal, sd 1
    pop_seen: np.ndarray      # (I,) E[popularity | traits, brand quality]
    first_time: np.ndarray    # (I,) arrival day
    consumable: np.ndarray    # (I,) bool
    look_centres: np.ndarray  # (K, d)
    trend_period: np.ndarray  # (K,) days
    trend_phase: np.ndarray   # (K,) radians

    def __post_init__(self) -> None:
        n, c = self.category.size, int(self.category.max()) + 1
        # arrival order, overall and within each category (key: category * (last day + 1) + arrival day)
        self.by_time = np.argsort(self.first_time, kind="stable")
        self.time_sorted = self.first_time[self.by_time]
        self._span = float(self.first_time.max()) + 1.0
        self.by_cat = np.lexsort((np.arange(n), self.first_time, self.category))
        self.cat_key = self.category[self.by_cat] * self._span + self.first_time[self.by_cat]
        self.cat_start = np.searchsorted(self.category[self.by_cat], np.arange(c))
        self.cat_end = np.r_[self.cat_start[1:], n]

    def trend(self, t: np.ndarray) -> np.ndarray:
        """(A, d) the in-fashion direction at times ``t``: the looks' centres weighted by a softmax of
        their cycles."""
        phase = 2 * np.pi * np.asarray(t, np.float64)[:, None] / self.trend_period[None, :] + self.trend_phase
        logits = TREND_SHARPNESS * np.sin(phase)
        w = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (w / w.sum(axis=1, keepdims=True)) @ self.look_centres

    def on_sale(self, t: np.ndarray) -> np.ndarray:
        """(A,) number of items on sale at ``t`` (a prefix of the arrival order)."""
        return np.searchsorted(self.time_sorted, t, side="right")

    def in_category(self, c: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) of each category's items on sale at ``t`` in the category-then-arrival order."""
        lo = self.cat_start[c]
        hi = np.minimum(np.searchsorted(self.cat_key, c * self._span + t, side="right"), self.cat_end[c])
        return lo, hi

    def shelf(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) of the new-arrivals shelf at ``t`` in the arrival order."""
        return np.searchsorted(self.time_sorted, t - NEW_WINDOW, side="right"), self.on_sale(t)


def _prefix_sample(rng: np.random.Generator, cum: np.ndarray, lo: np.ndarray, hi: np.ndarray, k: int
                   ) -> np.ndarray:
    """(A, k) positions drawn with probability proportional to the weights whose cumulative sums are
    ``cum`` within ``[lo, hi)`` per row; -1 where the range is empty."""
    before = np.concatenate([[0.0], cum])
    base, total = before[lo], before[hi] - before[lo]
    u = rng.random((lo.size, k))
    pos = np.searchsorted(cum, base[:, None] + u * total[:, None], side="right")
    pos = np.clip(pos, lo[:, None], np.maximum(hi - 1, lo)[:, None])
    return np.where((hi > lo)[:, None], pos, -1)


def _traits_in_words(rng: np.random.Generator, traits: np.ndarray) -> list[str]:
    """Words for the traits far from 0 (|trait| > 0.6), each named with probability 0.5."""
    words = []
    for j, value in enumerate(traits):
        if abs(value) > 0.6 and rng.random() < 0.5:
            words.append(TRAIT_WORDS[j][int(value > 0)][rng.integers(0, 3)])
    return words


def render_items(rng: np.random.Generator, garment: np.ndarray, palette: np.ndarray, pattern: np.ndarray,
                 traits: np.ndarray, size: int) -> np.ndarray:
    """float32 (n, 3, S, S) pictures of items: the garment silhouette, palette and pattern of the shared
    renderer (:mod:`hmspar.data.pictures`), with the three visible traits drawn continuously: tone mixes the
    garment colours towards white (light) or black (deep), cut widens or narrows the silhouette, print scale
    sets the pattern's frequency; plus the renderer's nuisances (placement, lighting, occlusion, noise)."""
    n = garment.size
    tone, cut, scale_t = traits[:, 0], traits[:, 1], traits[:, 2]
    pick = rng.permuted(np.tile(np.arange(4), (n, 1)), axis=1)
    colours = PALETTE_ARRAY[palette[:, None], pick[:, :3]] + 0.04 * rng.standard_normal((n, 3, 3))
    mix = 0.45 * np.tanh(np.abs(tone))[:, None, None]
    colours = np.where((tone > 0)[:, None, None], colours * (1 - mix), colours + (1 - colours) * mix)
    colours[:, 2] *= 0.65
    skin = SKIN_TONES[rng.integers(0, len(SKIN_TONES), size=n)]
    background = rng.uniform(0.55, 0.95, size=(n, 3))
    cx = 0.5 + 0.05 * rng.standard_normal(n)
    top = 0.02 + 0.03 * rng.standard_normal(n)
    scale = rng.uniform(0.9, 1.08, size=n)
    width = np.exp(0.28 * np.clip(cut, -2.5, 2.5))
    freq = 36.0 * np.exp(-0.35 * np.clip(scale_t, -2.5, 2.5)) * rng.uniform(0.92, 1.08, size=n)
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 2))
    occluded = rng.random(n) < 0.15
    occ_box = rng.uniform(0.0, 0.8, size=(n, 2))
    occ_size = rng.uniform(0.15, 0.4, size=(n, 2))
    occ_colour = rng.uniform(0.0, 1.0, size=(n, 3))
    brightness = rng.uniform(0.85, 1.12, size=n)
    noise = 0.05 * rng.standard_normal((n, 3, size, size))

    grid = (np.arange(size) + 0.5) / size
    y, x = grid[None, :, None], grid[None, None, :]
    u = (x - cx[:, None, None]) / scale[:, None, None]
    v = (y - top[:, None, None]) / scale[:, None, None]
    u, v = np.broadcast_arrays(u, v)
    au = np.abs(u) / width[:, None, None]
    parts = silhouettes(au, u, v)[garment, :, np.arange(n)]
    accent = pattern_masks(x, y, au, v, freq, phase)[pattern, np.arange(n)]
    head = u ** 2 + (v - 0.11) ** 2 < 0.07 ** 2
    img = np.broadcast_to(background[:, :, None, None], (n, 3, size, size))
    main = np.where(accent[:, None], colours[:, 1, :, None, None], colours[:, 0, :, None, None])
    img = np.where(parts[:, 0, None], main, img)
    img = np.where(parts[:, 1, None], colours[:, 2, :, None, None], img)
    img = np.where((parts[:, 2] | head)[:, None], skin[:, :, None, None], img)
    ox0, oy0 = occ_box[:, 0, None, None], occ_box[:, 1, None, None]
    occ = (occluded[:, None, None] & (x >= ox0) & (x < ox0 + occ_size[:, 0, None, None])
           & (y >= oy0) & (y < oy0 + occ_size[:, 1, None, None]))
    img = np.where(occ[:, None], occ_colour[:, :, None, None], img)
    return np.clip(img * brightness[:, None, None, None] + noise, 0.0, 1.0).astype(np.float32)


def make_catalogue(cfg: Config) -> tuple[Catalogue, Any, np.ndarray]:
    """Simulate the items: latent attributes, the item table (with texts) and the pictures (uint8)."""
    import pandas as pd

    rng = np.random.default_rng([cfg.seed, 0])
    n, c, d = cfg.n_items, cfg.n_categories, cfg.style_dim
    cats = CATEGORIES[:c]
    category, look_palette, look_pattern, look_centres, look, cat_offset = draw_categories_and_looks(rng, cfg)
    traits = rng.standard_normal((n, len(TRAIT_NAMES)))
    loading = rng.standard_normal((len(TRAIT_NAMES), d))
    loading *= TRAIT_LOADING / np.linalg.norm(loading, axis=1, keepdims=True)
    style_seen = look_centres[look] + cat_offset[category] + traits @ loading
    style = style_seen + HIDDEN_STYLE_SD * rng.standard_normal((n, d))
    brand = rng.integers(0, cfg.n_brands, size=n)
    brand_premium = 0.3 * rng.standard_normal(cfg.n_brands)
    brand_quality = rng.standard_normal(cfg.n_brands)
    cat_price = np.array([x[4] for x in cats])
    log_price = cat_price[category] + brand_premium[brand] + 0.35 * rng.standard_normal(n)
    cat_mean = np.bincount(category, weights=log_price, minlength=c) / np.bincount(category, minlength=c)
    rel_price = log_price - cat_mean[category]
    taste_for = rng.standard_normal(len(TRAIT_NAMES))
    visible = traits @ (taste_for / np.linalg.norm(taste_for))
    sd = np.sqrt(APPEAL_TRAITS ** 2 + APPEAL_BRAND ** 2 + APPEAL_HIDDEN ** 2)
    pop_seen = (APPEAL_TRAITS * visible + APPEAL_BRAND * brand_quality[brand]) / sd
    popularity = pop_seen + APPEAL_HIDDEN * rng.standard_normal(n) / sd
    launched = rng.random(n) < cfg.launch_fraction
    launched[np.argmax(popularity)] = True   # something is on sale at day 0
    first_time = np.where(launched, 0.0, rng.uniform(0.0, cfg.days, size=n))
    consumable = np.array([x[3] for x in cats])[category]
    trend_period = rng.uniform(*TREND_PERIODS, size=cfg.n_looks)
    trend_phase = rng.uniform(0.0, 2 * np.pi, size=cfg.n_looks)

    brands = brand_names(rng, cfg.n_brands)
    tier = np.digitize(rel_price, [-0.25, 0.25])
    texts = []
    for i in range(n):
        pal, pat = PALETTE_NAMES[look_palette[look[i]]], PATTERNS[look_pattern[look[i]]]
        noun = cats[category[i]][1][rng.integers(0, 3)]
        words = []
        if rng.random() < 0.6:
            words.append(brands[brand[i]])
        words += _traits_in_words(rng, traits[i])
        if rng.random() < 0.6:
            words.append(PALETTE_WORDS[pal][rng.integers(0, 3)])
        if rng.random() < 0.5:
            words.append(PATTERN_WORDS[pat][rng.integers(0, 3)])
        title = " ".join(words + [noun if rng.random() < 0.85 else "piece"])
        extra = []
        if TIER_WORDS[tier[i]] and rng.random() < 0.5:
            extra.append(f"A {TIER_WORDS[tier[i]][rng.integers(0, 3)]} choice.")
        if rng.random() < 0.3:
            extra.append(f"In {PALETTE_WORDS[pal][rng.integers(0, 3)]} tones.")
        if first_time[i] > 0 and rng.random() < 0.3:
            extra.append(("New in.", "Just landed.", "This season's drop.")[rng.integers(0, 3)])
        texts.append(" ".join([title[:1].upper() + title[1:] + "."] + extra))

    garment_of = np.array([GARMENTS.index(x[2]) for x in cats])
    pic_rng = np.random.default_rng([cfg.seed, 2])
    garment = np.where(pic_rng.random(n) < 0.9, garment_of[category], pic_rng.integers(0, len(GARMENTS), n))
    palette = np.where(pic_rng.random(n) < 0.85, look_palette[look], pic_rng.integers(0, len(PALETTE_NAMES), n))
    pattern = np.where(pic_rng.random(n) < 0.8, look_pattern[look], pic_rng.integers(0, len(PATTERNS), n))
    pictures = np.concatenate([
        np.rint(255.0 * render_items(pic_rng, garment[s:s + 512], palette[s:s + 512], pattern[s:s + 512],
                                     traits[s:s + 512], cfg.image_size)).astype(np.uint8)
        for s in range(0, n, 512)])

    items = pd.DataFrame({
        "item_id": [f"I{i:06d}" for i in range(n)],
        "category": [cats[k][0] for k in category],
        "brand": [brands[b] for b in brand],
        "price": np.round(np.exp(log_price), 2),
        "first_time": first_time,
        "text": texts,
    })
    cat_obj = Catalogue(category, brand, look, traits, style, style_seen, rel_price, popularity, pop_seen,
                        first_time, consumable, look_centres, trend_period, trend_phase)
    return cat_obj, items, pictures


def block_times(cfg: Config, n_events: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Session times of one block of users, capped at ``days``.

    Returns
    -------
    times : np.ndarray
        (B, n_max) event days (increasing per row; entries at or past ``n_kept`` are unused).
    new : np.ndarray
        (B, n_max) bool, the event starts a new session.
    n_kept : np.ndarray
        (B,) events per user inside the period (at least 1: a user starts inside it).
    """
    rng = np.random.default_rng([cfg.seed, 4, block])
    b = n_events.size
    n_max = int(n_events.max()) if b else 0
    start = rng.uniform(0.0, START_SHARE * cfg.days, size=b)
    mean_gap = rng.lognormal(np.log(8.0), 0.8, size=b)
    sessions = np.maximum(P_NEW_SESSION * (n_events - 1), 1.0)
    mean_gap = SPAN_SHARE * (cfg.days - start) / sessions
    new = rng.random((b, n_max)) < P_NEW_SESSION
    new[:, :1] = True
    gap = np.where(new, rng.exponential(1.0, size=(b, n_max)) * mean_gap[:, None],
                   rng.exponential(IN_SESSION_GAP, size=(b, n_max)))
    gap[:, :1] = 0.0
    times = start[:, None] + np.cumsum(gap, axis=1)
    kept = (np.arange(n_max)[None, :] < n_events[:, None]) & (times <= cfg.days)
    return times, new, kept.sum(axis=1)


class _Oracle:
    """Accumulates the oracle's ranks of validation and test targets (see :func:`oracle_ranks`)."""

    def __init__(self, n_users: int) -> None:
        self.ranks = {split: np.zeros((n_users, len(ORACLE_VARIANTS)), np.int64) for split in ("val", "test")}
        self.target = {split: np.full(n_users, -1, np.int64) for split in ("val", "test")}


def oracle_ranks(cat: Catalogue, target: np.ndarray, t: np.ndarray, intent: np.ndarray, taste: np.ndarray,
                 affinity: np.ndarray, price_att: np.ndarray, fav_brands: np.ndarray, memory: np.ndarray,
                 new: np.ndarray) -> np.ndarray:
    """(A, len(ORACLE_VARIANTS)) rank (1 = first) of each target among the items on sale at ``t``, scored by
    ``log P(item in the consideration set) + utility`` under each variant of the oracle's knowledge.

    The inclusion probability is exact for the simulator's sampler (draws with replacement from the
    intent category and the whole shop, popularity-weighted, the shelf uniformly, and the memory); the
    score is the usual first-order stand-in for the choice probability over random consideration sets.
    """
    a, n = target.size, cat.category.size
    rows = np.arange(a)
    on_sale = cat.first_time[None, :] <= t[:, None]                                  # (A, I)
    same_cat = cat.category[None, :] == intent[:, None]
    logits = affinity - affinity.max(axis=1, keepdims=True)
    q = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)                  # fresh-intent distribution
    q_item = q[:, cat.category]                                                      # (A, I)
    in_mem = (np.arange(n)[None, :, None] == memory[:, None, :]).any(axis=2)
    age = t[:, None] - cat.first_time[None, :]
    shelf_lo, shelf_hi = cat.shelf(t)
    n_shelf = np.maximum(shelf_hi - shelf_lo, 1)
    on_shelf = on_sale & (age < NEW_WINDOW)
    onehot = np.eye(int(cat.category.max()) + 1)[cat.category]                         # (I, C)

    def inclusion(weight: np.ndarray, cat_weight_total: np.ndarray, all_total: np.ndarray, intent_known: bool,
                  memory_known: bool, age_known: bool) -> np.ndarray:
        p_cat = 1 - (1 - np.where(on_sale, weight / cat_weight_total, 0.0)) ** N_CAT_CANDIDATES
        p_cat = np.where(same_cat, p_cat, 0.0) if intent_known else q_item * p_cat
        p_pop = 1 - (1 - np.where(on_sale, weight / all_total[:, None], 0.0)) ** N_POP_CANDIDATES
        miss = (1 - p_cat) * (1 - p_pop)
        if age_known:
            miss = miss * np.where(on_shelf, (1 - 1 / n_shelf[:, None]) ** N_NEW_CANDIDATES, 1.0)
        if memory_known:
            miss = np.where(in_mem, 0.0, miss)
        with np.errstate(divide="ignore"):
            return np.log(np.clip(1 - miss, 0.0, 1.0))

    def totals(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the weight of each item's own category on sale at t, and of the whole shop on sale."""
        w_sale = np.where(on_sale, weight, 0.0)
        per_cat = w_sale @ onehot                                                    # (A, C)
        return np.maximum(per_cat[:, cat.category], 1e-300), w_sale.sum(axis=1)

    def utility(style: np.ndarray, pop: np.ndarray, *, use_style=True, use_trend=True, use_pop=True,
                intent_known=True, memory_known=True, age_known=True) -> np.ndarray:
        u = W_CATEGORY * np.take_along_axis(affinity, np.broadcast_to(cat.category, (a, n)), axis=1)
        u += W_INTENT * (same_cat if intent_known else q_item)
        u -= price_att[:, None] * cat.rel_price[None, :]
        u += W_BRAND * (cat.brand[None, :, None] == fav_brands[:, None, :]).any(axis=2)
        if use_style:
            u += W_STYLE * taste @ style.T
        if use_trend:
            u += W_TREND * cat.trend(t) @ style.T
        if use_pop:
            u += W_POPULARITY * pop[None, :]
        if age_known:
            u += W_FRESH * np.exp(-np.maximum(age, 0.0) / FRESH_DAYS)
        if memory_known:
            repeat = np.where(cat.consumable[None, :] & new[:, None], W_REPEAT, W_REBUY)
            u += np.where(in_mem, repeat, 0.0)
        return u

    weights = {"true": np.exp(1.2 * cat.popularity), "seen": np.exp(1.2 * cat.pop_seen), "flat": np.ones(n)}
    tot = {k: totals(np.broadcast_to(w, (a, n))) for k, w in weights.items()}
    out = np.zeros((a, len(ORACLE_VARIANTS)), np.int64)
    for j, variant in enumerate(ORACLE_VARIANTS):
        flags = dict(use_style=variant != "no_style", use_trend=variant != "no_trend",
                     use_pop=variant != "no_popularity", intent_known=variant != "no_intent",
                     memory_known=variant != "no_repeats", age_known=variant != "no_age")
        by_content = variant == "items_by_content"
        wkey = "flat" if variant == "no_popularity" else "seen" if by_content else "true"
        style, pop = (cat.style_seen, cat.pop_seen) if by_content else (cat.style, cat.popularity)
        score = utility(style, pop, **flags) + inclusion(
            weights[wkey][None, :], tot[wkey][0], tot[wkey][1], flags["intent_known"], flags["memory_known"],
            flags["age_known"])
        score = np.where(on_sale, score, -np.inf)
        mine = score[rows, target]
        out[:, j] = 1 + (score > mine[:, None]).sum(axis=1)
    return out


def simulate_block(cfg: Config, cat: Catalogue, times: np.ndarray, new: np.ndarray, n_kept: np.ndarray,
                   rng: np.random.Generator, oracle: _Oracle | None = None, first_user: int = 0
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulate the choices of one block of users at the given times; returns ``user`` (position in the
    block), ``item`` and ``time`` of the kept events, ordered by user then time. With ``oracle``, the ranks
    of each user's last two events (test and validation targets) are recorded at rows ``first_user + i``."""
    b, d, c = n_kept.size, cfg.style_dim, cfg.n_categories
    fav_look = rng.integers(0, cfg.n_looks, size=b)
    base = 0.8 * cat.look_centres[fav_look] + 0.8 * rng.standard_normal((b, d))
    affinity = 1.5 * rng.standard_normal((b, c))
    price_att = 0.8 * rng.standard_normal(b)
    fav_brands = rng.integers(0, cfg.n_brands, size=(b, 2))
    weight = np.exp(1.2 * cat.popularity)
    cat_cum = np.cumsum(weight[cat.by_cat])
    pop_cum = np.cumsum(weight[cat.by_time])
    short = np.zeros((b, d))
    intent = np.zeros(b, dtype=np.int64)
    memory = np.full((b, MEMORY), -1, dtype=np.int64)
    n_max = int(n_kept.max()) if b else 0
    items = np.zeros((b, n_max), dtype=np.int64)
    for step in range(n_max):
        act = np.flatnonzero(n_kept > step)
        a = act.size
        t = times[act, step]
        is_new = new[act, step]
        gap = np.full(a, np.inf) if step == 0 else t - times[act, step - 1]
        w = np.exp(-gap / TAU_DAYS)
        drift = DRIFT_PER_YEAR * np.sqrt(np.minimum(gap, cfg.days) / 365.0)
        base[act] += np.where(is_new, drift, 0.0)[:, None] * rng.standard_normal((a, d))
        short[act] *= w[:, None]
        fresh_cat = gumbel_argmax(rng, affinity[act])
        keep = np.where(is_new, rng.random(a) < 0.7 * w, rng.random(a) < 0.75) & (step > 0)
        intent[act] = np.where(keep, intent[act], fresh_cat)
        lo, hi = cat.in_category(intent[act], t)
        in_cat = _prefix_sample(rng, cat_cum, lo, hi, N_CAT_CANDIDATES)
        in_cat = np.where(in_cat >= 0, cat.by_cat[np.maximum(in_cat, 0)], -1)
        n_sale = cat.on_sale(t)
        in_pop = cat.by_time[_prefix_sample(rng, pop_cum, np.zeros(a, np.int64), n_sale, N_POP_CANDIDATES)]
        s_lo, s_hi = cat.shelf(t)
        pos = s_lo[:, None] + np.floor(rng.random((a, N_NEW_CANDIDATES)) * (s_hi - s_lo)[:, None]).astype(np.int64)
        on_shelf = np.where((s_hi > s_lo)[:, None], cat.by_time[np.minimum(pos, cat.by_time.size - 1)], -1)
        mem = memory[act]
        cand = np.sort(np.concatenate([in_cat, in_pop, on_shelf, mem], axis=1), axis=1)
        unusable = cand < 0
        unusable[:, 1:] |= cand[:, 1:] == cand[:, :-1]
        cand = np.maximum(cand, 0)
        taste = base[act] + short[act]
        style = cat.style[cand]
        util = W_STYLE * np.einsum("amd,ad->am", style, taste)
        util += W_TREND * np.einsum("amd,ad->am", style, cat.trend(t))
        ccat = cat.category[cand]
        util += W_CATEGORY * np.take_along_axis(affinity[act], ccat, axis=1)
        util += W_INTENT * (ccat == intent[act][:, None])
        util -= price_att[act][:, None] * cat.rel_price[cand]
        util += W_BRAND * (cat.brand[cand][:, :, None] == fav_brands[act][:, None, :]).any(axis=2)
        util += W_POPULARITY * cat.popularity[cand]
        util += W_FRESH * np.exp(-(t[:, None] - cat.first_time[cand]) / FRESH_DAYS)
        bought = (cand[:, :, None] == mem[:, None, :]).any(axis=2)
        util += np.where(bought, np.where(cat.consumable[cand] & is_new[:, None], W_REPEAT, W_REBUY), 0.0)
        util[unusable] = -np.inf
        chosen = cand[np.arange(a), gumbel_argmax(rng, util)]
        items[act, step] = chosen
        if oracle is not None:
            for split, back in (("test", 1), ("val", 2)):
                sel = np.flatnonzero((n_kept[act] - back == step) & (n_kept[act] >= MIN_EVENTS))
                for s in range(0, sel.size, 256):
                    rows = sel[s:s + 256]
                    u = act[rows]
                    oracle.ranks[split][first_user + u] = oracle_ranks(
                        cat, chosen[rows], t[rows], intent[u], taste[rows], affinity[u], price_att[u],
                        fav_brands[u], mem[rows], is_new[rows])
                    oracle.target[split][first_user + u] = chosen[rows]
        short[act] = 0.6 * short[act] + 0.4 * cat.style[chosen]
        memory[act] = np.concatenate([chosen[:, None], mem[:, :-1]], axis=1)
    mask = np.arange(n_max)[None, :] < n_kept[:, None]
    user = np.broadcast_to(np.arange(b)[:, None], (b, n_max))[mask]
    return user, items[mask], times[:, :n_max][mask]


def _ndcg10(ranks: np.ndarray) -> np.ndarray:
    return np.where(ranks <= 10, 1.0 / np.log2(ranks + 1.0), 0.0)


def oracle_summary(oracle: _Oracle, train_counts: np.ndarray) -> dict[str, Any]:
    """NDCG@10 of each oracle variant on the validation and test targets, overall and on new items (no
    training interaction: every event of a scored user but their last two, as leave-one-out trains)."""
    out: dict[str, Any] = {}
    for split in ("val", "test"):
        scored = oracle.target[split] >= 0
        target = oracle.target[split][scored]
        ranks = oracle.ranks[split][scored]
        is_new = train_counts[target] == 0
        entry: dict[str, Any] = {"n_targets": int(target.size), "n_new_item_targets": int(is_new.sum()),
                                 "new_item_share": round(float(is_new.mean()) if target.size else 0.0, 4)}
        for name, rows in (("ndcg@10", slice(None)), ("new_item_ndcg@10", is_new), ("warm_item_ndcg@10", ~is_new)):
            sub = ranks[rows]
            entry[name] = {v: (round(float(_ndcg10(sub[:, j]).mean()), 4) if sub.shape[0] else None)
                           for j, v in enumerate(ORACLE_VARIANTS)}
        out[split] = entry
    return out


def content_summary(cat: Catalogue) -> dict[str, float]:
    """How much of an item's latent style and appeal its content shows (R² of the content-only
    expectations)."""
    def r2(true: np.ndarray, seen: np.ndarray) -> float:
        return round(float(1 - ((true - seen) ** 2).sum() / ((true - true.mean(axis=0)) ** 2).sum()), 4)

    return {"style_r2_from_content": r2(cat.style, cat.style_seen),
            "popularity_r2_from_content": r2(cat.popularity, cat.pop_seen)}


def generate(cfg: Config, out_dir: Path, progress: bool = False) -> dict[str, Any]:
    """Simulate the fashion shop into ``out_dir`` (the raw schema of :mod:`hmspar.rec.schema`), with the
    oracle's figures in ``meta.json``."""
    out_dir = Path(out_dir)
    cat, items, pictures = make_catalogue(cfg)
    write_items(out_dir, items, pictures)
    n_events = n_events_per_user(cfg)
    starts = list(range(0, cfg.n_users, BLOCK_SIZE))
    n_kept = np.concatenate([block_times(cfg, n_events[s:s + BLOCK_SIZE], k)[2] for k, s in enumerate(starts)]
                            ) if starts else np.zeros(0, np.int64)
    total = int(n_kept.sum())
    writers = {k: NpyWriter(out_dir / EVENT_FILES[k], total, EVENT_DTYPES[k]) for k in EVENT_FILES}
    oracle = _Oracle(cfg.n_users)
    train_counts = np.zeros(cfg.n_items, np.int64)
    blocks = enumerate(starts)
    if progress:
        from tqdm.auto import tqdm
        blocks = tqdm(blocks, total=len(starts), desc="fashion shop users")
    for block, start in blocks:
        stop = min(start + BLOCK_SIZE, cfg.n_users)
        times, new, kept = block_times(cfg, n_events[start:stop], block)
        rng = np.random.default_rng([cfg.seed, 1, block])
        user, item, time = simulate_block(cfg, cat, times, new, kept, rng, oracle, start)
        writers["user"].write(user + start)
        writers["item"].write(item)
        writers["time"].write(time)
        # leave-one-out training events: all but each scored user's last two
        position = np.arange(user.size) - np.concatenate([[0], np.cumsum(kept)[:-1]])[user]
        train = (position < kept[user] - 2) & (kept[user] >= MIN_EVENTS)
        train_counts += np.bincount(item[train], minlength=cfg.n_items)
    for w in writers.values():
        w.close()
    meta = {
        "kind": "fashion", "n_users": cfg.n_users, "n_items": cfg.n_items, "n_events": total,
        "categories": [x[0] for x in CATEGORIES[:cfg.n_categories]],
        "consumable_categories": [x[0] for x in CATEGORIES[:cfg.n_categories] if x[3]],
        "has_pictures": True, "image_size": cfg.image_size, "time_unit": "days",
        "config": dataclasses.asdict(cfg),
        "content": content_summary(cat),
        "oracle": oracle_summary(oracle, train_counts),
    }
    write_meta(out_dir, meta)
    return meta
