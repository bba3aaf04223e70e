"""Equal-budget hyper-parameter search: HMSPAR and every listed baseline get the same number of Optuna
trials per run, each trial scored on validation rows only; the test split is never read.

``python -m hmspar.search --runs sales_weekly-sales_risk --models hmspar,lightgbm --trials 20`` reads
``params.yaml: search`` (flags override it), runs one study per (run, model) stored in SQLite
(``search/<run>.db``, study name = model), writes a report (best validation score, trials, seconds per
trial; ``benchmarks/results/search_<run>.json``) and prints the best settings as a YAML snippet for
``hmspar_runs.<run>`` and ``runs.<dataset>.<run>.baselines.<model>``; ``--write`` applies it to ``params.yaml``.

A trial fits the model exactly as the pipeline does (:func:`hmspar.training.selection.fit_with_selection`
on the loader's train/validation splits, the model built by :func:`hmspar.models.registry.make_model`
from the same merged params section as the ``train``/``baseline`` stages) and scores it on the
validation split, or, for runs the small-data policy sends to k-fold selection, on the out-of-fold
predictions of the training rows. No DVC stage imports this module: the default ``dvc repro`` trains the
committed settings without searching.

``--track rec`` searches the recommendation track instead: ``--runs`` names rec datasets (``rec.datasets``,
default ``search.rec_datasets``), ``--models`` recommenders (default ``search.rec_models``), the ranges come from
``search.rec_spaces`` (dotted keys into ``rec.recommenders.<model>``), and every trial fits the recommender as the
``recommend`` stage does (:func:`hmspar.rec.registry.build_recommender` on the protocol's training histories, the
validation histories for early stopping only) and scores validation NDCG@10 over the whole catalogue (maximised).
A trial starts from the settings the model has on that dataset (``by_dataset.<dataset>`` merged over the model's
section, :func:`hmspar.rec.runner.recommender_section`). The test histories are dropped unread after loading.
Studies live in ``search/rec_<dataset>.db``, the report in ``benchmarks/results/search_rec_<dataset>.json``, and
the best settings print (and ``--write``) as ``rec.recommenders.<model>.by_dataset.<dataset>``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from hmspar.config import build
from hmspar.errors import HmsparError

OBJECTIVES = {"roc_auc": "maximize", "log_loss": "minimize"}
REC_OBJECTIVE = "ndcg@10"
TRACKS = ("tabular", "rec")
REC_FEATURES_ROOT = Path("data/rec/features")
STORAGE_DIR = Path("search")
REPORT_DIR = Path("benchmarks/results")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """``params.yaml: search`` — the equal tuning budget.

    Attributes
    ----------
    trials : int
        Trials per (run, model): the same for every model.
    seed : int
        The one seed of the search: it seeds every model fitted during the search (and its k-fold split)
        and every study's TPE sampler, so the same command proposes the same trials.
    objective : {"roc_auc", "log_loss"}
        Validation score every model is tuned on (macro one-vs-rest ROC-AUC for multi-class tasks).
    runs : list of str
        Runs searched by default (names of ``runs.<dataset>.<run>``).
    models : list of str
        Models searched by default: ``hmspar`` and names of ``baselines.<model>``.
    spaces : dict
        ``model -> {dotted key -> range}``; a dotted key is a path into the model's params section (e.g.
        ``train.lr``, ``fusion.dropout``); a range is ``{low, high, log?}`` (integers when both bounds are
        integers) or ``{choices: [...]}``.
    rec_datasets, rec_models : list of str
        ``--track rec``: rec datasets (names of ``rec.datasets``; empty: all) and recommenders searched by
        default, each with ``trials`` trials scored on validation NDCG@10.
    rec_spaces : dict
        ``recommender -> {dotted key into rec.recommenders.<name> -> range}``, ranges as in ``spaces``.
    """

    trials: int = 20
    seed: int = 0
    objective: str = "roc_auc"
    runs: list[str] = dataclasses.field(default_factory=list)
    models: list[str] = dataclasses.field(default_factory=list)
    spaces: dict[str, dict[str, dict[str, Any]]] = dataclasses.field(default_factory=dict)
    rec_datasets: list[str] = dataclasses.field(default_factory=list)
    rec_models: list[str] = dataclasses.field(default_factory=list)
    rec_spaces: dict[str, dict[str, dict[str, Any]]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.trials, bool) or self.trials < 1:
            raise ValueError(f"trials: must be a positive integer, got {self.trials!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective: {self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        for model, space in self.spaces.items():
            for key, rng in space.items():
                _check_range(rng, f"spaces.{model}.{key}")
        for model, space in self.rec_spaces.items():
            for key, rng in space.items():
                _check_range(rng, f"rec_spaces.{model}.{key}")


def _check_range(rng: Any, where: str) -> None:
    if not isinstance(rng, dict):
        raise ValueError(f"{where}: expected {{low, high, log}} or {{choices}}, got {rng!r}")
    if "choices" in rng:
        if set(rng) != {"choices"} or not isinstance(rng["choices"], list) or not rng["choices"]:
            raise ValueError(f"{where}: 'choices' must be a non-empty list and the only key")
        try:
            choice_labels(rng["choices"])
        except ValueError as exc:
            raise ValueError(f"{where}.{exc}") from None
        return
    unknown = sorted(set(rng) - {"low", "high", "log"})
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown key (accepted: low, high, log, or choices)")
    low, high = rng.get("low"), rng.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high:
        raise ValueError(f"{where}: needs numeric low < high, got low={low!r} high={high!r}")
    if rng.get("log") and low <= 0:
        raise ValueError(f"{where}: a log range needs low > 0, got {low!r}")


def choice_labels(choices: list[Any]) -> dict[Any, Any]:
    """``label -> choice`` for a ``choices`` range. Optuna's categorical choices must be scalars, so a list
    or mapping choice (e.g. a modality subset ``[series, static]``) is drawn by its label: ``series+static``
    for a list of names, its JSON text otherwise. Scalars are their own labels."""
    labels: dict[Any, Any] = {}
    for choice in choices:
        if choice is None or isinstance(choice, (bool, int, float, str)):
            label = choice
        elif isinstance(choice, list) and choice and all(isinstance(c, str) and "+" not in c for c in choice):
            label = "+".join(choice)
        else:
            label = json.dumps(choice, sort_keys=True)
        if label in labels:
            raise ValueError(f"choices: {choice!r} is listed twice")
        labels[label] = choice
    return labels


def decode(params: dict[str, Any], space: dict[str, Any]) -> dict[str, Any]:
    """Trial params (labels for list or mapping choices) as the settings they stand for; a value the space
    no longer lists (a study resumed under an edited space) is kept as stored."""
    out = {}
    for key, value in params.items():
        rng = space.get(key) or {}
        labels = choice_labels(rng["choices"]) if "choices" in rng else {}
        out[key] = copy.deepcopy(labels.get(value, value))
    return out


def suggest(trial: Any, key: str, rng: dict[str, Any]) -> Any:
    """One value for ``key`` from an Optuna trial, following a range of ``search.spaces``."""
    if "choices" in rng:
        labels = choice_labels(rng["choices"])
        return copy.deepcopy(labels[trial.suggest_categorical(key, list(labels))])
    low, high, log = rng["low"], rng["high"], bool(rng.get("log", False))
    if isinstance(low, int) and isinstance(high, int):
        return trial.suggest_int(key, low, high, log=log)
    return trial.suggest_float(key, float(low), float(high), log=log)


def set_dotted(section: dict[str, Any], key: str, value: Any) -> None:
    """``section[a][b] = value`` for ``key = "a.b"``, creating the nested mappings."""
    node = section
    *path, last = key.split(".")
    for part in path:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise HmsparError(f"search key {key!r}: {part!r} is not a mapping in the model's section")
    node[last] = value


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"train.lr": 1e-3}`` -> ``{"train": {"lr": 1e-3}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        set_dotted(out, key, value)
    return out


def model_section(params: dict[str, Any], model: str, run: str) -> tuple[str, dict[str, Any], str]:
    """The registry name, params section and params path the pipeline fits ``model`` on ``run`` with.

    ``hmspar``: ``model``/``train`` merged with ``hmspar_runs.<run>`` (as ``train@<run>``). A baseline:
    ``baselines.<model>`` with the run's searched settings ``runs.<dataset>.<run>.baselines.<model>`` merged in
    (as ``baseline_*@<dataset>-<model>``).
    """
    from hmspar.pipeline import hmspar_run, run_specs
    from hmspar.pipeline.fit import hmspar_section, baseline_run_section

    if model == "hmspar":
        _, entry = hmspar_run(params, run)
        return "hmspar", hmspar_section(params, entry), "model"
    section = baseline_run_section(params, model, run_specs(params)[run])
    return section.pop("model", model), section, f"baselines.{model}"


def load_search_splits(features_dir: Path, task: str, group: str | None, uses: tuple[str, ...],
                       lazy_inputs: bool) -> tuple[Any, Any]:
    """The run's training and validation splits; the test split is dropped unread."""
    from hmspar.data.loader import load_task

    data = load_task(features_dir, task, group, modalities=uses, lazy=True)
    del data["test"]  # a lazy view: no test row has been read, and none will be
    train, val = data["train"], data["val"]
    if not lazy_inputs:
        train, val = train.materialise(), val.materialise()
    return train, val


def score(objective: str, y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """The validation score of ``proba`` (n, K) against labels ``y`` (n,)."""
    from hmspar.metrics import roc_auc

    codes = np.searchsorted(classes, y)
    if objective == "roc_auc":
        return roc_auc(codes, proba)
    p = np.clip(np.asarray(proba, dtype=np.float64)[np.arange(codes.size), codes], 1e-15, None)
    return float(-np.mean(np.log(p)))


def validation_fit(registry_name: str, section: dict[str, Any], where: str, features_dir: Path,
                   spec: Any, selection: dict[str, Any] | None, seed: int, objective: str,
                   cache: dict[str, Any]) -> tuple[float, str]:
    """Fit one configuration as the pipeline would and return its validation score and the regime.

    ``cache`` keeps the loaded splits between trials of one (run, model) (keyed by the inputs used).
    """
    from hmspar.data.loader import available_modalities, read_meta
    from hmspar.models.registry import make_model
    from hmspar.training.selection import SelectionConfig, fit_with_selection

    available = available_modalities(read_meta(features_dir))
    cfg = build(SelectionConfig, selection, "selection")

    def make() -> Any:
        return make_model(registry_name, section, seed, where).restricted_to(available)

    probe = make()
    lazy = bool(getattr(probe, "lazy_inputs", False))
    key = f"{','.join(probe.uses)}|{lazy}"
    if key not in cache:
        cache[key] = load_search_splits(features_dir, spec.task, spec.group, tuple(probe.uses), lazy)
    train, val = cache[key]
    if hasattr(probe, "progress"):
        probe.progress = False
    chosen = fit_with_selection(lambda: _quiet(make()), train, val, cfg, seed)
    classes = np.asarray(chosen.model.classes_)
    if chosen.regime == "kfold" and chosen.oof is not None:
        return score(objective, train.y, chosen.oof, classes), "kfold"
    if len(val) == 0:
        raise HmsparError(f"{where}: no validation rows and no out-of-fold predictions to score a trial on")
    return score(objective, val.y, chosen.model.predict_proba(val.X), classes), chosen.regime


def _quiet(model: Any) -> Any:
    if hasattr(model, "progress"):
        model.progress = False
    return model


def search_run_model(params: dict[str, Any], cfg: SearchConfig, run: str, model: str, trials: int,
                     storage_dir: Path = STORAGE_DIR, resume: bool = False,
                     progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the Optuna study of ``model`` on ``run`` and return its summary.

    The study lives in ``storage_dir/<run>.db`` under the name ``model``; without ``resume`` an existing
    study of that name is deleted first, so the same command gives the same trials.
    """
    from hmspar.pipeline import FEATURES_ROOT, run_specs

    specs = run_specs(params)
    if run not in specs:
        raise HmsparError(f"search.runs: unknown run {run!r} (runs in params.yaml: {', '.join(specs)})")
    spec = specs[run]
    space = cfg.spaces.get(model)
    if not space:
        raise HmsparError(f"search.spaces.{model}: no search space for model {model!r}")
    registry_name, base, where = model_section(params, model, run)
    features_dir = FEATURES_ROOT / spec.dataset
    study = _open_study(storage_dir, f"{run}.db", model, resume, OBJECTIVES[cfg.objective], cfg.seed)
    cache: dict[str, Any] = {}

    def fit(section: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        value, regime = validation_fit(registry_name, section, where, features_dir, spec,
                                       params.get("selection"), cfg.seed, cfg.objective, cache)
        return value, {"regime": regime}

    _optimise(study, trials, base, space, fit, f"search {run} {model}", cfg.objective, progress)
    summary = _summary(study, space)
    return {"model": model, "run": run, "objective": cfg.objective, "direction": OBJECTIVES[cfg.objective],
            "trials": summary.pop("trials"), "failed": summary.pop("failed"),
            "regime": summary.pop("regime"), **summary}


def _open_study(storage_dir: str | Path, db_name: str, model: str, resume: bool, direction: str, seed: int) -> Any:
    """The Optuna study ``model`` in ``storage_dir/db_name`` (SQLite), started afresh unless ``resume``."""
    import optuna

    storage_dir = Path(storage_dir)
    storage_dir.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{storage_dir / db_name}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not resume:
        try:
            optuna.delete_study(study_name=model, storage=storage)
        except KeyError:
            pass
    return optuna.create_study(study_name=model, storage=storage, load_if_exists=resume, direction=direction,
                               sampler=optuna.samplers.TPESampler(seed=seed))


def _optimise(study: Any, trials: int, base: dict[str, Any], space: dict[str, Any], fit: Any, label: str,
              objective_name: str, progress: bool) -> None:
    """Run the study up to ``trials`` complete trials: each draws ``space`` into a copy of ``base`` and scores
    it with ``fit(section) -> (value, user_attrs)``; the trial's seconds and attrs are stored on it."""
    import optuna

    def objective(trial: Any) -> float:
        section = copy.deepcopy(base)
        for key, rng in space.items():
            set_dotted(section, key, suggest(trial, key, rng))
        t0 = time.perf_counter()
        value, attrs = fit(section)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 3))
        for key, attr in attrs.items():
            trial.set_user_attr(key, attr)
        if progress:
            print(f"{label} trial {trial.number}: {objective_name}={value:.4f} "
                  f"({trial.user_attrs['seconds']:.1f}s) {trial.params}", flush=True)
        return value if math.isfinite(value) else float("nan")

    done = len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])
    if trials - done > 0:
        study.optimize(objective, n_trials=trials - done)


def _summary(study: Any, space: dict[str, Any]) -> dict[str, Any]:
    """Complete and failed trial counts, the first complete trial's ``regime``, the best value and settings,
    seconds per trial and in total, the trial log of a finished study, and the ``space`` it searched (the
    settings decoded from choice labels, :func:`decode`)."""
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    seconds = [t.user_attrs.get("seconds", float("nan")) for t in complete]
    best = study.best_trial if complete else None
    return {
        "trials": len(complete), "failed": len(study.trials) - len(complete),
        "regime": complete[0].user_attrs.get("regime") if complete else None,
        "best_value": None if best is None else best.value,
        "best_params": {} if best is None else decode(best.params, space),
        "seconds_per_trial": float(np.mean(seconds)) if seconds else None,
        "seconds_total": float(np.sum(seconds)) if seconds else None,
        "trial_log": [{"number": t.number, "value": t.value, "params": decode(t.params, space),
                       "seconds": t.user_attrs.get("seconds")} for t in complete],
        "space": copy.deepcopy(space),
    }


def load_rec_search_data(features_dir: Path, protocol: dict[str, Any] | None) -> tuple[Any, Any, Any]:
    """``(train, items, val)`` of a rec dataset under ``rec.protocol``; the test histories are dropped unread."""
    from hmspar.rec.data import ProtocolConfig, load

    if not Path(features_dir).is_dir():
        raise HmsparError(f"{features_dir}: not found (run rec_convert for this dataset first)")
    data = load(features_dir, build(ProtocolConfig, protocol, "rec.protocol"))
    return data.train, data.items, data.val


def rec_validation_fit(model: str, section: dict[str, Any], seed: int, data: tuple[Any, Any, Any]) -> float:
    """Fit recommender ``model`` from ``section`` as the ``recommend`` stage does; its validation NDCG@10."""
    from hmspar.rec.evaluate import ndcg, rank_batched
    from hmspar.rec.registry import build_recommender

    train, items, val = data
    rec = build_recommender(model, section, seed)
    rec.fit(train, items, val)
    return float(ndcg(rank_batched(rec.score, val)["rank"], 10).mean())


def search_rec_model(params: dict[str, Any], cfg: SearchConfig, dataset: str, model: str, trials: int,
                     storage_dir: Path = STORAGE_DIR, resume: bool = False, progress: bool = True,
                     features_root: Path = REC_FEATURES_ROOT, cache: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run (or resume) the Optuna study of recommender ``model`` on rec dataset ``dataset``; its summary.

    The study lives in ``storage_dir/rec_<dataset>.db`` under the name ``model`` (deleted first without
    ``resume``); each trial is scored on validation NDCG@10 (maximised), the model seeded with ``cfg.seed``.
    ``cache`` keeps the loaded dataset between models.
    """
    from hmspar.rec.pictures import resolve_lab
    from hmspar.rec.registry import REGISTRY
    from hmspar.rec.runner import recommender_section

    rec = params.get("rec") or {}
    if dataset not in (rec.get("datasets") or {}):
        raise HmsparError(f"search.rec_datasets: unknown rec dataset {dataset!r} "
                          f"(rec.datasets: {', '.join(rec.get('datasets') or {}) or 'none'})")
    if model not in REGISTRY:
        raise HmsparError(f"search.rec_models: unknown recommender {model!r} (registered: {', '.join(REGISTRY)})")
    space = cfg.rec_spaces.get(model)
    if not space:
        raise HmsparError(f"search.rec_spaces.{model}: no search space for recommender {model!r}")
    base = recommender_section(params, model, dataset)
    cache = {} if cache is None else cache
    if dataset not in cache:
        cache[dataset] = load_rec_search_data(Path(features_root) / dataset, rec.get("protocol"))
    study = _open_study(storage_dir, f"rec_{dataset}.db", model, resume, "maximize", cfg.seed)
    _optimise(study, trials, base, space,
              lambda section: (rec_validation_fit(model, resolve_lab(section, dataset, model), cfg.seed,
                                                  cache[dataset]), {}),
              f"search rec {dataset} {model}", REC_OBJECTIVE, progress)
    summary = _summary(study, space)
    summary.pop("regime")
    return {"track": "rec", "model": model, "run": dataset, "objective": REC_OBJECTIVE, "direction": "maximize",
            "trials": summary.pop("trials"), "failed": summary.pop("failed"), "regime": "validation", **summary}


def snippet(params: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """The best settings as a params.yaml fragment: ``hmspar_runs.<run>.{model,train}`` and
    ``runs.<dataset>.<run>.baselines.<model>``; for the rec track ``rec.recommenders.<model>.by_dataset.<dataset>``
    (settings chosen on one dataset's validation apply to that dataset; move them up a level to use them on
    every dataset)."""
    from hmspar.pipeline import deep_merge, run_specs
    from hmspar.rec.runner import BY_DATASET, dataset_settings

    out: dict[str, Any] = {}
    for res in results:
        if not res["best_params"]:
            continue
        best = nest(res["best_params"])
        run, model = res["run"], res["model"]
        if res.get("track") == "rec":
            model_out = out.setdefault("rec", {}).setdefault("recommenders", {}).setdefault(model, {})
            model_out.setdefault(BY_DATASET, {})[run] = deep_merge(dataset_settings(params, model, run), best)
        elif model == "hmspar":
            entry = copy.deepcopy(params["hmspar_runs"][run])
            train = best.pop("train", {})
            if best:
                entry["model"] = deep_merge(entry.get("model") or {}, best)
            if train:
                entry["train"] = deep_merge(entry.get("train") or {}, train)
            out.setdefault("hmspar_runs", {})[run] = entry
        else:
            dataset = run_specs(params)[run].dataset
            entry = out.setdefault("runs", {}).setdefault(dataset, {}).setdefault(run, {})
            entry.setdefault("baselines", {})[model] = best
    return out


def apply_snippet(params_path: Path, fragment: dict[str, Any]) -> None:
    """Merge ``fragment`` into ``params_path``, keeping its comments and order (ruamel round trip)."""
    import io

    from ruamel.yaml import YAML

    from hmspar.io import write_text_atomic

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the file's long flow-style lines
    # keep an explicit `null` (ruamel's round trip would write `key:` with nothing after it)
    yaml.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    doc = yaml.load(params_path.read_text())

    def merge(node: Any, frag: dict[str, Any]) -> None:
        for key, value in frag.items():
            if isinstance(value, dict) and isinstance(node.get(key), dict):
                merge(node[key], value)
            else:
                node[key] = value

    merge(doc, fragment)
    buf = io.StringIO()
    yaml.dump(doc, buf)
    write_text_atomic(params_path, buf.getvalue())


def search(params: dict[str, Any], runs: list[str] | None = None, models: list[str] | None = None,
           trials: int | None = None, storage_dir: Path = STORAGE_DIR, report_dir: Path | None = REPORT_DIR,
           resume: bool = False, progress: bool = True, track: str = "tabular",
           rec_features_root: Path = REC_FEATURES_ROOT) -> list[dict[str, Any]]:
    """Search every model of ``models`` on every run of ``runs`` with the same number of trials.

    Parameters
    ----------
    params : dict
        The whole ``params.yaml`` (its ``search`` section gives the defaults).
    runs, models : list of str, optional
        Override ``search.runs`` / ``search.models``.
    trials : int, optional
        Override ``search.trials`` (still the same for every model).
    storage_dir : Path
        Folder of the SQLite studies.
    report_dir : Path or None
        Where ``search_<run>.json`` is written (None: nowhere).
    resume : bool
        Keep completed trials of existing studies and run only the missing ones.
    progress : bool
        Print one line per trial.
    track : {"tabular", "rec"}
        ``rec``: runs are rec datasets and models recommenders (see the module docstring).
    rec_features_root : Path
        Where the rec track's converted datasets are.

    Returns
    -------
    list of dict
        One summary per (run, model) (see :func:`search_run_model`).
    """
    from hmspar.io import write_json

    section = dict(params.get("search") or {})
    if trials is not None:
        section["trials"] = trials  # a --trials override is checked like the params key
    cfg = build(SearchConfig, section, "search")
    if track not in TRACKS:
        raise HmsparError(f"search: unknown track {track!r} (known: {', '.join(TRACKS)})")
    if track == "rec":
        return _search_rec(params, cfg, runs, models, storage_dir, report_dir, resume, progress, rec_features_root)
    runs = list(runs or cfg.runs)
    models = list(models or cfg.models)
    if not runs or not models:
        raise HmsparError("search: name at least one run and one model (search.runs / search.models or --runs / --models)")
    results = []
    for run in runs:
        per_run: list[dict[str, Any]] = []
        for model in models:
            per_run.append(search_run_model(params, cfg, run, model, cfg.trials, storage_dir, resume, progress))
            if report_dir is not None:  # rewritten after each model: an interrupted search keeps what it did
                write_json(Path(report_dir) / f"search_{run}.json", {
                    "run": run, "trials_per_model": cfg.trials, "seed": cfg.seed, "objective": cfg.objective,
                    "seconds_total": float(sum(r["seconds_total"] or 0.0 for r in per_run)),
                    "models": {r["model"]: r for r in per_run}})
        results += per_run
    return results


def _search_rec(params: dict[str, Any], cfg: SearchConfig, datasets: list[str] | None, models: list[str] | None,
                storage_dir: Path, report_dir: Path | None, resume: bool, progress: bool,
                features_root: Path) -> list[dict[str, Any]]:
    """:func:`search` for ``track="rec"``: every recommender on every rec dataset, ``cfg.trials`` trials each."""
    from hmspar.io import write_json

    datasets = list(datasets or cfg.rec_datasets or ((params.get("rec") or {}).get("datasets") or {}))
    models = list(models or cfg.rec_models)
    if not datasets or not models:
        raise HmsparError("search --track rec: name at least one rec dataset and one recommender "
                          "(search.rec_datasets / search.rec_models or --runs / --models)")
    results, cache = [], {}
    for ds in datasets:
        per_ds: list[dict[str, Any]] = []
        for model in models:
            per_ds.append(search_rec_model(params, cfg, ds, model, cfg.trials, storage_dir, resume, progress,
                                           features_root, cache))
            if report_dir is not None:
                write_json(Path(report_dir) / f"search_rec_{ds}.json", {
                    "track": "rec", "dataset": ds, "trials_per_model": cfg.trials, "seed": cfg.seed,
                    "objective": REC_OBJECTIVE, "seconds_total": float(sum(r["seconds_total"] or 0.0 for r in per_ds)),
                    "models": {r["model"]: r for r in per_ds}})
        cache.pop(ds, None)
        results += per_ds
    return results


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m hmspar.search [--runs R,..] [--models M,..] [--trials N] [--write]``."""
    import yaml

    from hmspar.params import load_params

    ap = argparse.ArgumentParser(prog="python -m hmspar.search", description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--track", choices=TRACKS, default="tabular",
                    help="tabular (runs x models, validation ROC-AUC/log-loss) or rec (rec datasets x recommenders, "
                         "validation NDCG@10)")
    ap.add_argument("--runs", help="comma-separated runs, or rec datasets with --track rec (default: search.runs / "
                                   "search.rec_datasets)")
    ap.add_argument("--models", help="comma-separated models (default: search.models / search.rec_models)")
    ap.add_argument("--trials", type=int, help="trials per model (default: search.trials)")
    ap.add_argument("--resume", action="store_true", help="continue existing studies up to --trials")
    ap.add_argument("--write", action="store_true", help="apply the best settings to --params")
    args = ap.parse_args(argv)
    def split(text: str) -> list[str]:
        return [x.strip() for x in text.split(",") if x.strip()]

    try:
        params = load_params(args.params)
        results = search(params, split(args.runs) if args.runs else None,
                         split(args.models) if args.models else None, args.trials, resume=args.resume,
                         track=args.track)
        print("\n# run / model / trials / best validation score / seconds per trial")
        for r in results:
            print(f"# {r['run']} {r['model']}: {r['trials']} trials, {r['objective']}={r['best_value']}, "
                  f"{r['seconds_per_trial']:.1f} s/trial" if r["seconds_per_trial"] is not None else
                  f"# {r['run']} {r['model']}: no completed trial")
        fragment = snippet(params, results)
        print("# best settings (paste into params.yaml):")
        print(yaml.safe_dump(fragment, sort_keys=False, default_flow_style=None, width=200))
        if args.write:
            apply_snippet(args.params, fragment)
            print(f"# written to {args.params}")
    except HmsparError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
