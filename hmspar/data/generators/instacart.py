"""Simulated grocery-delivery customers (in the spirit of the Instacart data): weekly orders and items
over 20 weeks, with churn and engagement labels.

Customers follow the latent process of :class:`~hmspar.data.generators._common.CustomerProcess`: a weekly
order rate that drifts (per-customer trend plus a random walk) with a mild yearly cycle, a silent dropout
time, and a per-customer basket size (items per order, lognormal, Poisson-drawn per week); a fifth are
acquired during the window. Region shifts the order rate and basket size, age group and household size the
rate and the dropout probability. Labels look at a future window of ``horizon`` weeks that is simulated but
never stored:

* ``churn``: no order in the ``horizon`` weeks after the window (expected positive rate 0.15-0.45);
* ``engagement``: items ordered over those weeks reach ``engagement_threshold`` (a fixed constant, not
  fitted on data; expected positive rate 0.15-0.45).

Descriptions use region, age group and bucketed activity, item trend and typical weekly items (at most
5 x 5 x 5 x 3 x 4 window codes) and a service note (x 9 codes: 13,500 distinct strings at most); see
:class:`~hmspar.data.generators._common.CustomerConfig` for the intent it shows in part.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hmspar.data.generators._common import CustomerConfig, CustomerProcess, CustomerSpec, check_fields, customer_dataset
from hmspar.data.schema import RawDataset

#: Expected positive rate per task at default settings (checked by the tests on a 2,000-customer sample).
POSITIVE_RATE_RANGE = {"churn": (0.15, 0.45), "engagement": (0.15, 0.45)}

#: Suggested ``params.yaml`` section (the table sizes of the README).
DEFAULT_PARAMS = {"seed": 104, "n_entities": 20000, "length": 20, "image_size": 16}

START_WEEK = 36  # early September


@dataclasses.dataclass(frozen=True)
class Config(CustomerConfig):
    """``datasets.instacart`` settings: the common ones, the customer ones
    (``intent_rate``, ``note_rate``: :class:`~hmspar.data.generators._common.CustomerConfig`) plus

    horizon : int
        Weeks after the observed window that define the labels (never stored).
    missing_rate : float
        Fraction of customer-weeks left unobserved (NaN).
    engagement_threshold : float
        Items over the horizon at or above which a customer counts as engaged.
    """

    horizon: int = 4
    missing_rate: float = 0.02
    engagement_threshold: float = 30.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fields(self)
        if self.engagement_threshold <= 0:
            raise ValueError(f"engagement_threshold must be positive, got {self.engagement_threshold!r}")


def _season(periods: int) -> np.ndarray:
    week = (START_WEEK + np.arange(periods)) % 52
    return 0.12 * np.cos(2 * np.pi * (week - 50) / 52)


def _household(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    size = 1.0 + rng.binomial(5, 0.3, size=n)
    return size, 0.12 * (size - 2.5), np.exp(-0.1 * (size - 2.5))


SPEC = CustomerSpec(
    name="instacart",
    id_prefix="I",
    frequency="week",
    amount="items",
    count="orders",
    process=CustomerProcess(
        log_rate_mean=-0.5, log_rate_sd=0.8, drift_mean=0.0, drift_sd=0.02, walk_sd=0.1,
        hazard_a=1.0, hazard_b=80.0, basket_log_mean=2.2, basket_log_sd=0.5, basket_noise_sd=0.3,
        acquired_fraction=0.2, first_purchase=True,
    ),
    season=_season,
    regions=("North", "South", "East", "West", "Central"),
    region_probs=(0.2, 0.25, 0.2, 0.2, 0.15),
    region_rate=(0.0, -0.1, 0.1, 0.05, 0.15),
    region_basket=(0.0, 0.1, -0.05, 0.0, -0.1),
    age_groups=("18-24", "25-34", "35-44", "45-54", "55+"),
    age_probs=(0.12, 0.3, 0.26, 0.18, 0.14),
    age_hazard=(1.4, 1.1, 0.95, 0.85, 0.85),
    numeric_name="household_size",
    numeric=_household,
    level_cuts=(8.0, 20.0),
    level_words=("low", "medium", "high"),
    count_first=True,
    integer_amount=True,
)

#: Task -> one-sentence label definition (a template formatted with the config's fields).
DEFINITIONS = {
    "churn": "The customer places no order in the {horizon} week(s) after the observed window.",
    "engagement": "The customer orders at least {engagement_threshold:g} items in total in the {horizon} week(s) "
                  "after the observed window.",
}


def _labels(paths, amount, observed_amount, cfg: Config) -> dict[str, np.ndarray]:
    future = slice(cfg.length, cfg.length + cfg.horizon)
    return {
        "churn": paths.counts[:, future].sum(axis=1) == 0,
        "engagement": amount[:, future].sum(axis=1) >= cfg.engagement_threshold,
    }


def generate(cfg: Config, progress: bool = True) -> RawDataset:
    """Simulate the Instacart-like customers of ``cfg``.

    Parameters
    ----------
    cfg : Config
        Dataset settings.
    progress : bool
        Show a progress bar over entity blocks.

    Returns
    -------
    RawDataset
        Series (N, 2, length) with channels ``orders`` and ``items``; tasks ``churn`` and ``engagement``.
    """
    return customer_dataset(cfg, SPEC, _labels, DEFINITIONS, progress)
