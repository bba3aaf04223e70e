"""Simulated card-acquiring merchants in four industries: monthly transaction amount over 35 months, with a
``risk`` label from a latent anomaly state that the series shows only noisily.

Every merchant has a lognormal monthly volume (set by industry, tier and a latent scale), a slow trend, an
AR(1) business cycle, an industry season, occasional benign promotion spikes, inactive months (a sporadic
minority is often inactive), late onboarding and closures. Independently of the series, the generator
draws a latent *anomaly* state, more likely for Tier-3, young merchants and some industries, with
probability ``anomaly_rate`` on average. An anomalous merchant changes behaviour from an onset month inside
the window, in one of three ways and with a random strength (weak ones are nearly invisible):

* *surge*: volume jumps for a few months (bust-out), after which half of them stop trading;
* *volatile*: month-to-month noise grows;
* *erratic*: months alternate between inactivity and bursts.

Task ``risk``: the latent anomaly state (expected positive rate 0.08-0.18 overall at ``anomaly_rate``
0.12; about 0.09 for Industry-0 up to 0.17 for Industry-3). Groups are the industries ``Industry-0`` ..
``Industry-3``. Descriptions use industry, tier, size band and bucketed activity, volume trend and
month-to-month volatility (at most 4 x 3 x 3 x 5 x 3 x 3 = 1,620 distinct strings).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from hmspar.data.generators import DatasetConfig
from hmspar.data.generators._common import (
    activity_code,
    categorical,
    check_fields,
    gap_mask,
    iter_blocks,
    make_ids,
    render_texts,
    trend_code,
    volatility_code,
)
from hmspar.data.schema import RawDataset

#: Expected positive rate per task at default settings (checked by the tests on a 2,000-merchant sample).
POSITIVE_RATE_RANGE = {"risk": (0.08, 0.18)}

#: Suggested ``params.yaml`` section (the table sizes of the README).
DEFAULT_PARAMS = {"seed": 101, "n_entities": 15000, "length": 35, "image_size": 16}

INDUSTRIES = ("Industry-0", "Industry-1", "Industry-2", "Industry-3")
_INDUSTRY_SHARE = (0.35, 0.30, 0.20, 0.15)
_INDUSTRY_RISK = (0.7, 1.0, 1.1, 1.4)
_INDUSTRY_LEVEL = (9.6, 10.2, 9.0, 10.6)  # log monthly amount
_INDUSTRY_SEASON = ((0.35, 11), (0.25, 6), (0.05, 0), (0.15, 3))  # (amplitude, peak month)
TIERS = ("Tier-1", "Tier-2", "Tier-3")
_TIER_SHARE = (0.2, 0.5, 0.3)
_TIER_RISK = (0.5, 1.0, 1.4)
_TIER_LEVEL = (0.8, 0.0, -0.5)
SIZE_BANDS = ("small", "medium", "large")
_SIZE_CUTS = (9.2, 10.6)
_YOUNG_YEARS, _YOUNG_RISK = 2.0, 1.6
_YEARS_MU, _YEARS_SIGMA = 1.5, 0.8


def _mean_risk_factor() -> float:
    """Expected value of the product of the independent risk multipliers (industry x tier x age)."""
    ind = sum(s * r for s, r in zip(_INDUSTRY_SHARE, _INDUSTRY_RISK))
    tier = sum(s * r for s, r in zip(_TIER_SHARE, _TIER_RISK))
    p_young = 0.5 * (1 + math.erf((math.log(_YOUNG_YEARS) - _YEARS_MU) / (_YEARS_SIGMA * math.sqrt(2))))
    return ind * tier * (1 + (_YOUNG_RISK - 1) * p_young)


_MEAN_RISK = _mean_risk_factor()


@dataclasses.dataclass(frozen=True)
class Config(DatasetConfig):
    """``datasets.merchant`` settings: the common ones plus

    anomaly_rate : float
        Average probability that a merchant is in the latent anomaly state.
    missing_rate : float
        Fraction of merchant-months left unobserved (NaN).
    """

    anomaly_rate: float = 0.12
    missing_rate: float = 0.015

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fields(self, min_length=6)
        if not 0.0 < self.anomaly_rate < 0.5:
            raise ValueError(f"anomaly_rate must lie in (0, 0.5), got {self.anomaly_rate!r}")


#: Task -> one-sentence label definition (a template formatted with the config's fields).
DEFINITIONS = {
    "risk": "The merchant is in the generator's latent anomaly state (a surge, volatile or erratic behaviour "
            "change of random strength starting inside the window), whatever the series shows.",
}


def _simulate_block(rng: np.random.Generator, m: int, cfg: Config) -> dict[str, np.ndarray]:
    """Simulate ``m`` merchants; returns the observed amounts (m, T) with gaps and per-merchant arrays."""
    length = cfg.length
    t = np.arange(length)[None, :]
    industry = categorical(rng, m, _INDUSTRY_SHARE)
    tier = categorical(rng, m, _TIER_SHARE)
    years = rng.lognormal(_YEARS_MU, _YEARS_SIGMA, size=m)

    # latent anomaly state, more likely for risky industries and tiers and young merchants
    factor = (np.asarray(_INDUSTRY_RISK)[industry] * np.asarray(_TIER_RISK)[tier]
              * np.where(years < _YOUNG_YEARS, _YOUNG_RISK, 1.0))
    anomalous = rng.random(m) < np.minimum(0.9, cfg.anomaly_rate * factor / _MEAN_RISK)

    # normal behaviour: level, trend, AR(1) cycle, industry season, noise (all on the log scale)
    level = np.asarray(_INDUSTRY_LEVEL)[industry] + np.asarray(_TIER_LEVEL)[tier] + rng.normal(0.0, 1.0, m)
    size = np.digitize(level + rng.normal(0.0, 0.4, m), _SIZE_CUTS)
    amp = np.asarray([a for a, _ in _INDUSTRY_SEASON])[industry] * rng.uniform(0.5, 1.5, m)
    peak = np.asarray([p for _, p in _INDUSTRY_SEASON])[industry]
    season = amp[:, None] * np.cos(2 * np.pi * (t % 12 - peak[:, None]) / 12)
    shocks = rng.normal(0.0, 0.2, (m, length))
    cycle = np.empty((m, length))
    cycle[:, 0] = shocks[:, 0]
    for k in range(1, length):
        cycle[:, k] = 0.6 * cycle[:, k - 1] + shocks[:, k]
    log_amt = (level[:, None] + rng.normal(0.004, 0.015, m)[:, None] * t + cycle + season
               + rng.normal(0.0, 0.25, (m, length)))
    promo = rng.random((m, length)) < 0.03
    log_amt += promo * rng.uniform(0.5, 1.2, (m, length))

    sporadic = rng.random(m) < 0.25
    p_active = np.where(sporadic, rng.uniform(0.3, 0.8, m), rng.uniform(0.93, 1.0, m))
    active = rng.random((m, length)) < p_active[:, None]
    onboard = np.where(rng.random(m) < 0.15, rng.integers(1, max(2, length - 6), m), 0)
    close = np.where(rng.random(m) < 0.04, rng.integers(length // 2, length, m), length)

    # anomalous behaviour from an onset month inside the window
    onset = rng.integers(length // 4, length - 1, m)
    kind = categorical(rng, m, (0.4, 0.3, 0.3))
    strength = rng.uniform(0.25, 1.0, m)
    after = t >= onset[:, None]
    duration = rng.integers(2, 7, m)
    surge = anomalous & (kind == 0)
    in_surge = surge[:, None] & after & (t < (onset + duration)[:, None])
    log_amt += in_surge * (strength * rng.uniform(0.8, 2.0, m))[:, None]
    bust = surge & (rng.random(m) < 0.5)
    close = np.where(bust, np.minimum(close, onset + duration), close)
    volatile = (anomalous & (kind == 1))[:, None] & after
    log_amt += volatile * strength[:, None] * rng.normal(0.0, 1.0, (m, length))
    erratic = (anomalous & (kind == 2))[:, None] & after
    active &= ~(erratic & (rng.random((m, length)) < 0.45 * strength[:, None]))
    log_amt += erratic * strength[:, None] * 1.2 * np.abs(rng.normal(0.0, 1.0, (m, length)))

    active &= (t >= onboard[:, None]) & (t < close[:, None])
    amount = np.where(active, np.exp(log_amt), 0.0)
    amount[gap_mask(rng, m, length, cfg.missing_rate)] = np.nan
    return {"amount": amount, "industry": industry, "tier": tier, "size": size, "years": years,
            "risk": anomalous}


def generate(cfg: Config, progress: bool = True) -> RawDataset:
    """Simulate the merchants of ``cfg``.

    Parameters
    ----------
    cfg : Config
        Dataset settings.
    progress : bool
        Show a progress bar over entity blocks.

    Returns
    -------
    RawDataset
        Series (N, 1, length) with channel ``amount``; task ``risk``; groups ``Industry-0`` ..
        ``Industry-3``.
    """
    n = cfg.n_entities
    series = np.empty((n, 1, cfg.length), dtype=np.float32)
    risk = np.empty(n, dtype=np.int8)
    industry = np.empty(n, dtype=np.int64)
    tier = np.empty(n, dtype=np.int64)
    size = np.empty(n, dtype=np.int64)
    years = np.empty(n, dtype=np.float64)
    codes = np.empty((n, 6), dtype=np.int64)
    for start, stop, rng in iter_blocks(n, cfg.seed, progress, "generate merchant"):
        b = _simulate_block(rng, stop - start, cfg)
        series[start:stop, 0] = b["amount"]
        risk[start:stop] = b["risk"]
        industry[start:stop], tier[start:stop], size[start:stop] = b["industry"], b["tier"], b["size"]
        years[start:stop] = b["years"]
        codes[start:stop] = np.stack([b["industry"], b["tier"], b["size"], activity_code(b["amount"]),
                                      trend_code(b["amount"]), volatility_code(b["amount"])], axis=1)

    activity = (("no trading in the window", "no recorded volume"),
                ("trading in few months", "rarely trading"),
                ("trading in some months", "trading intermittently"),
                ("trading in most months", "regularly trading"),
                ("trading nearly every month", "trading consistently"))
    trends = (("falling", "declining"), ("stable", "flat"), ("rising", "growing"))
    volatility = (("steady", "smooth"), ("uneven", "somewhat irregular"), ("erratic", "highly irregular"))

    def fmt(parts: tuple[int, ...], variant: int) -> str:
        ind, tr, sz, act, trend, vol = parts
        head = (f"{TIERS[tr]} merchant in {INDUSTRIES[ind]}, {SIZE_BANDS[sz]} size band",
                f"A {SIZE_BANDS[sz]} {TIERS[tr]} merchant ({INDUSTRIES[ind]})",
                f"Merchant in {INDUSTRIES[ind]}, {TIERS[tr]}, size band {SIZE_BANDS[sz]}")[variant % 3]
        w = (variant // 3) % 2
        if act == 0:
            return f"{head}; {activity[0][w]}."
        return (f"{head}; {activity[act][w]}, volume {trends[trend][w]}, "
                f"{volatility[vol][w]} month to month.")

    texts, n_distinct = render_texts(codes, (4, 3, 3, 5, 3, 3), fmt)
    static = pd.DataFrame({
        "tier": np.asarray(TIERS, dtype=object)[tier],
        "size_band": np.asarray(SIZE_BANDS, dtype=object)[size],
        "years_in_business": years.round(2),
    })
    return RawDataset(
        name="merchant",
        series=series,
        channels=["amount"],
        ids=make_ids("M", n),
        text=texts,
        static=static,
        labels={"risk": risk},
        label_definitions=dict(DEFINITIONS),
        frequency="month",
        groups=np.asarray(INDUSTRIES)[industry],
        extra_meta={"distinct_texts": n_distinct},
    )
