"""Shared machinery of the dataset simulators: seeded entity blocks, ids, reporting gaps, a latent customer
process and bucketed text descriptions.

Every simulator works through entities in blocks of :data:`BLOCK_SIZE`; block ``b`` draws all its random
numbers from ``np.random.default_rng([seed, b])``, so a dataset depends on its config alone (not on the
machine, the number of blocks already drawn or any global random state) and memory per block is bounded.

Descriptions are built from small integer "descriptor codes" (buckets of the observed window and static
attributes). :func:`render_texts` formats each distinct combination of codes once, so the number of
distinct strings is bounded by the product of the bucket counts whatever the number of entities.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from hmspar.data.generators import DatasetConfig

# the window descriptors live in the raw schema module, shared with the importers (re-exported here)
from hmspar.data.schema import (  # noqa: F401
    activity_code,
    level_code,
    render_texts,
    trend_code,
    volatility_code,
)

#: Entities per block. A module constant (not a config value) so that results never depend on it.
BLOCK_SIZE = 4096



@dataclasses.dataclass(frozen=True)
class CustomerConfig(DatasetConfig):
    """Settings of the customer simulators (retail, cdnow, instacart, tafeng) beyond :class:`DatasetConfig`:

    intent_rate : float
        Share of customers whose intent at the window's end is not neutral (half leaving, half expanding;
        see :func:`draw_intent`). It acts on the labels' window only and shows in the description's service
        note and the ``service_contacts`` attribute, never in the series. 0 gives the datasets of before
        (no note, no ``service_contacts`` column; the same bytes).
    note_rate : float
        Probability that a non-neutral intent is named by the description's service note.
    """

    intent_rate: float = 0.3
    note_rate: float = 0.6


def check_fields(cfg: object, min_length: int = 2) -> None:
    """Validate settings every simulator shares beyond :class:`DatasetConfig` (``seed``, ``length``,
    ``horizon``, ``missing_rate``, ``intent_rate`` and ``note_rate`` where present).

    Raises
    ------
    ValueError
        Naming the offending field (turned into an ``HmsparError`` naming ``datasets.<name>`` by the config
        builder).
    """
    if cfg.seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {cfg.seed!r}")
    if cfg.length < min_length:
        raise ValueError(f"length must be at least {min_length}, got {cfg.length!r}")
    if hasattr(cfg, "horizon") and cfg.horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {cfg.horizon!r}")
    if hasattr(cfg, "missing_rate") and not 0.0 <= cfg.missing_rate < 0.5:
        raise ValueError(f"missing_rate must lie in [0, 0.5), got {cfg.missing_rate!r}")
    if hasattr(cfg, "intent_rate") and not 0.0 <= cfg.intent_rate < 1.0:
        raise ValueError(f"intent_rate must lie in [0, 1), got {cfg.intent_rate!r}")
    if hasattr(cfg, "note_rate") and not 0.0 <= cfg.note_rate <= 1.0:
        raise ValueError(f"note_rate must lie in [0, 1], got {cfg.note_rate!r}")


def side_rng(seed: int, block: int) -> np.random.Generator:
    """Block ``block``'s second generator, ``np.random.default_rng([seed, block, 1])``: what a simulator draws
    from it (a cause that text or static attributes show in part) leaves the block's main stream, and so the
    stored window, as it is without it."""
    return np.random.default_rng([seed, block, 1])


def iter_blocks(n: int, seed: int, progress: bool, desc: str) -> Iterator[tuple[int, int, np.random.Generator]]:
    """Yield ``(start, stop, rng)`` for consecutive blocks of :data:`BLOCK_SIZE` entities.

    Parameters
    ----------
    n : int
        Number of entities.
    seed : int
        The dataset seed; block ``b`` uses ``np.random.default_rng([seed, b])``.
    progress : bool
        Show a tqdm progress bar over blocks.
    desc : str
        Label of the progress bar.
    """
    n_blocks = math.ceil(n / BLOCK_SIZE)
    for b in tqdm(range(n_blocks), desc=desc, unit="block", disable=not progress):
        start = b * BLOCK_SIZE
        yield start, min(n, start + BLOCK_SIZE), np.random.default_rng([seed, b])


def make_ids(prefix: str, n: int) -> np.ndarray:
    """Entity ids ``<prefix>000001`` ... (at least six digits, more when ``n`` needs them)."""
    width = max(6, len(str(n)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)])


def gap_mask(rng: np.random.Generator, n: int, length: int, rate: float) -> np.ndarray:
    """Boolean (n, length) mask of unobserved periods, about ``rate`` of all cells.

    Half the rate comes from isolated missing periods, half from runs of two consecutive missing periods
    (a reporting outage), placed independently of everything else.
    """
    mask = rng.random((n, length)) < rate / 2
    if length >= 2 and rate > 0:
        has_run = rng.random(n) < min(1.0, rate * length / 4)
        start = rng.integers(0, length - 1, size=n)
        rows = np.flatnonzero(has_run)
        mask[rows, start[rows]] = True
        mask[rows, start[rows] + 1] = True
    return mask


def categorical(rng: np.random.Generator, n: int, probs: Sequence[float]) -> np.ndarray:
    """Draw ``n`` category indices with the given probabilities (int64)."""
    p = np.asarray(probs, dtype=float)
    return np.searchsorted(np.cumsum(p / p.sum()), rng.random(n), side="right").clip(0, len(p) - 1)


# --------------------------------------------------------------------------------------------------------
# Latent customer process
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CustomerProcess:
    """Parameters of the latent customer simulation shared by retail, cdnow, instacart and tafeng.

    A customer is acquired in period ``start`` (0, or later for a fraction ``acquired_fraction`` acquired
    inside the observed window; ``cohort_periods > 0`` instead draws every start from the first
    ``cohort_periods`` periods). From then on it stays *alive* for a geometric number of periods (per-period
    dropout probability ``hazard ~ Beta(hazard_a, hazard_b)`` times a static multiplier); with
    ``first_purchase`` the acquisition period of a customer acquired in the window (or of every customer of
    a cohort) has at least one purchase. While alive, its log purchase rate is ``log_rate + drift * t +
    random walk`` plus the calendar season, and the purchase count per period is Poisson of that rate.
    Spend per period is ``count * basket`` with a per-customer lognormal basket level and period-to-period
    lognormal noise (heavy-tailed amounts).
    """

    log_rate_mean: float
    log_rate_sd: float
    drift_mean: float
    drift_sd: float
    walk_sd: float
    hazard_a: float
    hazard_b: float
    basket_log_mean: float
    basket_log_sd: float
    basket_noise_sd: float
    acquired_fraction: float = 0.0
    cohort_periods: int = 0
    first_purchase: bool = False


@dataclasses.dataclass
class CustomerPaths:
    """Simulated paths over observed + future periods: ``counts`` int64, ``spend`` float64, ``alive`` bool,
    all (n, periods); ``start`` (n,) acquisition period."""

    counts: np.ndarray
    spend: np.ndarray
    alive: np.ndarray
    start: np.ndarray
    base_spend: np.ndarray  # spend before the intent's effect (``spend`` itself without an intent)


def simulate_customers(
    rng: np.random.Generator,
    n: int,
    periods: int,
    observed: int,
    proc: CustomerProcess,
    season: np.ndarray,
    rate_shift: np.ndarray,
    hazard_mult: np.ndarray,
    basket_shift: np.ndarray,
    intent: "Intent | None" = None,
) -> CustomerPaths:
    """Simulate ``n`` customers over ``periods`` periods (the first ``observed`` of which the model sees).

    Parameters
    ----------
    rng : np.random.Generator
        The block's generator.
    n, periods, observed : int
        Number of customers, simulated periods (observed + horizon) and observed periods.
    proc : CustomerProcess
        Process parameters.
    season : np.ndarray
        (periods,) additive calendar effect on the log purchase rate.
    rate_shift, hazard_mult, basket_shift : np.ndarray
        (n,) per-customer effects of static attributes on log rate, dropout probability and log basket.
    intent : Intent, optional
        The customers' intent at the window's end (see :func:`draw_intent`); it acts on the periods after
        ``observed`` only, through its own generator, so the observed window is the same with or without it.

    Returns
    -------
    CustomerPaths
    """
    t = np.arange(periods)[None, :]
    log_rate = proc.log_rate_mean + proc.log_rate_sd * rng.standard_normal(n) + rate_shift
    drift = proc.drift_mean + proc.drift_sd * rng.standard_normal(n)
    walk = np.cumsum(proc.walk_sd * rng.standard_normal((n, periods)), axis=1)
    log_lam = np.clip(log_rate[:, None] + drift[:, None] * t + walk + season[None, :], -7.0, 3.5)

    hazard = np.clip(rng.beta(proc.hazard_a, proc.hazard_b, size=n) * hazard_mult, 1e-4, 0.95)
    if proc.cohort_periods > 0:
        start = rng.integers(0, min(proc.cohort_periods, observed), size=n)
    else:
        late = rng.random(n) < proc.acquired_fraction
        start = np.where(late, rng.integers(1, max(2, observed), size=n), 0)
    lifetime = rng.geometric(hazard)  # >= 1 alive periods
    alive = (t >= start[:, None]) & (t < (start + lifetime)[:, None])

    counts = rng.poisson(np.exp(log_lam)) * alive
    if proc.first_purchase:  # acquisition is a purchase (customers present from period 0 excepted)
        rows = np.flatnonzero((start > 0) | (proc.cohort_periods > 0))
        counts[rows, start[rows]] = np.maximum(counts[rows, start[rows]], 1)
    base_counts = counts
    if intent is not None:
        after = t >= observed
        # expanding: the purchase rate after the window is multiplied (a Poisson sum: the extra purchases
        # come from the intent's own generator, so the block's stream is untouched)
        extra = np.exp(log_lam) * (intent.rate_mult[:, None] - 1.0) * (alive & after)
        counts = counts + intent.rng.poisson(extra)
        # leaving: the customer stops buying ``stay`` periods after the window's end
        alive = alive & ~(t >= observed + intent.stay[:, None])
        counts = counts * alive
    basket = proc.basket_log_mean + proc.basket_log_sd * rng.standard_normal(n) + basket_shift
    noise = proc.basket_noise_sd * rng.standard_normal((n, periods)) - proc.basket_noise_sd**2 / 2
    price = np.exp(basket[:, None] + noise)
    spend = counts * price
    return CustomerPaths(counts=counts, spend=spend, alive=alive, start=start,
                         base_spend=spend if intent is None else base_counts * price)


# --------------------------------------------------------------------------------------------------------
# The customer's intent at the window's end: a cause of the labels that the series cannot show
# --------------------------------------------------------------------------------------------------------

#: Intent codes.
NEUTRAL, LEAVING, EXPANDING = 0, 1, 2
#: An expanding customer's purchase rate after the window, as a multiple of its own.
EXPANDING_RATE_MULT = 3.0
#: A leaving customer stops after a geometric number of further periods (0, 1, ...) with this parameter.
LEAVING_STOP_P = 0.6
#: A customer with a neutral intent (or an unrevealed one) gets a neutral note with this probability, ...
NEUTRAL_NOTE_RATE = 0.25
#: ... and a misleading note (of a random non-neutral intent) with this one.
FALSE_NOTE_RATE = 0.04
#: Mean number of service contacts in the last 90 days, per intent (a Poisson count: a noisy static view).
CONTACTS_MEAN = (0.4, 1.2, 0.8)
#: Note phrases: neutral (codes 1-2), leaving (3-5), expanding (6-8); code 0 is "no note".
NOTE_PHRASES = (
    ("updated the contact details", "asked about opening hours"),
    ("mentioned moving out of the area", "asked how to close the account", "said a competitor offers better prices"),
    ("asked about larger family orders", "joined the loyalty programme this month", "asked for trade account terms"),
)
NOTE_RADIX = 1 + sum(len(p) for p in NOTE_PHRASES)
_NOTE_OFFSET = (1, 1 + len(NOTE_PHRASES[0]), 1 + len(NOTE_PHRASES[0]) + len(NOTE_PHRASES[1]))
_NOTE_HEADS = ("Service note: the customer {}.", "CRM note: {}.", "From the last support call: {}.")


@dataclasses.dataclass
class Intent:
    """Per-customer intent at the end of the observed window (see :func:`draw_intent`)."""

    code: np.ndarray  # (n,) NEUTRAL / LEAVING / EXPANDING
    rate_mult: np.ndarray  # (n,) purchase-rate multiple after the window
    stay: np.ndarray  # (n,) periods a customer keeps buying after the window (huge unless leaving)
    note: np.ndarray  # (n,) note code in [0, NOTE_RADIX)
    contacts: np.ndarray  # (n,) service contacts in the last 90 days
    rng: np.random.Generator  # draws the extra purchases after the window


def draw_intent(seed: int, block: int, n: int, rate: float, note_rate: float) -> Intent:
    """Draw the intent of a block's ``n`` customers from the block's second generator (:func:`side_rng`).

    A share ``rate`` of customers reach the window's end with a non-neutral intent, half *leaving* (moving
    away, closing the account, lured by a competitor: they stop buying within a few periods) and half
    *expanding* (a bigger household or a trade need: their purchase rate after the window triples). The
    intent is drawn independently of everything in the window, so the series cannot show it. Two inputs
    show it partly: the description carries a service note that names the intent with probability
    ``note_rate`` (in varied wording; otherwise, and for neutral customers, a neutral note with probability
    :data:`NEUTRAL_NOTE_RATE` or a misleading one with probability :data:`FALSE_NOTE_RATE`), and the static
    attribute ``service_contacts`` is a Poisson count whose mean depends on the intent (:data:`CONTACTS_MEAN`).
    """
    rng = side_rng(seed, block)
    u = rng.random(n)
    code = np.where(u < rate / 2, LEAVING, np.where(u < rate, EXPANDING, NEUTRAL))
    rate_mult = np.where(code == EXPANDING, EXPANDING_RATE_MULT, 1.0)
    stay = np.where(code == LEAVING, rng.geometric(LEAVING_STOP_P, size=n) - 1, np.iinfo(np.int32).max)
    revealed = (code != NEUTRAL) & (rng.random(n) < note_rate)
    v = rng.random(n)
    false_intent = np.where(rng.random(n) < 0.5, LEAVING, EXPANDING)
    shown = np.where(revealed, code, np.where(v < FALSE_NOTE_RATE, false_intent, NEUTRAL))
    has_note = revealed | (v < FALSE_NOTE_RATE + NEUTRAL_NOTE_RATE)
    phrase = (rng.random(n) * np.array([len(p) for p in NOTE_PHRASES])[shown]).astype(np.int64)
    note = np.where(has_note, np.asarray(_NOTE_OFFSET)[shown] + phrase, 0)
    contacts = rng.poisson(np.asarray(CONTACTS_MEAN)[code])
    return Intent(code=code, rate_mult=rate_mult, stay=stay, note=note, contacts=contacts, rng=rng)


def note_text(note: int, variant: int) -> str:
    """The service-note sentence of note code ``note`` (empty for 0), worded by ``variant``."""
    if note == 0:
        return ""
    group = max(i for i, off in enumerate(_NOTE_OFFSET) if note >= off)
    phrase = NOTE_PHRASES[group][note - _NOTE_OFFSET[group]]
    return " " + _NOTE_HEADS[variant % len(_NOTE_HEADS)].format(phrase)


# --------------------------------------------------------------------------------------------------------
# Customer datasets (retail, cdnow, instacart, tafeng): one assembly, parameterised by a spec
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CustomerSpec:
    """What distinguishes one customer dataset from another.

    ``amount``/``count`` are the channel names of the per-period amount (spend, items) and count (orders,
    transactions); ``count_first`` puts the count channel first. ``season(periods)`` gives the calendar
    effect on the log purchase rate. Static attributes: ``regions`` (with their effect on the log rate and the
    log basket), ``age_groups`` (with a multiplier on the dropout probability) and one numeric attribute drawn
    by ``numeric(rng, n) -> (values, rate_shift, hazard_mult)``. ``level_cuts`` bucket the typical amount
    per active period for the text into ``level_words``.
    """

    name: str
    id_prefix: str
    frequency: str
    amount: str
    count: str
    process: CustomerProcess
    season: Callable[[int], np.ndarray]
    regions: tuple[str, ...]
    region_probs: tuple[float, ...]
    region_rate: tuple[float, ...]
    region_basket: tuple[float, ...]
    age_groups: tuple[str, ...]
    age_probs: tuple[float, ...]
    age_hazard: tuple[float, ...]
    numeric_name: str
    numeric: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray, np.ndarray]]
    level_cuts: tuple[float, ...]
    level_words: tuple[str, ...]
    count_first: bool = False
    integer_amount: bool = False


#: Task labels of a block: ``labels(paths, amount, observed_amount, cfg) -> {task: bool (n,)}``, where
#: ``amount`` is the full simulated amount path (n, length + horizon) and ``observed_amount`` the stored
#: window (n, length) with its gaps.
LabelFn = Callable[[CustomerPaths, np.ndarray, np.ndarray, object], dict]

_ACTIVITY = (
    ("no activity in the window", "no recorded activity", "inactive throughout"),
    ("active in few {u}s", "rarely active", "seen in only a few {u}s"),
    ("active in some {u}s", "occasionally active", "active in under half the {u}s"),
    ("active in most {u}s", "regularly active", "active in most of the {u}s"),
    ("active nearly every {u}", "consistently active", "active in almost every {u}"),
)
_TREND = (("falling", "declining", "trending down"), ("stable", "steady", "flat"), ("rising", "growing", "trending up"))


def customer_dataset(cfg, spec: CustomerSpec, labels: LabelFn, definitions: dict[str, str], progress: bool):
    """Simulate a customer dataset (see :class:`CustomerProcess`) and assemble its :class:`RawDataset`.

    Parameters
    ----------
    cfg : DatasetConfig
        The module's config; uses ``seed``, ``n_entities``, ``length``, ``horizon`` and ``missing_rate``.
    spec : CustomerSpec
        Dataset-specific constants.
    labels : callable
        Computes the task labels of a block from the full simulated paths (observed + horizon).
    definitions : dict
        Task -> one-sentence label definition, a template formatted with the fields of ``cfg``.
    progress : bool
        Show a progress bar over blocks.

    Returns
    -------
    RawDataset
    """
    import pandas as pd

    from hmspar.data.schema import RawDataset

    n, length = cfg.n_entities, cfg.length
    periods = length + cfg.horizon
    season = spec.season(periods)
    series = np.empty((n, 2, length), dtype=np.float32)
    ia, ic = (1, 0) if spec.count_first else (0, 1)
    region = np.empty(n, dtype=np.int64)
    age = np.empty(n, dtype=np.int64)
    numeric = np.empty(n, dtype=np.float64)
    with_intent = cfg.intent_rate > 0
    codes = np.empty((n, 6 if with_intent else 5), dtype=np.int64)
    out_labels = {task: np.empty(n, dtype=np.int8) for task in definitions}
    contacts = np.zeros(n, dtype=np.int64)
    for b, (start, stop, rng) in enumerate(iter_blocks(n, cfg.seed, progress, f"generate {spec.name}")):
        m = stop - start
        reg = categorical(rng, m, spec.region_probs)
        ag = categorical(rng, m, spec.age_probs)
        num, num_rate, num_hazard = spec.numeric(rng, m)
        intent = draw_intent(cfg.seed, b, m, cfg.intent_rate, cfg.note_rate) if with_intent else None
        paths = simulate_customers(
            rng, m, periods, length, spec.process, season,
            rate_shift=np.asarray(spec.region_rate)[reg] + num_rate,
            hazard_mult=np.asarray(spec.age_hazard)[ag] * num_hazard,
            basket_shift=np.asarray(spec.region_basket)[reg],
            intent=intent,
        )
        amount = paths.spend
        if spec.integer_amount:
            # drawn from the spend before the intent, so the block's stream (and the window) stay the same
            amount = rng.poisson(paths.base_spend).astype(np.float64)
            if intent is not None:
                changed = paths.spend != paths.base_spend
                amount[changed] = intent.rng.poisson(paths.spend[changed])
            amount[(paths.counts > 0) & (amount == 0)] = 1.0
        gaps = gap_mask(rng, m, length, cfg.missing_rate)
        obs_amount = np.where(gaps, np.nan, amount[:, :length])
        obs_count = np.where(gaps, np.nan, paths.counts[:, :length].astype(np.float64))
        for task, y in labels(paths, amount, obs_amount, cfg).items():
            out_labels[task][start:stop] = y
        series[start:stop, ia] = obs_amount
        series[start:stop, ic] = obs_count
        region[start:stop], age[start:stop], numeric[start:stop] = reg, ag, num
        codes[start:stop, :5] = np.stack(
            [reg, ag, activity_code(obs_count), trend_code(obs_amount), level_code(obs_amount, spec.level_cuts)],
            axis=1,
        )
        if intent is not None:
            codes[start:stop, 5] = intent.note
            contacts[start:stop] = intent.contacts

    unit = spec.frequency

    def fmt(parts: tuple[int, ...], variant: int) -> str:
        return fmt_window(parts[:5], variant) + (note_text(parts[5], variant // 7) if len(parts) > 5 else "")

    def fmt_window(parts: tuple[int, ...], variant: int) -> str:
        reg, ag, act, trend, level = parts
        who = spec.regions[reg]
        aged = spec.age_groups[ag]
        head = (f"Customer from region {who}, aged {aged}", f"Customer (region {who}, age group {aged})",
                f"A customer in region {who}, age {aged}")[variant % 3]
        activity = _ACTIVITY[act][(variant // 3) % 3].format(u=unit)
        if act == 0:
            return f"{head}; {activity}."
        trend_word = _TREND[trend][(variant // 9) % 3]
        level_word = spec.level_words[level - 1]
        tail = (f"{spec.amount} {trend_word}, typical {unit}ly {spec.amount} {level_word}",
                f"{spec.amount} per active {unit} {level_word}, {trend_word} over the window")[(variant // 27) % 2]
        return f"{head}; {activity}, {tail}."

    radices = (len(spec.regions), len(spec.age_groups), len(_ACTIVITY), 3, len(spec.level_words) + 1)
    texts, n_distinct = render_texts(codes, radices + ((NOTE_RADIX,) if with_intent else ()), fmt)
    static = pd.DataFrame({
        "region": np.asarray(spec.regions, dtype=object)[region],
        "age_group": np.asarray(spec.age_groups, dtype=object)[age],
        spec.numeric_name: numeric.round(2),
    })
    if with_intent:
        static["service_contacts"] = contacts
    channels = [spec.count, spec.amount] if spec.count_first else [spec.amount, spec.count]
    return RawDataset(
        name=spec.name,
        series=series,
        channels=channels,
        ids=make_ids(spec.id_prefix, n),
        text=texts,
        static=static,
        labels=out_labels,
        label_definitions={t: d.format(**dataclasses.asdict(cfg)) for t, d in definitions.items()},
        frequency=spec.frequency,
        extra_meta={"distinct_texts": n_distinct, "horizon": cfg.horizon},
    )
