"""The one contract every model follows (HMSPAR and every baseline): ``fit`` on a dict of modalities,
``predict_proba`` with rows summing to one, ``save``/``load`` giving the same predictions.

This module does not import torch, so tree models can subclass :class:`Model` cheaply.
:class:`TorchClassifier` (the base of every torch model, trained by the shared Trainer) lives in
:mod:`hmspar.models.torch_base`, which imports this module (never the other way round).
"""

from __future__ import annotations

import abc
import dataclasses
import os
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from hmspar.errors import HmsparError

#: Modalities a model may declare in ``inputs`` (``mask`` always travels with ``series``).
MODALITIES = ("series", "image", "text", "static")


class Model(abc.ABC):
    """Base class of every classifier.

    Subclasses set ``Config`` (a frozen dataclass with at least ``inputs: list[str]``) and ``name``,
    and implement :meth:`fit` and :meth:`predict_proba`. Input sizes and class counts are read from the
    data in ``fit`` and stored on the model, never written back into the config.

    Parameters
    ----------
    cfg : Config
        The model's typed configuration (built by :func:`hmspar.config.build`).
    seed : int
        Seed for every random choice the model makes; same seed, same predictions.

    Attributes
    ----------
    classes_ : np.ndarray or None
        (K,) sorted labels seen in ``fit``; column ``k`` of ``predict_proba`` is ``classes_[k]``.
    """

    Config: ClassVar[type]
    name: ClassVar[str] = "model"
    #: Capability tags (:mod:`hmspar.registry`): read by the shared contract suite and the tools.
    TAGS: ClassVar[dict[str, Any]] = {"track": "classification", "torch": False, "pretrained": False}

    #: Training budget fixed from outside (epochs for torch models, boosting rounds for boosted trees), set
    #: by the small-data selection (:mod:`hmspar.training.selection`) before a refit on all training rows:
    #: the model then trains for exactly this budget without validation data. None: the model's own rule.
    fixed_budget: int | None = None

    def __init__(self, cfg: Any, seed: int = 0) -> None:
        if not hasattr(cfg, "inputs"):
            raise HmsparError(f"{type(self).__name__}: config has no 'inputs' field")
        inputs = list(cfg.inputs)
        if not inputs:
            raise HmsparError(f"{type(self).__name__}: 'inputs' must name at least one modality")
        for m in inputs:
            if m not in MODALITIES:
                raise HmsparError(f"{type(self).__name__}: unknown input modality {m!r} "
                                  f"(known: {', '.join(MODALITIES)})")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise HmsparError(f"{type(self).__name__}: seed must be an integer, got {seed!r}")
        self.cfg = cfg
        self.seed = int(seed)
        self.classes_: np.ndarray | None = None

    # ------------------------------------------------------------------ contract
    @property
    def uses(self) -> tuple[str, ...]:
        """Modalities read from ``X`` (a subset of ``series``, ``image``, ``text``, ``static``)."""
        return tuple(dict.fromkeys(self.cfg.inputs))

    @abc.abstractmethod
    def fit(self, X: dict[str, np.ndarray], y: np.ndarray,
            X_val: dict[str, np.ndarray] | None = None, y_val: np.ndarray | None = None) -> "Model":
        """Fit on training data; ``X_val``/``y_val`` may be used for early stopping only.

        Parameters
        ----------
        X : dict of str to np.ndarray
            Modality arrays with ``n`` rows each (see :class:`hmspar.data.loader.SplitData`).
        y : np.ndarray
            (n,) integer labels.
        X_val, y_val : optional
            Validation data of the same form.

        Returns
        -------
        Model
            ``self``.
        """

    @abc.abstractmethod
    def predict_proba(self, X: dict[str, np.ndarray]) -> np.ndarray:
        """Class probabilities (n, K), rows summing to one, columns ordered as ``classes_``."""

    @property
    def budget_(self) -> int | None:
        """The training budget chosen by early stopping in the last ``fit`` with validation data (epochs,
        boosting rounds), or None for a model without one. Read by the k-fold selection."""
        return None

    def restricted_to(self, available: tuple[str, ...] | list[str]) -> "Model":
        """This model, or a copy whose ``inputs`` drop the modalities a dataset does not have.

        Parameters
        ----------
        available : sequence of str
            The dataset's declared modalities (``meta.json: modalities``).

        Raises
        ------
        HmsparError
            If none of the model's inputs is available.
        """
        keep = [m for m in self.uses if m in available]
        if len(keep) == len(self.uses):
            return self
        if not keep:
            raise HmsparError(f"{type(self).__name__}: none of its inputs ({', '.join(self.uses)}) is a modality "
                              f"of this dataset ({', '.join(available)})")
        field = "modalities" if any(f.name == "modalities" for f in dataclasses.fields(self.cfg)) else "inputs"
        try:
            cfg = dataclasses.replace(self.cfg, **{field: keep})
        except ValueError as exc:
            raise HmsparError(f"{type(self).__name__}: cannot drop the absent modalities "
                              f"{sorted(set(self.uses) - set(keep))}: {exc}") from None
        return type(self)(cfg, seed=self.seed)

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        """A small params section for fast contract tests (aeon's ``_get_test_params``); default ``{}``."""
        return {}

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> None:
        """Pickle the fitted model to ``path`` (written via a temporary file and an atomic rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with open(tmp, "wb") as fh:
                pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Model":
        """Load a model written by :meth:`save`; it must be an instance of ``cls``."""
        path = Path(path)
        if not path.exists():
            raise HmsparError(f"{path}: no saved model")
        with open(path, "rb") as fh:
            obj = pickle.load(fh)
        if not isinstance(obj, cls):
            raise HmsparError(f"{path}: holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj

    # ------------------------------------------------------------------ helpers for subclasses
    def select_inputs(self, X: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Return the arrays of ``X`` this model uses (plus ``mask`` with ``series``).

        Raises
        ------
        HmsparError
            Naming the first required modality missing from ``X``, or rows that disagree in number.
        """
        if not isinstance(X, dict):
            raise HmsparError(f"{type(self).__name__}: X must be a dict of modality arrays, got {type(X).__name__}")
        need = list(self.uses)
        if "series" in need:
            need.append("mask")
        missing = [m for m in need if m not in X]
        if missing:
            raise HmsparError(f"{type(self).__name__}: input modality {missing[0]!r} is missing from X "
                              f"(given: {', '.join(sorted(X)) or 'none'})")
        out = {m: X[m] for m in need}
        rows = {m: int(np.shape(a)[0]) for m, a in out.items()}
        if len(set(rows.values())) > 1:
            raise HmsparError(f"{type(self).__name__}: modalities have different numbers of rows: {rows}")
        return out

    @staticmethod
    def n_rows(X: dict[str, np.ndarray]) -> int:
        """Number of rows of the (first) array in ``X``."""
        return int(np.shape(next(iter(X.values())))[0])

    def _fit_classes(self, y: np.ndarray) -> np.ndarray:
        """Set ``classes_`` from training labels and return ``y`` encoded as 0..K-1 (int64).

        Raises
        ------
        HmsparError
            If ``y`` is not 1-D or holds fewer than two classes.
        """
        y = np.asarray(y)
        if y.ndim != 1:
            raise HmsparError(f"{type(self).__name__}: y must be 1-D, got shape {y.shape}")
        classes, codes = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise HmsparError(f"{type(self).__name__}: training labels hold fewer than two classes")
        self.classes_ = classes
        return codes.astype(np.int64)

    def _encode_labels(self, y: np.ndarray) -> np.ndarray:
        """Encode labels with the classes seen in ``fit`` (0..K-1); unseen labels raise HmsparError."""
        if self.classes_ is None:
            raise HmsparError(f"{type(self).__name__}: not fitted")
        y = np.asarray(y)
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, self.classes_.size - 1)
        bad = self.classes_[idx] != y
        if np.any(bad):
            raise HmsparError(f"{type(self).__name__}: label {y[bad][0]!r} was not seen in training "
                              f"(classes: {self.classes_.tolist()})")
        return idx.astype(np.int64)

    def _check_fitted(self) -> None:
        if self.classes_ is None:
            raise HmsparError(f"{type(self).__name__}: predict_proba called before fit")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cfg={self.cfg!r}, seed={self.seed})"

