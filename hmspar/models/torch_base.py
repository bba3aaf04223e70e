"""Base class of every torch model: builds the module from the data, trains it with the shared
:class:`~hmspar.training.trainer.Trainer`, and predicts in eval mode in batches.

Subclasses implement :meth:`TorchClassifier.build_module` and carry a :class:`TrainConfig` (by default
the ``train`` field of their ``Config``).

Torch models read their inputs batch by batch (``lazy_inputs = True``): ``X`` may hold numpy arrays,
memory maps or the loader's lazily read :class:`~hmspar.data.loader.MappedRows` views, so training and
prediction hold one batch in memory, not the split.
"""

from __future__ import annotations

import abc
import collections
import io
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from hmspar.data.loader import rows_of
from hmspar.device import resolve_device
from hmspar.errors import HmsparError
from hmspar.models.base import Model
from hmspar.training.trainer import Trainer, TrainConfig, logits_to_proba, n_outputs_for, predict_logits


def stratified_holdout(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into (train, holdout), ``fraction`` of each class held out (at least one per
    class when the class has two or more rows), shuffled with ``np.random.default_rng(seed)``.

    Returns
    -------
    (np.ndarray, np.ndarray)
        Sorted train and holdout indices.
    """
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    hold = []
    for value in np.unique(y):
        idx = np.flatnonzero(y == value)
        idx = idx[rng.permutation(idx.size)]
        k = int(round(fraction * idx.size))
        if idx.size >= 2:
            k = min(max(k, 1), idx.size - 1)
        else:
            k = 0
        hold.append(idx[:k])
    hold_idx = np.sort(np.concatenate(hold)) if hold else np.zeros(0, dtype=np.int64)
    mask = np.ones(y.size, dtype=bool)
    mask[hold_idx] = False
    return np.flatnonzero(mask), hold_idx


class TorchClassifier(Model):
    """A :class:`Model` whose network is an ``nn.Module`` trained by the shared Trainer.

    Subclasses implement :meth:`build_module`. The fitted module is kept on the CPU (so the pickled
    model loads anywhere) and moved to the configured device for prediction.

    Attributes
    ----------
    module_ : nn.Module
        The trained network, holding the best validation epoch's weights.
    history_ : list of dict
        Per-epoch ``train_loss, val_loss, val_roc_auc, lr``.
    best_epoch_ : int
        1-based epoch whose weights were kept.
    best_step_ : int
        Optimiser steps taken when those weights were saved (what a refit on more rows can reuse, see
        :meth:`fit_steps`).
    callback : callable or None
        ``callback(epoch, metrics)`` passed to the Trainer (e.g. DVCLive logging); not pickled.
    progress : bool
        Show a tqdm bar over epochs during ``fit``.
    """

    TAGS = {**Model.TAGS, "torch": True}

    #: Fraction of the training data held out for early stopping when ``fit`` gets no validation data.
    holdout_fraction: float = 0.1

    #: ``X`` may hold lazily read arrays (``MappedRows``): :func:`hmspar.runner.run_model` then passes
    #: the loader's views instead of materialised arrays. A subclass that needs whole matrices in memory
    #: still works (``np.asarray`` reads a view), or can set this to False.
    lazy_inputs: bool = True

    def __init__(self, cfg: Any, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.module_: nn.Module | None = None
        self.history_: list[dict[str, float]] = []
        self.best_epoch_: int = 0
        self.best_step_: int | None = None
        self.callback: Callable[[int, dict], None] | None = None
        self.progress: bool = False

    @property
    def train_config(self) -> TrainConfig:
        """Training settings: ``cfg.train`` by default (a :class:`TrainConfig`)."""
        train = getattr(self.cfg, "train", None)
        if train is None:
            return TrainConfig()
        if not isinstance(train, TrainConfig):
            raise HmsparError(f"{type(self).__name__}: cfg.train must be a TrainConfig, got {type(train).__name__}")
        return train

    @abc.abstractmethod
    def build_module(self, X: dict[str, np.ndarray], n_outputs: int) -> nn.Module:
        """Build the network for inputs shaped like ``X`` (the training arrays this model uses).

        Parameters
        ----------
        X : dict of str to np.ndarray
            Training arrays (only the modalities in ``uses``, plus ``mask`` with ``series``); read sizes
            (and, if wanted, statistics) from them.
        n_outputs : int
            1 for binary tasks, K for K > 2 classes.

        Returns
        -------
        nn.Module
            ``forward(batch: dict[str, Tensor]) -> (B, n_outputs)`` logits; may set ``self.aux_loss``
            (a scalar tensor) in every forward, which the Trainer adds to the loss.
        """

    def make_module(self, X: dict[str, np.ndarray], n_outputs: int) -> nn.Module:
        """Call :meth:`build_module` with torch's RNG seeded from ``self.seed`` inside ``fork_rng``,
        so parameter initialisation is deterministic and the caller's global state is untouched."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            module = self.build_module(X, n_outputs)
        if not isinstance(module, nn.Module):
            raise HmsparError(f"{type(self).__name__}.build_module must return an nn.Module, "
                              f"got {type(module).__name__}")
        return module

    def fit(self, X: dict[str, np.ndarray], y: np.ndarray,
            X_val: dict[str, np.ndarray] | None = None, y_val: np.ndarray | None = None) -> "TorchClassifier":
        """Build and train the module; validation data drive early stopping only.

        Without ``X_val``/``y_val``, a stratified ``holdout_fraction`` of the training rows (drawn with
        ``self.seed``) is held out for early stopping, unless :attr:`fixed_budget` is set: then every row
        is trained on for ``fixed_budget`` optimiser steps (:meth:`fit_steps`) and the last weights kept.
        """
        X = self.select_inputs(X)
        codes = self._fit_classes(y)
        if self.n_rows(X) != codes.size:
            raise HmsparError(f"{type(self).__name__}: X has {self.n_rows(X)} rows but y has {codes.size}")
        if (X_val is None) != (y_val is None):
            raise HmsparError(f"{type(self).__name__}: give both X_val and y_val, or neither")
        if X_val is None and self.fixed_budget is not None:  # refit after a k-fold selection of the steps
            return self.fit_steps(X, y, int(self.fixed_budget))
        if X_val is None:
            tr, ho = stratified_holdout(codes, self.holdout_fraction, self.seed)
            if ho.size == 0:
                raise HmsparError(f"{type(self).__name__}: too few training rows to hold out validation data")
            X_tr = {k: rows_of(v, tr) for k, v in X.items()}
            X_va = {k: rows_of(v, ho) for k, v in X.items()}
            y_tr, y_va = codes[tr], codes[ho]
        else:
            X_tr, y_tr = X, codes
            X_va = self.select_inputs(X_val)
            y_va = self._encode_labels(y_val)
            if self.n_rows(X_va) != y_va.size:
                raise HmsparError(f"{type(self).__name__}: X_val has {self.n_rows(X_va)} rows "
                                  f"but y_val has {y_va.size}")
        n_outputs = n_outputs_for(self.classes_.size)
        module = self.make_module(X_tr, n_outputs)
        trainer = Trainer(self.train_config, seed=self.seed, callback=self.callback, progress=self.progress)
        result = trainer.fit(module, X_tr, y_tr, X_va, y_va)
        self.module_ = result.module.cpu().eval()
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.best_step_ = result.best_step
        return self

    def fit_steps(self, X: dict[str, np.ndarray], y: np.ndarray, steps: int) -> "TorchClassifier":
        """Build and train the module for exactly ``steps`` optimiser steps on all of ``X`` (no validation
        data, no early stopping; the last weights are kept).

        For refitting once the number of steps has been chosen on validation data (e.g. the mean
        :attr:`best_step_` over the folds of a k-fold split of the training rows). The cosine schedule is
        the one a ``max_steps`` fit follows, cut at ``steps`` (the schedule the step was chosen under; the
        whole cosine spans ``steps`` when ``max_steps`` is 0 or smaller); every other setting comes from
        :attr:`train_config`.
        """
        X = self.select_inputs(X)
        codes = self._fit_classes(y)
        if self.n_rows(X) != codes.size:
            raise HmsparError(f"{type(self).__name__}: X has {self.n_rows(X)} rows but y has {codes.size}")
        module = self.make_module(X, n_outputs_for(self.classes_.size))
        trainer = Trainer(self.train_config, seed=self.seed, callback=self.callback, progress=self.progress)
        result = trainer.fit(module, X, codes, steps=steps)
        self.module_ = result.module.cpu().eval()
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.best_step_ = result.best_step
        return self

    @property
    def budget_(self) -> int | None:
        """The optimiser step of the best validation score in the last fit (the budget that the k-fold
        selection averages over folds and :meth:`fit_steps` refits with)."""
        return int(self.best_step_) if self.best_step_ else None

    def predict_proba(self, X: dict[str, np.ndarray]) -> np.ndarray:
        """(n, K) class probabilities from the module in eval mode, in ``eval_batch_size`` batches.

        In distributed training (``train.distributed.nproc > 1``, inside the torchrun workers) each rank
        predicts its share of the rows and gathers the rest, so every rank must call this.
        """
        self._check_fitted()
        if self.module_ is None:
            raise HmsparError(f"{type(self).__name__}: predict_proba called before fit")
        X = self.select_inputs(X)
        cfg = self.train_config
        device = resolve_device(cfg.device)
        module = self.module_.to(device)
        try:
            logits = predict_logits(module, X, cfg.eval_batch_size, device, cfg.amp,
                                    progress=self.progress and self.n_rows(X) > 10 * cfg.eval_batch_size,
                                    distributed=cfg.distributed.nproc > 1)
        finally:
            self.module_ = module.cpu()
        proba = logits_to_proba(logits)
        if proba.shape[1] != self.classes_.size:
            raise HmsparError(f"{type(self).__name__}: module gives {proba.shape[1]} probability columns "
                              f"for {self.classes_.size} classes")
        return proba

    def __getstate__(self) -> dict[str, Any]:
        state = pack_modules(self.__dict__, "module_")
        state["callback"] = None  # may hold an open DVCLive logger
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(unpack_modules(state, "module_"))


def pack_modules(state: dict[str, Any], *names: str) -> dict[str, Any]:
    """A copy of an object's ``__dict__`` with the torch modules under ``names`` as canonical bytes
    (:func:`module_to_bytes`), for ``__getstate__``; absent or None entries are left as they are."""
    state = dict(state)
    for name in names:
        if state.get(name) is not None:
            state[name] = module_to_bytes(state[name])
    return state


def unpack_modules(state: dict[str, Any], *names: str) -> dict[str, Any]:
    """Inverse of :func:`pack_modules`, for ``__setstate__``."""
    state = dict(state)
    for name in names:
        if isinstance(state.get(name), bytes):
            state[name] = module_from_bytes(state[name])
    return state


def module_to_bytes(module: nn.Module) -> bytes:
    """The module (moved to the CPU) as canonical bytes: same weights and structure, same bytes.

    A plain pickle of a tensor names its storage by memory address, so the same weights would give
    different bytes on every run (model.pkl is a cached DVC output); ``torch.save`` numbers storages
    0, 1, ... instead. Equal strings are interned first: pickle writes a repeated *object* as a
    back-reference, so two fits whose name strings merely differ in identity would otherwise differ.
    """
    module = module.cpu()
    _intern_names(module)
    buffer = io.BytesIO()
    torch.save(module, buffer)
    return buffer.getvalue()


def module_from_bytes(data: bytes) -> nn.Module:
    """Inverse of :func:`module_to_bytes` (on the CPU)."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def _intern_names(module: nn.Module) -> None:
    """Intern the strings held by every submodule's attributes (lists, tuples, dict keys), in place."""
    def intern(value: Any) -> Any:
        if isinstance(value, str):
            return sys.intern(value)
        if isinstance(value, list):
            return [intern(v) for v in value]
        if isinstance(value, tuple) and type(value) is tuple:
            return tuple(intern(v) for v in value)
        if type(value) in (dict, collections.OrderedDict):
            return type(value)((intern(k), v) for k, v in value.items())
        return value

    for sub in module.modules():
        for key, value in list(vars(sub).items()):
            new = intern(value)
            if new is not value:
                object.__setattr__(sub, key, new)
