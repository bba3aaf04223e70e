"""Simulated weekly product sales (units) over one calendar year, with a ``seasonality`` label from a latent
seasonal regime and a ``sales_risk`` label from a future window.

Each product has a category, a price band and unit price, and a latent weekly demand: a lognormal level
(lower for expensive products), a slow trend plus random walk, promotion weeks, stock-out weeks, and for
some products a launch inside the year or an end-of-life decline. Independently, the generator draws a
latent *seasonal regime* (more likely for garden, toys and apparel): a seasonal product's demand follows a
yearly cycle of random amplitude (weak ones are hard to tell from the random walk) peaking near its
category's season. Units sold are Poisson-gamma draws of the demand (intermittent for slow sellers).
Tasks:

* ``seasonality``: the product is in the latent seasonal regime (expected positive rate 0.25-0.50);
* ``sales_risk``: mean weekly units over the ``horizon`` weeks after the observed year (simulated, never
  stored) fall below ``risk_drop`` times the product's mean over its observed weeks (a relative definition,
  nothing fitted on data; expected positive rate 0.10-0.35).

Descriptions use category, price band and bucketed activity, sales trend, week-to-week volatility and
typical weekly volume (at most 6 x 3 x 5 x 3 x 3 x 4 = 3,240 window codes), and listing copy that names a
seasonal product's range and a coming phase-out, each half the time (``copy_rate``; a wrong one with
probability ``copy_noise``), drawn from its own generator so that series and labels do not depend on it (x 12
codes; a few hundred distinct strings at 800 products).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from hmspar.data.generators import DatasetConfig
from hmspar.data.generators._common import (
    activity_code,
    categorical,
    check_fields,
    gap_mask,
    iter_blocks,
    level_code,
    make_ids,
    render_texts,
    side_rng,
    trend_code,
    volatility_code,
)
from hmspar.data.schema import RawDataset

#: Expected positive rate per task at default settings (checked by the tests on a 2,000-product sample).
POSITIVE_RATE_RANGE = {"seasonality": (0.25, 0.50), "sales_risk": (0.10, 0.35)}

#: Suggested ``params.yaml`` section (the table sizes of the README).
DEFAULT_PARAMS = {"seed": 106, "n_entities": 800, "length": 52, "image_size": 26}

CATEGORIES = ("Grocery", "Apparel", "Toys", "Garden", "Electronics", "Home")
_CATEGORY_SHARE = (0.25, 0.18, 0.14, 0.13, 0.15, 0.15)
_SEASONAL_PROB = (0.12, 0.55, 0.6, 0.7, 0.3, 0.25)
_PEAK_WEEK = (50, 14, 49, 20, 47, 45)  # Apparel: half peak in spring (14), half in autumn (40)
PRICE_BANDS = ("low", "mid", "high")
_PRICE_SHARE = (0.4, 0.4, 0.2)
_PRICE_LOG = (1.5, 3.0, 4.5)
_PRICE_VOLUME = (0.5, 0.0, -0.8)
_LEVEL_CUTS = (3.0, 15.0)


@dataclasses.dataclass(frozen=True)
class Config(DatasetConfig):
    """``datasets.sales_weekly`` settings: the common ones plus

    horizon : int
        Weeks after the observed window that define ``sales_risk`` (never stored).
    missing_rate : float
        Fraction of product-weeks left unobserved (NaN).
    risk_drop : float
        A product is at risk when its mean weekly units over the horizon fall below this fraction of its
        observed mean.
    copy_rate : float
        Probability that the product's marketing copy (appended to its description) names its seasonal range,
        for a seasonal product, and, separately, its phase-out, for a product whose end-of-life decline starts
        before the horizon ends. 0 gives the descriptions of before (the same bytes).
    copy_noise : float
        Probability that the copy names a season or a phase-out that is not the product's (misleading copy).
    """

    horizon: int = 8
    missing_rate: float = 0.02
    risk_drop: float = 0.5
    copy_rate: float = 0.5
    copy_noise: float = 0.04

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fields(self, min_length=8)
        if not 0.0 < self.risk_drop < 1.0:
            raise ValueError(f"risk_drop must lie in (0, 1), got {self.risk_drop!r}")
        for name in ("copy_rate", "copy_noise"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}")


#: Task -> one-sentence label definition (a template formatted with the config's fields).
DEFINITIONS = {
    "seasonality": "The product is in the generator's latent seasonal regime (a yearly demand cycle of random "
                   "amplitude), whatever the series shows.",
    "sales_risk": "Mean weekly units in the {horizon} week(s) after the observed window fall below {risk_drop:g} "
                  "times the product's mean weekly units over its observed weeks.",
}


def _simulate_block(rng: np.random.Generator, m: int, cfg: Config) -> dict[str, np.ndarray]:
    """Simulate ``m`` products over the observed year and the horizon; returns observed units with gaps,
    labels and static attributes."""
    length, periods = cfg.length, cfg.length + cfg.horizon
    t = np.arange(periods)[None, :]
    category = categorical(rng, m, _CATEGORY_SHARE)
    band = categorical(rng, m, _PRICE_SHARE)
    price = np.exp(np.asarray(_PRICE_LOG)[band] + rng.normal(0.0, 0.3, m))

    seasonal = rng.random(m) < np.asarray(_SEASONAL_PROB)[category]
    peak = np.asarray(_PEAK_WEEK, dtype=float)[category]
    peak = np.where((category == 1) & (rng.random(m) < 0.5), 40.0, peak) + rng.normal(0.0, 3.0, m)
    amplitude = np.where(seasonal, rng.uniform(0.3, 1.3, m), 0.0)
    cycle = amplitude[:, None] * np.cos(2 * np.pi * (t % 52 - peak[:, None]) / 52)

    level = 1.8 + np.asarray(_PRICE_VOLUME)[band] + rng.normal(0.0, 1.0, m)
    walk = np.cumsum(rng.normal(0.0, 0.06, (m, periods)), axis=1)
    log_demand = level[:, None] + rng.normal(0.0, 0.004, m)[:, None] * t + walk + cycle
    log_demand += (rng.random((m, periods)) < 0.04) * rng.uniform(0.4, 1.0, (m, periods))
    launch = np.where(rng.random(m) < 0.10, rng.integers(1, max(2, length - 12), m), 0)
    eol = np.where(rng.random(m) < 0.15, rng.integers(length // 2, periods + 8, m), periods + 8)
    log_demand -= 0.15 * np.maximum(t - eol[:, None], 0)

    demand = np.exp(log_demand) * rng.gamma(5.0, 0.2, (m, periods))
    units = rng.poisson(demand).astype(np.float64)
    units[(t < launch[:, None]) | (rng.random((m, periods)) < 0.02)] = 0.0

    observed = units[:, :length].copy()
    observed[gap_mask(rng, m, length, cfg.missing_rate)] = np.nan
    obs_weeks = np.maximum((~np.isnan(observed)).sum(axis=1), 1)
    obs_mean = np.nansum(observed, axis=1) / obs_weeks
    future_mean = units[:, length:].mean(axis=1)
    return {
        "units": observed, "category": category, "band": band, "price": price,
        "seasonality": seasonal, "sales_risk": future_mean < cfg.risk_drop * obs_mean,
        "peak": peak, "phasing_out": eol < periods,
    }


#: Seasonal ranges the copy can name, by the week of the product's peak (start weeks of each range).
SEASON_STARTS = (0, 9, 22, 35, 44)  # winter (also weeks 44-51), spring, summer, autumn, holidays
SEASON_WORDS = (
    ("part of the winter range", "a cold-weather line"),
    ("part of the spring collection", "new for spring"),
    ("a summer bestseller line", "part of the summer range"),
    ("part of the autumn range", "back-to-school line"),
    ("a holiday gift idea", "part of the festive range"),
)
PHASE_OUT_WORDS = ("being phased out", "successor model announced")


def _copy_codes(seed: int, block: int, b: dict[str, np.ndarray], cfg: Config) -> np.ndarray:
    """Marketing-copy codes of a block (from its second generator, :func:`side_rng`, so the series and labels
    are the same with or without copy): column 0 names a seasonal range (0 none, 1-5 a season),
    column 1 a phase-out (0/1). A seasonal product's copy names its own range with probability ``copy_rate``;
    any product's copy names a random range with probability ``copy_noise``. Likewise for the phase-out, which
    is true when the product's end-of-life decline starts before the horizon ends."""
    rng = side_rng(seed, block)
    m = len(b["peak"])
    season = np.searchsorted(SEASON_STARTS, np.asarray(b["peak"]) % 52, side="right") - 1
    named = b["seasonality"] & (rng.random(m) < cfg.copy_rate)
    noise = rng.random(m) < cfg.copy_noise
    random_season = rng.integers(0, len(SEASON_WORDS), m)
    season_code = np.where(named, season + 1, np.where(noise, random_season + 1, 0))
    phased = (b["phasing_out"] & (rng.random(m) < cfg.copy_rate)) | (rng.random(m) < cfg.copy_noise)
    return np.stack([season_code, phased.astype(np.int64)], axis=1)


def generate(cfg: Config, progress: bool = True) -> RawDataset:
    """Simulate the products of ``cfg``.

    Parameters
    ----------
    cfg : Config
        Dataset settings.
    progress : bool
        Show a progress bar over entity blocks.

    Returns
    -------
    RawDataset
        Series (N, 1, length) with channel ``units``; tasks ``seasonality`` and ``sales_risk``.
    """
    n = cfg.n_entities
    series = np.empty((n, 1, cfg.length), dtype=np.float32)
    labels = {task: np.empty(n, dtype=np.int8) for task in DEFINITIONS}
    category = np.empty(n, dtype=np.int64)
    band = np.empty(n, dtype=np.int64)
    price = np.empty(n, dtype=np.float64)
    with_copy = cfg.copy_rate > 0 or cfg.copy_noise > 0
    codes = np.empty((n, 8 if with_copy else 6), dtype=np.int64)
    for block, (start, stop, rng) in enumerate(iter_blocks(n, cfg.seed, progress, "generate sales_weekly")):
        b = _simulate_block(rng, stop - start, cfg)
        series[start:stop, 0] = b["units"]
        for task in labels:
            labels[task][start:stop] = b[task]
        category[start:stop], band[start:stop], price[start:stop] = b["category"], b["band"], b["price"]
        x = b["units"]
        codes[start:stop, :6] = np.stack([b["category"], b["band"], activity_code(x), trend_code(x),
                                          volatility_code(x), level_code(x, _LEVEL_CUTS)], axis=1)
        if with_copy:
            codes[start:stop, 6:] = _copy_codes(cfg.seed, block, b, cfg)

    activity = (("no sales in the year", "no recorded sales"),
                ("sold in few weeks", "rarely sold"),
                ("sold in some weeks", "sold intermittently"),
                ("sold in most weeks", "selling regularly"),
                ("sold nearly every week", "selling consistently"))
    trends = (("falling", "declining"), ("stable", "flat"), ("rising", "growing"))
    volatility = (("steady", "smooth"), ("uneven", "somewhat irregular"), ("erratic", "highly irregular"))
    volume = ("low", "medium", "high")

    def fmt(parts: tuple[int, ...], variant: int) -> str:
        text = fmt_window(parts[:6], variant)
        if len(parts) > 6:
            season, phased = parts[6:]
            copy = ([SEASON_WORDS[season - 1][variant % 2]] if season else []) + (
                [PHASE_OUT_WORDS[(variant // 2) % 2]] if phased else [])
            if copy:
                text += " Listing copy: " + "; ".join(copy) + "."
        return text

    def fmt_window(parts: tuple[int, ...], variant: int) -> str:
        cat, bd, act, trend, vol, lev = parts
        head = (f"{CATEGORIES[cat]} product, {PRICE_BANDS[bd]} price band",
                f"A {PRICE_BANDS[bd]}-priced {CATEGORIES[cat]} item",
                f"Product in {CATEGORIES[cat]} ({PRICE_BANDS[bd]} price)")[variant % 3]
        w = (variant // 3) % 2
        if act == 0:
            return f"{head}; {activity[0][w]}."
        return (f"{head}; {activity[act][w]}, sales {trends[trend][w]}, {volatility[vol][w]} week to week, "
                f"{volume[lev - 1]} weekly volume when selling.")

    radices = (6, 3, 5, 3, 3, 4) + ((len(SEASON_WORDS) + 1, 2) if with_copy else ())
    texts, n_distinct = render_texts(codes, radices, fmt)
    static = pd.DataFrame({
        "category": np.asarray(CATEGORIES, dtype=object)[category],
        "price_band": np.asarray(PRICE_BANDS, dtype=object)[band],
        "unit_price": price.round(2),
    })
    return RawDataset(
        name="sales_weekly",
        series=series,
        channels=["units"],
        ids=make_ids("P", n),
        text=texts,
        static=static,
        labels=labels,
        label_definitions={t: d.format(**dataclasses.asdict(cfg)) for t, d in DEFINITIONS.items()},
        frequency="week",
        extra_meta={"distinct_texts": n_distinct, "horizon": cfg.horizon},
    )
