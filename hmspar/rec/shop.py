"""The ``shop`` simulator: a multimodal web shop whose users buy in timestamped sessions.

Generative model (documented in the README, "Recommendation track"):

* **Items** have a category (a garment, an accessory or a consumable), a brand, a price (log-normal around
  the category's level plus a brand premium), a latent popularity and a latent *style vector* drawn around
  one of a few *looks* (a palette and a pattern). Each item gets a 32x32 RGB picture rendered from its
  category's garment and its look's palette and pattern by the trend dataset's renderer (noisily: the
  picture shows the look, not the style vector), and a title/description in varied wording that names
  *some* of its attributes (brand, look words, pattern, price tier, category synonym), never all of them.
  Most items exist from day 0; ``new_item_fraction`` of them arrive later, so late test targets are cold.
* **Users** have a base taste (a style vector near a favourite look), log-affinities to categories, a
  price attitude (cheap vs premium within a category), two favourite brands, a heavy-tailed number of
  interactions and a typical gap between sessions. The base taste drifts slowly (a random walk in time).
* **Sessions**: a new session starts after an exponential gap; inside a session events are minutes apart.
  A session has an *intent category*: after a short gap the user often continues the last one, after a long
  gap it is drawn afresh from the base affinities; within a session it switches now and then. A short-term
  style state (the styles of recent purchases) adds to the base taste with weight ``exp(-gap / 3 days)``,
  so after a long gap the user falls back to the base taste.
* **Choice**: each event draws a consideration set (items of the intent category and items of the whole
  shop, popularity-weighted, plus the user's last 8 purchases; each distinct item once) and picks by a
  multinomial logit over
  taste . style, category affinity, the intent bonus, the price attitude, brand loyalty, popularity,
  freshness, a repeat bonus for consumables bought in an earlier session and a penalty for re-buying a durable item
  (or anything within the same session).

Every modality therefore carries part of the signal (pictures: the look; text: brand, look words and
price tier, partially; price; category) and none all of it; the sequence carries the session intent, the
short-term style and the repeats. Users are simulated in blocks of :data:`BLOCK_SIZE`; block ``b`` draws
from ``default_rng([seed, 1, b])`` and is written to disk at once, so memory is bounded whatever
``n_users``, and the output depends on the config alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from hmspar.data.pictures import GARMENTS, PALETTE_NAMES, PATTERNS, Appearance, Look, render_posts
from hmspar.rec.schema import EVENT_DTYPES, EVENT_FILES, NpyWriter, write_items, write_meta

#: Users per simulation block (a constant, not a setting, so the output never depends on it).
BLOCK_SIZE = 4096

#: (category, synonyms used in titles, garment drawn in its picture, consumable, log price level)
CATEGORIES = (
    ("dress", ("dress", "gown", "frock"), "maxi_dress", False, 4.0),
    ("coat", ("coat", "overcoat", "trench"), "straight_coat", False, 4.7),
    ("hoodie", ("hoodie", "sweatshirt", "pullover"), "hoodie", False, 3.7),
    ("blazer", ("blazer", "suit jacket", "tailored jacket"), "blazer_skirt", False, 4.4),
    ("trousers", ("trousers", "wide-leg pants", "slacks"), "crop_wide", False, 3.8),
    ("leggings", ("leggings", "tights", "yoga pants"), "tank_leggings", False, 3.2),
    ("top", ("top", "tee", "blouse"), "crop_wide", False, 3.0),
    ("socks", ("socks", "sock pack", "ankle socks"), "tank_leggings", True, 2.2),
    ("skirt", ("skirt", "midi skirt", "pleated skirt"), "blazer_skirt", False, 3.6),
    ("jacket", ("jacket", "bomber", "windbreaker"), "straight_coat", False, 4.3),
    ("detergent", ("laundry detergent", "wash liquid", "delicates wash"), "hoodie", True, 2.5),
    ("knitwear", ("jumper", "cardigan", "knit sweater"), "hoodie", False, 3.9),
    ("skincare", ("face cream", "moisturiser", "serum"), "tank_leggings", True, 3.2),
    ("scarf", ("scarf", "wrap", "shawl"), "maxi_dress", False, 2.9),
    ("bag", ("bag", "tote", "handbag"), "blazer_skirt", False, 4.1),
    ("perfume", ("perfume", "eau de toilette", "fragrance"), "maxi_dress", True, 3.8),
    ("sneakers", ("sneakers", "trainers", "running shoes"), "tank_leggings", False, 4.2),
    ("boots", ("boots", "ankle boots", "chelsea boots"), "straight_coat", False, 4.5),
    ("shoe care", ("shoe polish", "sneaker cleaner", "shoe care kit"), "crop_wide", True, 2.3),
    ("underwear", ("briefs", "underwear set", "boxers"), "tank_leggings", True, 2.8),
)
#: Words for each palette and each pattern (a description uses one of them, sometimes none).
PALETTE_WORDS = {
    "earth": ("earthy", "terracotta", "camel"), "neutral": ("minimal", "neutral", "greige"),
    "bold": ("bold", "statement", "primary-colour"), "ivy": ("preppy", "navy", "collegiate"),
    "candy": ("pastel", "candy", "soft pink"), "sport": ("sporty", "neon", "athletic"),
}
PATTERN_WORDS = {
    "solid": ("plain", "solid", "clean"), "floral": ("floral", "flower-print", "botanical"),
    "plaid": ("plaid", "tartan", "check"), "stripes": ("striped", "pinstripe", "breton"),
    "logo": ("logo", "branded", "graphic"), "side_stripe": ("side-stripe", "track", "racing-stripe"),
}
TIER_WORDS = (("budget", "affordable", "great-value"), (), ("premium", "luxury", "high-end"))
BRAND_SYLLABLES = ("nor", "vel", "ka", "lumi", "tor", "sa", "ba", "ren", "do", "mi", "quo", "zen", "fa", "ri")

# Choice-model weights (module constants: the simulator's definition, documented in the README).
W_STYLE = 0.4          # taste . style
W_CATEGORY = 1.0       # category log-affinity
W_INTENT = 1.5         # bonus for the session's intent category
W_BRAND = 1.0          # one of the user's two favourite brands
W_POPULARITY = 0.5     # latent item popularity
W_FRESH = 1.0          # freshness bonus exp(-(t - arrival) / 20 days)
W_REPEAT = 1.0         # a consumable bought among the last 8 purchases, in a new session
W_REBUY = -8.0         # a durable item among the last 8 purchases, or anything bought this session
TAU_DAYS = 3.0         # short-term state weight exp(-gap / TAU_DAYS)
DRIFT_PER_YEAR = 0.6   # sd of the base-taste random walk per sqrt(year)
P_NEW_SESSION = 0.35   # probability that the next event starts a new session
IN_SESSION_GAP = 0.003  # mean gap between events of one session (days, about 4 minutes)
FIT_SHARE = 0.8        # fit_period: a user's expected span is at most this share of the days left after their start
N_CAT_CANDIDATES = 24
N_POP_CANDIDATES = 24
MEMORY = 8


@dataclasses.dataclass(frozen=True)
class Config:
    """``params.yaml: rec.datasets.<name>`` for ``kind: shop``.

    Attributes
    ----------
    seed : int
        Seeds everything (items from ``[seed, 0]``, user block ``b`` from ``[seed, 1, b]``).
    n_users, n_items : int
        Number of simulated users and catalogue items.
    n_categories : int
        Categories used (the first ``n_categories`` of :data:`CATEGORIES`, at most 20).
    n_brands, n_looks, style_dim : int
        Brands, looks (palette x pattern combinations) and the latent style dimension.
    image_size : int
        Side of the rendered product pictures.
    days : float
        Length of the simulated period; late items arrive uniformly within its first 90 %.
    mean_events : float
        Mean number of interactions per user (heavy-tailed, at least 3).
    max_events : int
        Cap on one user's interactions.
    new_item_fraction : float
        Share of items that arrive after day 0.
    fit_period : bool
        Space each user's sessions so that their expected activity ends within ``days``: the mean gap
        between sessions is capped at ``FIT_SHARE * (days - start) / expected sessions``, so heavy users
        are more frequent rather than active for decades (a fixed observation window, as in a rating
        log). False (the default shop): gaps do not depend on the number of events, so heavy users' time
        lines run past ``days``.
    """

    seed: int
    kind: str = "shop"
    n_users: int = 10000
    n_items: int = 3000
    n_categories: int = 20
    n_brands: int = 80
    n_looks: int = 12
    style_dim: int = 8
    image_size: int = 32
    days: float = 365.0
    mean_events: float = 20.0
    max_events: int = 200
    new_item_fraction: float = 0.3
    fit_period: bool = False

    def __post_init__(self) -> None:
        check_catalogue_shape(self)
        if not 0 <= self.new_item_fraction < 1:
            raise ValueError(f"new_item_fraction must lie in [0, 1), got {self.new_item_fraction!r}")


@dataclasses.dataclass
class Catalogue:
    """The simulated items (arrays indexed by item code) and what the choice model needs of them."""

    category: np.ndarray      # (I,) int category code 0..C-1
    brand: np.ndarray         # (I,) int
    look: np.ndarray          # (I,) int
    style: np.ndarray         # (I, d) float
    log_price: np.ndarray     # (I,) float
    rel_price: np.ndarray     # (I,) log price minus the category's mean
    popularity: np.ndarray    # (I,) float latent
    first_time: np.ndarray    # (I,) float days
    consumable: np.ndarray    # (I,) bool
    look_centres: np.ndarray  # (n_looks, d)
    cat_cum: np.ndarray       # (I,) sorted by category: category code + within-category cumulative weight
    cat_order: np.ndarray     # (I,) item codes sorted by category
    pop_cum: np.ndarray       # (I,) global cumulative popularity weight in (0, 1]


def brand_names(rng: np.random.Generator, n: int) -> list[str]:
    names: list[str] = []
    seen = set()
    while len(names) < n:
        k = int(rng.integers(2, 4))
        name = "".join(BRAND_SYLLABLES[j] for j in rng.integers(0, len(BRAND_SYLLABLES), size=k)).capitalize()
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def check_catalogue_shape(cfg: Any) -> None:
    """The checks shared by the ``shop`` and ``fashion`` configs (seed, sizes, categories, picture size,
    event counts, looks); raises ``ValueError`` naming the field."""
    if cfg.seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {cfg.seed!r}")
    for name in ("n_users", "n_items", "n_brands", "n_looks", "style_dim", "days", "max_events"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(cfg, name)!r}")
    if not 1 <= cfg.n_categories <= len(CATEGORIES):
        raise ValueError(f"n_categories must lie in [1, {len(CATEGORIES)}], got {cfg.n_categories!r}")
    if cfg.n_items < 2 * cfg.n_categories:
        raise ValueError(f"n_items must be at least twice n_categories, got {cfg.n_items!r}")
    if not 8 <= cfg.image_size <= 128:
        raise ValueError(f"image_size must lie in [8, 128], got {cfg.image_size!r}")
    if not 3 < cfg.mean_events <= cfg.max_events:
        raise ValueError(f"mean_events must lie in (3, max_events], got {cfg.mean_events!r}")
    if cfg.n_looks > len(PALETTE_NAMES) * len(PATTERNS):
        raise ValueError(f"n_looks must be at most {len(PALETTE_NAMES) * len(PATTERNS)}, got {cfg.n_looks!r}")


def draw_categories_and_looks(rng: np.random.Generator, cfg: Any
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The first draws of a catalogue, shared by ``shop`` and ``fashion`` (same order, so the shop's stream
    is unchanged): ``category`` (every category at least twice), ``look_palette`` and ``look_pattern`` of each
    look, ``look_centres`` (norm 1.5), each item's ``look`` and each category's style ``cat_offset``."""
    n, c, d = cfg.n_items, cfg.n_categories, cfg.style_dim
    share = rng.dirichlet(np.full(c, 2.0))
    category = np.concatenate([np.arange(c), np.arange(c),
                               rng.choice(c, size=n - 2 * c, p=share)]).astype(np.int64)
    category = rng.permutation(category)
    combos = rng.choice(len(PALETTE_NAMES) * len(PATTERNS), size=cfg.n_looks, replace=False)
    look_palette, look_pattern = combos // len(PATTERNS), combos % len(PATTERNS)
    look_centres = rng.standard_normal((cfg.n_looks, d))
    look_centres *= 1.5 / np.linalg.norm(look_centres, axis=1, keepdims=True)
    look = rng.integers(0, cfg.n_looks, size=n)
    cat_offset = 0.3 * rng.standard_normal((c, d))
    return category, look_palette, look_pattern, look_centres, look, cat_offset


def make_catalogue(cfg: Config) -> tuple[Catalogue, Any, np.ndarray]:
    """Simulate the items: latent attributes, the item table (with texts) and the pictures.

    Returns
    -------
    catalogue : Catalogue
    items : pandas.DataFrame
        Columns of :data:`hmspar.rec.schema.ITEM_COLUMNS`.
    pictures : np.ndarray
        uint8 (n_items, 3, S, S).
    """
    import pandas as pd

    rng = np.random.default_rng([cfg.seed, 0])
    n, c, d = cfg.n_items, cfg.n_categories, cfg.style_dim
    cats = CATEGORIES[:c]
    category, look_palette, look_pattern, look_centres, look, cat_offset = draw_categories_and_looks(rng, cfg)
    style = look_centres[look] + cat_offset[category] + 0.5 * rng.standard_normal((n, d))
    brand = rng.integers(0, cfg.n_brands, size=n)
    brand_premium = 0.3 * rng.standard_normal(cfg.n_brands)
    cat_price = np.array([x[4] for x in cats])
    log_price = cat_price[category] + brand_premium[brand] + 0.35 * rng.standard_normal(n)
    cat_mean = np.bincount(category, weights=log_price, minlength=c) / np.bincount(category, minlength=c)
    rel_price = log_price - cat_mean[category]
    popularity = rng.standard_normal(n)
    late = rng.random(n) < cfg.new_item_fraction
    first_time = np.where(late, rng.uniform(0.0, 0.9 * cfg.days, size=n), 0.0)
    consumable = np.array([x[3] for x in cats])[category]

    # consideration-set samplers: within-category and global, both popularity-weighted
    weight = np.exp(1.2 * popularity)
    order = np.lexsort((np.arange(n), category))
    w_sorted = weight[order]
    cat_sorted = category[order]
    cum = np.cumsum(w_sorted)
    start = np.searchsorted(cat_sorted, np.arange(c))
    before = np.concatenate([[0.0], cum])[start]
    totals = np.bincount(cat_sorted, weights=w_sorted, minlength=c)
    cat_cum = cat_sorted + (cum - before[cat_sorted]) / totals[cat_sorted]
    cat_cum[np.r_[start[1:] - 1, n - 1]] = np.arange(c) + 1.0  # exact segment ends
    pop_cum = np.cumsum(weight) / weight.sum()
    pop_cum[-1] = 1.0

    # texts: a title and a description naming a random subset of the attributes
    brands = brand_names(rng, cfg.n_brands)
    tier = np.digitize(rel_price, [-0.25, 0.25])
    texts = []
    for i in range(n):
        pal, pat = PALETTE_NAMES[look_palette[look[i]]], PATTERNS[look_pattern[look[i]]]
        noun = cats[category[i]][1][rng.integers(0, 3)]
        words = []
        if rng.random() < 0.6:
            words.append(brands[brand[i]])
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
        if rng.random() < 0.3:
            extra.append(("Everyday essential.", "New season.", "Limited run.", "Customer favourite.")[rng.integers(0, 4)])
        texts.append(" ".join([title[:1].upper() + title[1:] + "."] + extra))

    # pictures: the category's garment in the look's palette and pattern
    garment = np.array([GARMENTS.index(x[2]) for x in cats])[category]
    code = (garment * len(PALETTE_NAMES) + look_palette[look]) * len(PATTERNS) + look_pattern[look]
    distinct, style_code = np.unique(code, return_inverse=True)
    looks = [Look(GARMENTS[k // (len(PALETTE_NAMES) * len(PATTERNS))],
                  PALETTE_NAMES[(k // len(PATTERNS)) % len(PALETTE_NAMES)], PATTERNS[k % len(PATTERNS)])
             for k in distinct]
    appearance = Appearance(p_garment=0.9, p_palette=0.8, p_pattern=0.75, p_occlusion=0.15)
    pic_rng = np.random.default_rng([cfg.seed, 2])
    pictures = np.concatenate([
        np.rint(255.0 * render_posts(pic_rng, style_code[s:s + 512], looks, cfg.image_size, appearance))
        .astype(np.uint8) for s in range(0, n, 512)])

    items = pd.DataFrame({
        "item_id": [f"I{i:06d}" for i in range(n)],
        "category": [cats[k][0] for k in category],
        "brand": [brands[b] for b in brand],
        "price": np.round(np.exp(log_price), 2),
        "first_time": first_time,
        "text": texts,
    })
    cat_obj = Catalogue(category, brand, look, style, log_price, rel_price, popularity, first_time,
                        consumable, look_centres, cat_cum, order, pop_cum)
    return cat_obj, items, pictures


def config_record(cfg: Config) -> dict[str, Any]:
    """``cfg`` for ``meta.json``, without ``fit_period`` while it is false (so the default shop keeps the
    bytes it had before the setting existed)."""
    record = dataclasses.asdict(cfg)
    if not cfg.fit_period:
        record.pop("fit_period")
    return record


def n_events_per_user(cfg: Config) -> np.ndarray:
    """(n_users,) heavy-tailed interaction counts (at least 3, at most ``max_events``), drawn up front so
    the event files' lengths are known before any user is simulated."""
    rng = np.random.default_rng([cfg.seed, 3])
    sigma = 1.0
    mu = np.log(cfg.mean_events - 3.0) - 0.5 * sigma ** 2
    return np.minimum(cfg.max_events, 3 + np.floor(rng.lognormal(mu, sigma, size=cfg.n_users))).astype(np.int64)


def gumbel_argmax(rng: np.random.Generator, utility: np.ndarray) -> np.ndarray:
    return np.argmax(utility + rng.gumbel(size=utility.shape), axis=1)


def simulate_block(cfg: Config, cat: Catalogue, n_events: np.ndarray, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulate the users of one block.

    Parameters
    ----------
    n_events : np.ndarray
        (B,) interaction count of each user of the block.

    Returns
    -------
    user, item, time : np.ndarray
        Events of the block ordered by user then time; ``user`` is the position in the block.
    """
    b, d, c = n_events.shape[0], cfg.style_dim, cfg.n_categories
    fav_look = rng.integers(0, cfg.n_looks, size=b)
    base = 0.8 * cat.look_centres[fav_look] + 0.8 * rng.standard_normal((b, d))   # (B, d)
    affinity = 1.5 * rng.standard_normal((b, c))                                   # (B, C)
    price_att = 0.8 * rng.standard_normal(b)                                        # >0: prefers cheap
    fav_brands = rng.integers(0, cfg.n_brands, size=(b, 2))
    mean_gap = rng.lognormal(np.log(8.0), 0.8, size=b)
    t = rng.uniform(0.0, 0.7 * cfg.days, size=b)
    if cfg.fit_period:  # no extra draws: the default shop's random stream is untouched
        sessions = np.maximum(P_NEW_SESSION * (n_events - 1), 1.0)
        mean_gap = np.minimum(mean_gap, FIT_SHARE * (cfg.days - t) / sessions)
    short = np.zeros((b, d))
    intent = np.zeros(b, dtype=np.int64)
    memory = np.full((b, MEMORY), -1, dtype=np.int64)
    n_max = int(n_events.max()) if b else 0
    items = np.zeros((b, n_max), dtype=np.int64)
    times = np.zeros((b, n_max))
    for step in range(n_max):
        act = np.flatnonzero(n_events > step)
        a = act.size
        if step == 0:
            new = np.ones(a, dtype=bool)
            gap = np.full(a, np.inf)
        else:
            new = rng.random(a) < P_NEW_SESSION
            gap = np.where(new, rng.exponential(mean_gap[act]), rng.exponential(IN_SESSION_GAP, size=a))
            t[act] += gap
        w = np.exp(-gap / TAU_DAYS)                                                  # (A,)
        drift = DRIFT_PER_YEAR * np.sqrt(np.minimum(gap, cfg.days) / 365.0)
        base[act] += np.where(new, drift, 0.0)[:, None] * rng.standard_normal((a, d))
        short[act] *= w[:, None]
        # session intent: continue after a short gap, redraw after a long one, switch now and then
        fresh_cat = gumbel_argmax(rng, affinity[act])
        keep = np.where(new, rng.random(a) < 0.7 * w, rng.random(a) < 0.75) & (step > 0)
        intent[act] = np.where(keep, intent[act], fresh_cat)
        # consideration set: (A, M) item codes
        u_cat = intent[act][:, None] + rng.random((a, N_CAT_CANDIDATES))
        in_cat = cat.cat_order[np.minimum(np.searchsorted(cat.cat_cum, u_cat), cat.cat_order.size - 1)]
        in_pop = np.minimum(np.searchsorted(cat.pop_cum, rng.random((a, N_POP_CANDIDATES))), cat.pop_cum.size - 1)
        mem = memory[act]
        cand = np.sort(np.concatenate([in_cat, in_pop, mem], axis=1), axis=1)       # (A, M), -1 = empty slot
        unusable = cand < 0
        unusable[:, 1:] |= cand[:, 1:] == cand[:, :-1]                                # each item once
        cand = np.maximum(cand, 0)
        taste = base[act] + short[act]                                               # (A, d)
        util = W_STYLE * np.einsum("amd,ad->am", cat.style[cand], taste)
        ccat = cat.category[cand]
        util += W_CATEGORY * np.take_along_axis(affinity[act], ccat, axis=1)
        util += W_INTENT * (ccat == intent[act][:, None])
        util -= price_att[act][:, None] * cat.rel_price[cand]
        util += W_BRAND * (cat.brand[cand][:, :, None] == fav_brands[act][:, None, :]).any(axis=2)
        util += W_POPULARITY * cat.popularity[cand]
        age = t[act][:, None] - cat.first_time[cand]
        util += W_FRESH * np.exp(-np.maximum(age, 0.0) / 20.0)
        bought = (cand[:, :, None] == mem[:, None, :]).any(axis=2)                   # (A, M)
        util += np.where(bought, np.where(cat.consumable[cand] & new[:, None], W_REPEAT, W_REBUY), 0.0)
        util[unusable | (age < 0)] = -np.inf                                         # or not yet in the shop
        pick = gumbel_argmax(rng, util)
        chosen = cand[np.arange(a), pick]
        ok = np.isfinite(util[np.arange(a), pick])
        # nothing available in the set (rare, early users): fall back to the most popular day-0 item
        chosen = np.where(ok, chosen, int(np.argmax(np.where(cat.first_time == 0, cat.popularity, -np.inf))))
        items[act, step] = chosen
        times[act, step] = t[act]
        short[act] = 0.6 * short[act] + 0.4 * cat.style[chosen]
        memory[act] = np.concatenate([chosen[:, None], mem[:, :-1]], axis=1)
    mask = np.arange(n_max)[None, :] < n_events[:, None]
    user = np.broadcast_to(np.arange(b)[:, None], (b, n_max))[mask]
    return user, items[mask], times[mask]


def generate(cfg: Config, out_dir: Path, progress: bool = False) -> dict[str, Any]:
    """Simulate the shop into ``out_dir`` (the raw schema of :mod:`hmspar.rec.schema`).

    Returns
    -------
    dict
        The metadata written to ``meta.json``.
    """
    out_dir = Path(out_dir)
    cat, items, pictures = make_catalogue(cfg)
    write_items(out_dir, items, pictures)
    n_events = n_events_per_user(cfg)
    total = int(n_events.sum())
    writers = {k: NpyWriter(out_dir / EVENT_FILES[k], total, EVENT_DTYPES[k]) for k in EVENT_FILES}
    starts = range(0, cfg.n_users, BLOCK_SIZE)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="shop users")
    for block, start in enumerate(starts):
        stop = min(start + BLOCK_SIZE, cfg.n_users)
        rng = np.random.default_rng([cfg.seed, 1, block])
        user, item, time = simulate_block(cfg, cat, n_events[start:stop], rng)
        writers["user"].write(user + start)
        writers["item"].write(item)
        writers["time"].write(time)
    for w in writers.values():
        w.close()
    meta = {
        "kind": "shop", "n_users": cfg.n_users, "n_items": cfg.n_items, "n_events": total,
        "categories": [x[0] for x in CATEGORIES[:cfg.n_categories]],
        "consumable_categories": [x[0] for x in CATEGORIES[:cfg.n_categories] if x[3]],
        "has_pictures": True, "image_size": cfg.image_size, "time_unit": "days",
        "config": config_record(cfg),
    }
    write_meta(out_dir, meta)
    return meta
