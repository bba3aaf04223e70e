"""Train and evaluate one model on one run (dataset, task, optional group) for several seeds, writing
``seed<k>/{predictions.csv, metrics.json, model.pkl}`` under an output directory replaced atomically.

Used by both the ``train`` (HMSPAR) and ``baseline`` stages, so every model is fitted on the same split,
its budget and threshold selected the same way (:mod:`hmspar.training.selection`: on validation, or by
k-fold inside the training rows for small runs and splits without validation), and its test metrics
computed by the same code. The model sees the training and validation splits in ``fit`` (validation for
early stopping only) and the test split only in ``predict_proba``. Modalities the dataset does not have
(``meta.json: modalities``) are dropped from the model's inputs before it is built.

Memory: models with ``lazy_inputs = True`` (every torch model) get the loader's lazily read views and
hold one batch at a time; any other model (the tabular baselines) gets the splits materialised as numpy
arrays, so its memory grows with the split size.

Distributed training: inside torchrun workers (``train.distributed.nproc > 1``) every rank runs this same
function (fits and predictions are collective), but only rank 0 writes ``out_dir``, DVCLive curves and
progress output; the other ranks write into a scratch directory that is deleted.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hmspar.errors import HmsparError
from hmspar.io import atomic_dir, write_json

RUN_SPEC_KEYS = ("dataset", "task", "group")


def _check_run_spec(run_name: str, run_spec: dict[str, Any]) -> tuple[str, str, str | None]:
    where = f"runs.{run_name}"
    if not isinstance(run_spec, dict):
        raise HmsparError(f"{where}: expected a mapping with keys dataset, task, group")
    unknown = sorted(set(run_spec) - set(RUN_SPEC_KEYS))
    if unknown:
        raise HmsparError(f"{where}.{unknown[0]}: unknown key (accepted keys: {', '.join(RUN_SPEC_KEYS)})")
    for key in ("dataset", "task"):
        if not isinstance(run_spec.get(key), str) or not run_spec[key]:
            raise HmsparError(f"{where}.{key}: required string is missing")
    group = run_spec.get("group")
    if group is not None and not isinstance(group, str):
        raise HmsparError(f"{where}.group: expected a string or null, got {group!r}")
    return run_spec["dataset"], run_spec["task"], group


def _live_callback(live_dir: Path) -> tuple[Any, Callable[[int, dict], None]]:
    """A DVCLive logger in ``live_dir`` and a Trainer callback logging each epoch's finite metrics."""
    from dvclive import Live

    shutil.rmtree(live_dir, ignore_errors=True)
    try:
        live = Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    except Exception as exc:  # dvclive 3.x fails in a git repository without commits
        if "Empty git repo" in str(exc):
            raise HmsparError(f"{live_dir}: DVCLive needs a git repository with at least one commit "
                              "(commit first, or run outside the repository)") from exc
        raise

    def callback(epoch: int, metrics: dict) -> None:
        for name in ("train_loss", "val_loss", "val_roc_auc"):
            value = metrics.get(name)
            if value is not None and np.isfinite(value):
                live.log_metric(name, float(value))
        live.next_step()

    return live, callback


def _predictions_frame(parts: list[tuple[str, Any, np.ndarray]], classes: np.ndarray):
    import pandas as pd

    frames = []
    for split, data, proba in parts:
        if len(data) == 0:
            continue
        frame = {"id": np.asarray(data.ids).astype(str), "split": split, "y_true": np.asarray(data.y)}
        if classes.size == 2:
            frame["prob"] = proba[:, 1]
        else:
            for k in range(classes.size):
                frame[f"prob_{classes[k]}"] = proba[:, k]
        frames.append(pd.DataFrame(frame))
    return pd.concat(frames, ignore_index=True)


def run_model(model_name: str, model_section: Any, where: str, features_dir: Path,
              run_name: str, run_spec: dict[str, Any], seeds: list[int], out_dir: Path,
              live_dir: Path | None = None, progress: bool = True,
              model_label: str | None = None, timings_path: Path | None = None,
              selection: Any = None) -> list[dict[str, Any]]:
    """Fit ``model_name`` once per seed on the run's train split and evaluate it on validation and test.

    Parameters
    ----------
    model_name : str
        A key of :data:`hmspar.models.registry.REGISTRY`.
    model_section : Config, dict or None
        The model's typed ``Config``, as the pipeline builds it once per stage
        (:meth:`hmspar.registry.Registry.config`), or its params section (``model`` or ``baselines.<name>``),
        built here once for every seed and fold.
    where : str
        Dotted params path of that section, for error messages.
    features_dir : Path
        ``data/features/<dataset>/`` of the run's dataset.
    run_name : str
        Name of the run (``runs.<run_name>`` in params.yaml).
    run_spec : dict
        ``{dataset, task, group?}``.
    seeds : list of int
        One independent fit per seed, written to ``out_dir/seed<k>/``.
    out_dir : Path
        Replaced atomically once every seed has succeeded (a failure leaves it untouched or absent).
    live_dir : Path, optional
        For torch models: per-epoch ``train_loss, val_loss, val_roc_auc`` logged with DVCLive to
        ``live_dir/seed<k>/``.
    progress : bool
        Show progress bars (epochs) and one summary line per seed.
    model_label : str, optional
        Name recorded as ``model`` in ``metrics.json`` (default ``model_name``): a params variant such as
        ``lightgbm_text`` or an ablation such as ``hmspar[series+text]``.
    timings_path : Path, optional
        Where to write ``{"seed<k>": {"fit_seconds", "predict_seconds"}}`` (a file the stage declares
        ``cache: false``). Timings never go into ``out_dir``: cached outputs hold the same bytes for the
        same params on any machine.
    selection : SelectionConfig or dict, optional
        The ``params.yaml: selection`` section, typed (:class:`hmspar.training.selection.SelectionConfig`) or raw.

    Returns
    -------
    list of dict
        The ``metrics.json`` content of each seed, plus its ``fit_seconds`` and ``predict_seconds``.
    """
    from hmspar.config import build
    from hmspar.data.loader import available_modalities, load_task, read_meta
    from hmspar.models.registry import MODELS
    from hmspar.training import distributed
    from hmspar.metrics import binary_metrics, json_safe, multiclass_metrics
    from hmspar.training.selection import SelectionConfig, fit_with_selection

    dataset, task, group = _check_run_spec(run_name, run_spec)
    if not seeds:
        raise HmsparError(f"{where}: no seeds given")
    if len(set(seeds)) != len(seeds):
        raise HmsparError(f"seeds: duplicates in {list(seeds)}")
    features_dir, out_dir = Path(features_dir), Path(out_dir)
    select_cfg = selection if isinstance(selection, SelectionConfig) else build(SelectionConfig, selection, "selection")
    model_cls = MODELS.cls(model_name)
    model_cfg = MODELS.config(model_name, model_section, where)  # built once for every seed and fold
    available = available_modalities(read_meta(features_dir))
    main = distributed.is_main()
    progress = progress and main
    data = None
    results: list[dict[str, Any]] = []
    timings: dict[str, dict[str, float]] = {}
    with (atomic_dir(out_dir) if main else _scratch_dir()) as tmp:
        for seed in seeds:
            def make(seed: int = int(seed)) -> Any:
                return model_cls(model_cfg, seed=seed).restricted_to(available)

            model = make()
            if data is None:
                data = load_task(features_dir, task, group, modalities=model.uses, lazy=True)
                if not getattr(model, "lazy_inputs", False):
                    data = {name: part.materialise() for name, part in data.items()}
            train, val, test = data["train"], data["val"], data["test"]
            live = None

            def attach(final: Any, seed: int = int(seed)) -> None:  # progress and curves for the final fit only
                nonlocal live
                if _is_torch_model(final):
                    final.progress = progress
                    if live_dir is not None and main:
                        live, final.callback = _live_callback(Path(live_dir) / f"seed{seed}")

            try:
                t0 = time.perf_counter()
                chosen = fit_with_selection(make, train, val, select_cfg, int(seed), on_final=attach)
                fit_seconds = time.perf_counter() - t0
            finally:
                if live is not None:
                    live.end()
            model = chosen.model
            if _is_torch_model(model):
                model.callback = None
            t0 = time.perf_counter()
            p_val = _check_proba(model.predict_proba(val.X), len(val), model_name) if len(val) else None
            p_test = _check_proba(model.predict_proba(test.X), len(test), model_name)
            predict_seconds = time.perf_counter() - t0
            classes = np.asarray(model.classes_)
            metrics: dict[str, Any] = {
                "model": model_label or model_name, "run": run_name, "dataset": dataset, "task": task, "group": group,
                "seed": int(seed), "inputs": list(model.uses),
                "n_train": len(train), "n_val": len(val), "n_test": len(test),
                "best_epoch": getattr(model, "best_epoch_", None),
                "selection": chosen.record(),
            }
            if getattr(model, "best_step_", None) is not None:
                metrics["best_step"] = model.best_step_
            if getattr(model, "diagnostics_", None):  # e.g. HMSPAR's fusion gate weights
                metrics["diagnostics"] = model.diagnostics_
            # "val" metrics: on the validation split, or on the out-of-fold predictions of the k-fold regime.
            if chosen.regime == "kfold" and chosen.oof is not None:
                sel_y, sel_p = np.searchsorted(classes, train.y), chosen.oof
            elif p_val is not None:
                sel_y, sel_p = np.searchsorted(classes, val.y), p_val
            else:
                sel_y = sel_p = None
            if classes.size == 2:
                y_test = (test.y == classes[1]).astype(np.int64)
                threshold = chosen.threshold
                metrics.update({
                    "threshold": threshold,
                    "threshold_source": chosen.threshold_source,
                    "test": binary_metrics(y_test, p_test[:, 1], threshold),
                    "test_at_0.5": binary_metrics(y_test, p_test[:, 1], 0.5),
                    "val": binary_metrics(sel_y, sel_p[:, 1], threshold) if sel_y is not None else None,
                })
            else:
                metrics.update({
                    "threshold": None,
                    "threshold_source": None,
                    "test": multiclass_metrics(np.searchsorted(classes, test.y), p_test),
                    "test_at_0.5": None,
                    "val": multiclass_metrics(sel_y, sel_p) if sel_y is not None else None,
                })
            metrics = json_safe(metrics)
            seed_dir = tmp / f"seed{seed}"
            seed_dir.mkdir()
            parts = [("val", val, p_val), ("test", test, p_test)]
            if chosen.oof is not None:  # out-of-fold predictions of the training rows (k-fold selection)
                parts.insert(0, ("oof", train, chosen.oof))
            _predictions_frame(parts, classes).to_csv(
                seed_dir / "predictions.csv", index=False, float_format="%.8g")
            write_json(seed_dir / "metrics.json", metrics)
            model.save(seed_dir / "model.pkl")
            timings[f"seed{seed}"] = {"fit_seconds": round(fit_seconds, 3), "predict_seconds": round(predict_seconds, 3)}
            results.append({**metrics, **timings[f"seed{seed}"]})
            if progress:
                test_m = metrics["test"]
                print(f"{model_label or model_name} {run_name} seed {seed}: test roc_auc={test_m.get('roc_auc')} "
                      f"f1={test_m.get('f1', test_m.get('f1_macro'))} fit {fit_seconds:.1f}s", flush=True)
    if timings_path is not None and main:
        write_json(timings_path, timings)
    return results


@contextlib.contextmanager
def _scratch_dir():
    """A temporary directory for the outputs of a non-zero rank (deleted afterwards)."""
    with tempfile.TemporaryDirectory(prefix="hmspar-rank-") as tmp:
        yield Path(tmp)


def _is_torch_model(model: Any) -> bool:
    """Whether ``model`` reports epochs (``progress`` and a per-epoch ``callback``, as every
    :class:`~hmspar.models.torch_base.TorchClassifier` does). Duck-typed, so the runner does not import
    the torch base class and a tree-model stage does not depend on the Trainer's code."""
    return hasattr(model, "callback") and hasattr(model, "progress")


def _check_proba(proba: Any, n: int, model_name: str) -> np.ndarray:
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[0] != n or proba.shape[1] < 2:
        raise HmsparError(f"model {model_name!r}: predict_proba returned shape {proba.shape}, expected ({n}, K)")
    if not np.all(np.isfinite(proba)) or np.any(proba < -1e-9) or not np.allclose(proba.sum(axis=1), 1, atol=1e-5):
        raise HmsparError(f"model {model_name!r}: predict_proba rows must be probabilities summing to one")
    return proba
