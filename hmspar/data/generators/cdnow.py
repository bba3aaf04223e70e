"""Simulated CD-store customers (in the spirit of the CDNOW data): one acquisition cohort whose first
purchase falls in the first three months, followed over 18 months of monthly spend and purchase counts,
with churn and engagement labels.

Customers follow the latent process of :class:`~hmspar.data.generators._common.CustomerProcess` with a
very uneven dropout (many buy once and never return, a loyal core stays), a low, drifting repeat-purchase
rate with a December peak, and lognormal order values. Region shifts rate and order value, age group and
the sign-up discount the dropout probability (discount-acquired customers leave sooner). Labels look at a
future window of ``horizon`` months that is simulated but never stored:

* ``churn``: no purchase in the ``horizon`` months after the window (expected positive rate 0.35-0.60);
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
POSITIVE_RATE_RANGE = {"churn": (0.35, 0.60), "engagement": (0.15, 0.45)}

#: Suggested ``params.yaml`` section (the table sizes of the README).
DEFAULT_PARAMS = {"seed": 103, "n_entities": 23500, "length": 18, "image_size": 16}

START_MONTH = 0  # January
_MONTH_EFFECT = np.array([0.0, -0.1, 0.0, -0.05, -0.05, -0.1, -0.1, -0.05, 0.0, 0.05, 0.2, 0.4])


@dataclasses.dataclass(frozen=True)
class Config(CustomerConfig):
    """``datasets.cdnow`` settings: the common ones, the customer ones
    (``intent_rate``, ``note_rate``: :class:`~hmspar.data.generators._common.CustomerConfig`) plus

    horizon : int
        Months after the observed window that define the labels (never stored).
    missing_rate : float
        Fraction of customer-months left unobserved (NaN).
    engagement_threshold : float
        Spend over the horizon at or above which a customer counts as engaged.
    """

    horizon: int = 6
    missing_rate: float = 0.02
    engagement_threshold: float = 80.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fields(self)
        if self.engagement_threshold <= 0:
            raise ValueError(f"engagement_threshold must be positive, got {self.engagement_threshold!r}")


def _season(periods: int) -> np.ndarray:
    return _MONTH_EFFECT[(START_MONTH + np.arange(periods)) % 12]


def _discount(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    disc = np.where(rng.random(n) < 0.4, rng.choice([0.1, 0.2, 0.3], size=n), 0.0)
    return disc, -1.0 * disc, 1.0 + 2.5 * disc


SPEC = CustomerSpec(
    name="cdnow",
    id_prefix="C",
    frequency="month",
    amount="spend",
    count="purchases",
    process=CustomerProcess(
        log_rate_mean=-0.5, log_rate_sd=1.0, drift_mean=0.0, drift_sd=0.04, walk_sd=0.15,
        hazard_a=0.4, hazard_b=8.0, basket_log_mean=3.4, basket_log_sd=0.5, basket_noise_sd=0.5,
        cohort_periods=3, first_purchase=True,
    ),
    season=_season,
    regions=("Northeast", "Midwest", "South", "West", "Outside US"),
    region_probs=(0.22, 0.2, 0.3, 0.23, 0.05),
    region_rate=(0.1, 0.0, -0.1, 0.1, -0.3),
    region_basket=(0.05, 0.0, -0.05, 0.05, 0.3),
    age_groups=("18-24", "25-34", "35-44", "45-54", "55+"),
    age_probs=(0.22, 0.32, 0.24, 0.14, 0.08),
    age_hazard=(1.3, 1.1, 0.95, 0.85, 0.8),
    numeric_name="signup_discount",
    numeric=_discount,
    level_cuts=(20.0, 60.0),
    level_words=("low", "medium", "high"),
)

#: Task -> one-sentence label definition (a template formatted with the config's fields).
DEFINITIONS = {
    "churn": "The customer makes no purchase in the {horizon} month(s) after the observed window.",
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
    """Simulate the CDNOW-like customer cohort of ``cfg``.

    Parameters
    ----------
    cfg : Config
        Dataset settings.
    progress : bool
        Show a progress bar over entity blocks.

    Returns
    -------
    RawDataset
        Series (N, 2, length) with channels ``spend`` and ``purchases``; tasks ``churn`` and ``engagement``.
    """
    return customer_dataset(cfg, SPEC, _labels, DEFINITIONS, progress)
