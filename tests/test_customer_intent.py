"""Modalities that complement the series: the customer simulators' intent at the window's end (retail, cdnow,
instacart, tafeng), a cause of the labels that the series cannot show and that the description and the static
attributes show in part, and sales_weekly's listing copy, which names part of the seasonal regime and of the
end-of-life decline.

The modality ceilings stated in docs/datasets.md ("What each modality shows") are measured here on the same
sample (6,000 entities at the default settings) by 4-fold out-of-fold gradient boosting on each modality
alone, so the page and the simulators cannot drift apart."""

from __future__ import annotations

import functools
import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from hmspar.data.generators import _common, dataset_config
from hmspar.errors import HmsparError

ROOT = Path(__file__).resolve().parents[1]
CUSTOMERS = ("retail", "cdnow", "instacart", "tafeng")
SAMPLE = 6000
COLUMNS = ("series", "text", "static", "series+static", "all")
#: The tasks the intent acts on (tafeng's ``risk`` is the latent state at the window's end, before it).
CASES = ([(name, task) for name in CUSTOMERS[:3] for task in ("churn", "engagement")] + [("tafeng", "repurchase")]
         + [("sales_weekly", "seasonality"), ("sales_weekly", "sales_risk")])


def generate(name: str, n: int, **overrides):
    mod = importlib.import_module(f"hmspar.data.generators.{name}")
    return mod.generate(dataset_config(name, {**mod.DEFAULT_PARAMS, "n_entities": n, **overrides}), progress=False)


@functools.lru_cache(maxsize=None)
def sample(name: str):
    return generate(name, SAMPLE)


def note_codes(texts: list[str]) -> np.ndarray:
    """The customer note phrase each description carries (0: none), read back from the text."""
    phrases = [p for group in _common.NOTE_PHRASES for p in group]
    return np.array([next((i + 1 for i, p in enumerate(phrases) if p in t), 0) for t in texts])


def copy_codes(texts: list[str]) -> np.ndarray:
    """sales_weekly's listing copy read back from the text: (season range 0-5, phase-out 0/1) per product."""
    from hmspar.data.generators.sales_weekly import PHASE_OUT_WORDS, SEASON_WORDS

    season = [next((i + 1 for i, words in enumerate(SEASON_WORDS) if any(w in t for w in words)), 0) for t in texts]
    phased = [any(w in t for w in PHASE_OUT_WORDS) for t in texts]
    return np.c_[season, phased].astype(np.float64)


def out_of_fold_auc(x: np.ndarray, y: np.ndarray) -> float:
    scores = np.zeros(len(y))
    for train, test in StratifiedKFold(4, shuffle=True, random_state=0).split(x, y):
        model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x[train], y[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    return roc_auc_score(y, scores)


def target_encoded_auc(codes: np.ndarray, y: np.ndarray, prior_weight: float = 5.0) -> float:
    """AUC of P(label | exact description), estimated out of fold (the text's ceiling: nothing a text model
    learns can separate two customers with the same description)."""
    scores = np.zeros(len(y))
    for train, test in StratifiedKFold(4, shuffle=True, random_state=0).split(codes, y):
        stats = pd.DataFrame({"c": codes[train], "y": y[train]}).groupby("c").y.agg(["sum", "count"])
        prior = y[train].mean()
        rate = (stats["sum"] + prior_weight * prior) / (stats["count"] + prior_weight)
        scores[test] = pd.Series(codes[test]).map(rate).fillna(prior).to_numpy()
    return roc_auc_score(y, scores)


def modality_aucs(name: str, task: str) -> dict[str, float]:
    ds = sample(name)
    y = ds.labels[task].astype(int)
    series = np.nan_to_num(ds.series.astype(np.float64)).reshape(ds.n, -1)
    categorical = [c for c in ("region", "age_group", "category", "price_band") if c in ds.static.columns]
    static = pd.get_dummies(ds.static, columns=categorical).to_numpy(np.float64)
    text = pd.Series(ds.text).astype("category").cat.codes.to_numpy()
    read = copy_codes(ds.text) if name == "sales_weekly" else note_codes(ds.text)
    return {
        "series": out_of_fold_auc(series, y),
        "text": target_encoded_auc(text, y),
        "static": out_of_fold_auc(static, y),
        "series+static": out_of_fold_auc(np.c_[series, static], y),
        "all": out_of_fold_auc(np.c_[series, static, read], y),
    }


def docs_modality_table() -> dict[tuple[str, str], dict[str, float]]:
    lines = (ROOT / "docs" / "datasets.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| simulated run | series |"))
    header = [c.strip() for c in lines[start].strip().strip("|").split("|")]
    assert tuple(header[1:6]) == COLUMNS, header
    table = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        name, task = cells[0].split("-")
        table[(name, task)] = dict(zip(COLUMNS, map(float, cells[1:6])))
    return table


def test_docs_table_covers_every_customer_task():
    assert set(docs_modality_table()) == set(CASES)
    assert {(n, t) for n in CUSTOMERS for t in sample(n).labels if t != "risk"} == set(CASES[:-2])


@pytest.mark.parametrize("name, task", CASES)
def test_every_modality_shows_part_of_the_label_none_all_of_it(name, task):
    measured = modality_aucs(name, task)
    stated = docs_modality_table()[(name, task)]
    for column in COLUMNS:  # the page's figures are this sample's (printed to 3 decimals)
        assert abs(measured[column] - stated[column]) < 0.0015, (name, task, column, measured[column], stated[column])
    # no single modality reaches the label ...
    assert max(measured["series"], measured["text"], measured["static"]) < 0.95
    # ... and the note adds what the series and the static attributes cannot show
    assert measured["all"] > measured["series+static"] + 0.01, measured
    assert measured["text"] > 0.6 and measured["static"] > 0.5


@pytest.mark.parametrize("name", CUSTOMERS)
def test_intent_leaves_the_window_alone_and_intent_rate_zero_is_the_old_dataset(name):
    new, old = generate(name, 500), generate(name, 500, intent_rate=0.0)
    assert np.array_equal(new.series, old.series, equal_nan=True)  # the intent acts after the window only
    assert "service_contacts" in new.static.columns and "service_contacts" not in old.static.columns
    assert any(label_changed := [(new.labels[t] != old.labels[t]).any() for t in new.labels if t != "risk"])
    assert all(label_changed)
    assert not note_codes(old.text).any() and note_codes(new.text).any()


def test_draw_intent_shares_and_note_rates():
    n = 200_000
    intent = _common.draw_intent(seed=3, block=0, n=n, rate=0.3, note_rate=0.6)
    leaving, expanding = intent.code == _common.LEAVING, intent.code == _common.EXPANDING
    assert abs(leaving.mean() - 0.15) < 0.005 and abs(expanding.mean() - 0.15) < 0.005
    group = np.digitize(intent.note, [1, 3, 6])  # 0 no note, 1 neutral, 2 leaving, 3 expanding phrases
    # a leaving customer's note names its intent with probability note_rate (+ a share of false notes)
    named = (group[leaving] == 2).mean()
    assert 0.6 < named < 0.6 + 0.4 * _common.FALSE_NOTE_RATE / 2 + 0.01
    # a neutral customer gets a misleading note rarely, a neutral one sometimes
    neutral = intent.code == _common.NEUTRAL
    assert abs((group[neutral] >= 2).mean() - _common.FALSE_NOTE_RATE) < 0.003
    assert abs((group[neutral] == 1).mean() - _common.NEUTRAL_NOTE_RATE) < 0.005
    assert intent.contacts[leaving].mean() > intent.contacts[neutral].mean() + 0.6
    assert (intent.stay[leaving] >= 0).all() and (intent.rate_mult[expanding] == _common.EXPANDING_RATE_MULT).all()


@pytest.mark.parametrize("key, value", [("intent_rate", 1.0), ("intent_rate", -0.1), ("note_rate", 1.5)])
def test_intent_settings_are_validated(key, value):
    with pytest.raises(HmsparError, match=rf"datasets\.retail(\.|: ){key}"):
        dataset_config("retail", {**importlib.import_module("hmspar.data.generators.retail").DEFAULT_PARAMS,
                                  key: value})


def test_listing_copy_leaves_series_and_labels_alone_and_copy_rate_zero_is_the_old_text():
    new, old = generate("sales_weekly", 600), generate("sales_weekly", 600, copy_rate=0.0, copy_noise=0.0)
    assert np.array_equal(new.series, old.series, equal_nan=True)
    assert all((new.labels[t] == old.labels[t]).all() for t in new.labels)
    assert not any("Listing copy" in t for t in old.text)
    read = copy_codes(new.text)
    seasonal = new.labels["seasonality"].astype(bool)
    # the copy names a range for about copy_rate of the seasonal products and copy_noise of the others
    assert 0.4 < (read[seasonal, 0] > 0).mean() < 0.62 and (read[~seasonal, 0] > 0).mean() < 0.1
    # with the copy stripped, the descriptions are the old ones up to the wording variant
    assert len({t.split(" Listing copy:")[0] for t in new.text}) >= 0.8 * len(set(old.text))


@pytest.mark.parametrize("key, value", [("copy_rate", 1.5), ("copy_noise", -0.1)])
def test_copy_settings_are_validated(key, value):
    with pytest.raises(HmsparError, match=rf"datasets\.sales_weekly(\.|: ){key}"):
        dataset_config("sales_weekly", {**importlib.import_module("hmspar.data.generators.sales_weekly").DEFAULT_PARAMS,
                                        key: value})
