"""Simulated online-retail customers (in the spirit of the UCI Online Retail data): monthly spend and
transaction counts over a 13-month window starting in December, with churn and engagement labels.

Each customer follows the latent process of :class:`~hmspar.data.generators._common.CustomerProcess`: a
purchase rate that drifts (per-customer trend plus a random walk) with a November peak, a silent dropout
time, lognormal basket values; a third are acquired during the window. Region shifts the rate and the
basket size, age group and tenure the dropout probability. Labels look at a future window of ``horizon``
months that is simulated but never stored:

* ``churn``: no transaction in the ``horizon`` months after the window (expected positive rate 0.25-0.50);
* ``engagement``: spend over those months reaches ``engagement_threshold`` (a fixed constant, not fitted
  on data; expected positive rate 0.15-0.45).

Descriptions use region, age group and bucketed activity, spend trend and typical monthly spend (at most
5 x 5 x 5 x 3 x 4 window codes) and a service note (x 9 codes: 13,500 distinct strings at most); see
:class:`~hmspar.data.generators._common.CustomerConfig` for the intent it shows in part.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hmspar.data.generators._common import CustomerConfig, CustomerProcess, CustomerSpec, check_fields, customer_dataset
from hmspar.data.schema import RawDataset

#: Expected positive rate per task at default settings (checked by the tests on a 2,000-customer sample).
POSITIVE_RATE_RANGE = {"churn": (0.25, 0.50), "engagement": (0.15, 0.45)}

#: Suggested ``params.yaml`` section (the table sizes of the README).
DEFAULT_PARAMS = {"seed": 102, "n_entities": 4400, "length": 13, "image_size": 13}

START_MONTH = 11  # December (0 = January)
_MONTH_EFFECT = np.array([-0.2, -0.25, -0.05, -0.1, -0.05, -0.05, -0.05, -0.05, 0.15, 0.25, 0.45, 0.1])


@dataclasses.dataclass(frozen=True)
class Config(CustomerConfig):
    """``datasets.retail`` settings: the common ones, the customer ones
    (``intent_rate``, ``note_rate``: :class:`~hmspar.data.generators._common.CustomerConfig`) plus

    horizon : int
        Months after the observed window that define the labels (never stored).
    missing_rate : float
        Fraction of customer-months left unobserved (NaN).
    engagement_threshold : float
        Spend over the horizon at or above which a customer counts as engaged.
    """

    horizon: int = 3
    missing_rate: float = 0.02
    engagement_threshold: float = 600.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fields(self)
        if self.engagement_threshold <= 0:
            raise ValueError(f"engagement_threshold must be positive, got {self.engagement_threshold!r}")


def _season(periods: int) -> np.ndarray:
    return _MONTH_EFFECT[(START_MONTH + np.arange(periods)) % 12]


def _tenure(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    years = rng.gamma(2.0, 1.2, size=n)
    return years, 0.08 * np.log1p(years), np.exp(-0.25 * (np.minimum(years, 8.0) - 2.4))


SPEC = CustomerSpec(
    name="retail",
    id_prefix="R",
    frequency="month",
    amount="spend",
    count="transactions",
    process=CustomerProcess(
        log_rate_mean=0.1, log_rate_sd=0.9, drift_mean=0.0, drift_sd=0.05, walk_sd=0.15,
        hazard_a=1.2, hazard_b=30.0, basket_log_mean=5.0, basket_log_sd=0.7, basket_noise_sd=0.6,
        acquired_fraction=0.35, first_purchase=True,
    ),
    season=_season,
    regions=("United Kingdom", "Germany", "France", "EIRE", "Other"),
    region_probs=(0.80, 0.05, 0.05, 0.03, 0.07),
    region_rate=(0.0, -0.1, -0.1, 0.2, -0.25),
    region_basket=(0.0, 0.3, 0.3, 0.5, 0.2),
    age_groups=("18-24", "25-34", "35-44", "45-54", "55+"),
    age_probs=(0.12, 0.26, 0.25, 0.20, 0.17),
    age_hazard=(1.4, 1.15, 1.0, 0.85, 0.8),
    numeric_name="tenure_years",
    numeric=_tenure,
    level_cuts=(100.0, 400.0),
    level_words=("low", "medium", "high"),
)

#: Task -> one-sentence label definition (a template formatted with the config's fields).
DEFINITIONS = {
    "churn": "The customer makes no transaction in the {horizon} month(s) after the observed window.",
    "engagement": "The customer's total spend in the {horizon} month(s) after the observed window reaches "
                  "{engagement_threshold:g}.",
}


def _labels(paths, amount, observed_amount, cfg: Config) -> dict[str, np.ndarray]:
    future = slice(cfg.length, cfg.length + cfg.horizon)
    return {
        "churn": paths.counts[:, future].sum(axis=1) == 0,
        "engagement": amount[:, future].sum(axis=1) >= cfg.engagement_threshold,
    }


def generate(cfg: Config, progress: bool = True) -> RawDataset:
    """Simulate the retail customers of ``cfg``.

    Parameters
    ----------
    cfg : Config
        Dataset settings.
    progress : bool
        Show a progress bar over entity blocks.

    Returns
    -------
    RawDataset
        Series (N, 2, length) with channels ``spend`` and ``transactions``; tasks ``churn`` and
        ``engagement``.
    """
    return customer_dataset(cfg, SPEC, _labels, DEFINITIONS, progress)
