"""Simulated grocery-warehouse customers (in the spirit of the Ta-Feng data): monthly spend and basket
counts over a short 4-month window from November, with repurchase and risk labels.

Customers follow the latent process of :class:`~hmspar.data.generators._common.CustomerProcess`: a monthly
visit rate that drifts with a Lunar-New-Year peak in January, a silent dropout time (a latent "defected"
state) and lognormal basket values; a quarter are acquired during the window (their first month has a
visit). Zone shifts the visit rate and basket value, age group the dropout probability, and distance to the
store lowers the visit rate and raises the dropout probability. Labels:

* ``repurchase``: at least one basket in the ``horizon`` months after the window, which is simulated but
  never stored (expected positive rate 0.35-0.60);
* ``risk``: the customer's latent state at the end of the observed window is "defected" (the simulated
  dropout has happened); a defected customer simply stops visiting, which the series shows only noisily
  since active customers also skip months (expected positive rate 0.15-0.40).

Descriptions use zone, age group and bucketed activity, spend trend and typical monthly spend (at most
6 x 6 x 5 x 3 x 4 window codes) and a service note (x 9 codes: 19,440 distinct strings at most); see
:class:`~hmspar.data.generators._common.CustomerConfig` for the intent it shows in part.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hmspar.data.generators._common import CustomerConfig, CustomerProcess, CustomerSpec, check_fields, customer_dataset
from hmspar.data.schema import RawDataset

#: Expected positive rate per task at default settings (checked by the tests on a 2,000-customer sample).
POSITIVE_RATE_RANGE = {"repurchase": (0.35, 0.60), "risk": (0.15, 0.40)}

#: Suggested ``params.yaml`` section (the table sizes of the README).
DEFAULT_PARAMS = {"seed": 105, "n_entities": 32000, "length": 4, "image_size": 4}

START_MONTH = 10  # November
_MONTH_EFFECT = np.array([0.35, 0.05, 0.0, -0.05, -0.05, -0.1, -0.1, -0.05, 0.0, 0.0, 0.0, 0.1])


@dataclasses.dataclass(frozen=True)
class Config(CustomerConfig):
    """``datasets.tafeng`` settings: the common ones, the customer ones
    (``intent_rate``, ``note_rate``: :class:`~hmspar.data.generators._common.CustomerConfig`) plus

    horizon : int
        Months after the observed window that define the ``repurchase`` label (never stored).
    missing_rate : float
        Fraction of customer-months left unobserved (NaN).
    """

    horizon: int = 1
    missing_rate: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fields(self)


def _season(periods: int) -> np.ndarray:
    return _MONTH_EFFECT[(START_MONTH + np.arange(periods)) % 12]


def _distance(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    km = rng.lognormal(1.0, 0.6, size=n)
    return km, -0.08 * np.minimum(km, 15.0), 1.0 + 0.06 * np.minimum(km, 15.0)


SPEC = CustomerSpec(
    name="tafeng",
    id_prefix="T",
    frequency="month",
    amount="spend",
    count="baskets",
    process=CustomerProcess(
        log_rate_mean=0.3, log_rate_sd=0.9, drift_mean=0.0, drift_sd=0.05, walk_sd=0.15,
        hazard_a=1.5, hazard_b=12.0, basket_log_mean=6.6, basket_log_sd=0.8, basket_noise_sd=0.7,
        acquired_fraction=0.25, first_purchase=True,
    ),
    season=_season,
    regions=("Zone A", "Zone B", "Zone C", "Zone D", "Zone E", "Zone F"),
    region_probs=(0.1, 0.12, 0.14, 0.18, 0.26, 0.2),
    region_rate=(-0.3, -0.2, -0.1, 0.0, 0.15, 0.1),
    region_basket=(0.0, 0.0, 0.05, 0.1, 0.0, -0.05),
    age_groups=("under 25", "25-34", "35-44", "45-54", "55-64", "65+"),
    age_probs=(0.05, 0.2, 0.28, 0.22, 0.15, 0.1),
    age_hazard=(1.3, 1.15, 1.0, 0.9, 0.85, 0.9),
    numeric_name="distance_km",
    numeric=_distance,
    level_cuts=(500.0, 2000.0),
    level_words=("low", "medium", "high"),
)

#: Task -> one-sentence label definition (a template formatted with the config's fields).
DEFINITIONS = {
    "repurchase": "The customer buys at least one basket in the {horizon} month(s) after the observed window.",
    "risk": "The customer's latent state at the end of the observed window is 'defected' (its simulated "
            "dropout has happened), whatever the series shows.",
}


def _labels(paths, amount, observed_amount, cfg: Config) -> dict[str, np.ndarray]:
    future = slice(cfg.length, cfg.length + cfg.horizon)
    return {
        "repurchase": paths.counts[:, future].sum(axis=1) > 0,
        "risk": ~paths.alive[:, cfg.length - 1],
    }


def generate(cfg: Config, progress: bool = True) -> RawDataset:
    """Simulate the Ta-Feng-like customers of ``cfg``.

    Parameters
    ----------
    cfg : Config
        Dataset settings.
    progress : bool
        Show a progress bar over entity blocks.

    Returns
    -------
    RawDataset
        Series (N, 2, length) with channels ``spend`` and ``baskets``; tasks ``repurchase`` and ``risk``.
    """
    return customer_dataset(cfg, SPEC, _labels, DEFINITIONS, progress)
