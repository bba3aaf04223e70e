"""The one Trainer for every torch model: AdamW (no decay on norms and biases), cosine schedule, gradient
clipping, BCE or focal loss, a budget counted in optimiser steps, early stopping and model selection on
validation loss or (smoothed) ROC-AUC, and a deep copy of the best weights.

Budget: training runs for at most ``max_steps`` optimiser steps (``epochs`` passes when 0), never stops
before ``min_steps``, and stops once the validation score has not improved for ``patience_steps`` steps
(``patience`` epochs when 0). Validation is scored after every epoch. Small data sets therefore get the
same number of updates as large ones instead of a handful (an epoch of 500 rows at batch 256 is two
steps). :meth:`Trainer.fit` without validation data trains for exactly ``steps`` steps and keeps the last
weights (refitting on all training rows after choosing the number of steps elsewhere, e.g. by k-fold),
on the learning-rate schedule of a ``max_steps`` fit cut at ``steps``: the schedule the budget was chosen under.

Inputs are dicts of arrays indexed one batch at a time (``X[k][idx]``, ``X[k][a:b]``), so they may be
numpy arrays, ``np.memmap`` files or the loader's lazily read :class:`~hmspar.data.loader.MappedRows`
views: memory holds one batch, not the dataset. With ``train.distributed.nproc > 1`` the same loop runs in
every torchrun worker with ``DistributedDataParallel`` (see :mod:`hmspar.training.distributed`).

Torch is imported inside functions, so importing :class:`TrainConfig` (nested in model configs) is cheap.
Randomness comes from the run seed only: batches are shuffled with a seeded ``torch.Generator``, and the
whole fit runs inside ``torch.random.fork_rng`` seeded from the same seed (so dropout is reproducible)
without leaking into the caller's global random state.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from hmspar import threads
from hmspar.device import resolve_device
from hmspar.errors import HmsparError
from hmspar.training.distributed import DistributedConfig
from hmspar.training.optim import adamw

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by every torch model (a nested ``train`` section of its params).

    Parameters
    ----------
    epochs : int
        Maximum number of passes over the training data.
    batch_size, eval_batch_size : int
        Rows per training step / per inference batch.
    lr, weight_decay : float
        AdamW learning rate (peak of the cosine schedule) and decoupled weight decay, applied to weight
        matrices and kernels only (parameters with two or more axes), never to biases or norm scales.
    grad_clip : float
        Maximum global gradient norm; 0 disables clipping.
    patience : int
        Epochs without a better validation score before training stops (unless ``patience_steps``).
    max_steps : int
        Optimiser-step budget (the cosine schedule's length); 0 = ``epochs`` passes over the data.
        With ``max_steps``, ``epochs`` is ignored.
    min_steps : int
        Never stop early before this many steps.
    patience_steps : int
        Stop once this many steps passed since the best validation score; 0 = use ``patience``.
    select : {"val_loss", "val_auc", "smoothed_auc"}
        Validation score for early stopping and for the weights kept: the validation loss, ROC-AUC, or
        the mean ROC-AUC over the last ``smooth_window`` evaluations (less noisy on small validation
        splits). ROC-AUC falls back to the loss when validation has a single class.
    smooth_window : int
        Evaluations averaged by ``smoothed_auc``.
    loss : {"bce", "focal"}
        Binary cross-entropy (cross-entropy for multi-class) or focal loss.
    focal_gamma : float
        Focusing parameter of the focal loss.
    class_weight : bool
        Weight classes by their inverse frequency in the *training* labels (BCE ``pos_weight``, focal
        ``alpha``, multi-class class weights).
    device : {"auto", "cpu", "cuda"}
        ``auto`` picks CUDA when available.
    amp : bool
        Mixed precision (CUDA only; ignored on CPU): bfloat16 autocast where supported, else float16
        with a gradient scaler.
    num_threads : int or "auto"
        Threads (torch intra-/inter-op and BLAS) during the fit; ``auto``: the CPUs available divided by
        the jobs running side by side (:mod:`hmspar.threads`); 0 leaves torch's default.
    distributed : DistributedConfig
        ``{nproc, backend, ...}``: data-parallel training over ``nproc`` torchrun workers
        (``batch_size`` stays the *global* batch); ``nproc: 1`` is plain single-process training.
    """

    epochs: int = 30
    batch_size: int = 256
    eval_batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    patience: int = 5
    max_steps: int = 0
    min_steps: int = 0
    patience_steps: int = 0
    select: Literal["val_loss", "val_auc", "smoothed_auc"] = "val_auc"
    smooth_window: int = 3
    loss: Literal["bce", "focal"] = "bce"
    focal_gamma: float = 2.0
    class_weight: bool = True
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    amp: bool = False
    num_threads: int | Literal["auto"] = "auto"
    distributed: DistributedConfig = DistributedConfig()

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "patience", "smooth_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        for name in ("max_steps", "min_steps", "patience_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: must be a non-negative integer, got {value!r}")
        if self.max_steps and self.min_steps > self.max_steps:
            raise ValueError(f"min_steps: must not exceed max_steps ({self.max_steps}), got {self.min_steps}")
        if self.select not in ("val_loss", "val_auc", "smoothed_auc"):
            raise ValueError(f"select: expected 'val_loss', 'val_auc' or 'smoothed_auc', got {self.select!r}")
        if not self.lr > 0:
            raise ValueError(f"lr: must be positive, got {self.lr!r}")
        for name in ("weight_decay", "grad_clip", "focal_gamma"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: must be non-negative, got {getattr(self, name)!r}")
        if self.loss not in ("bce", "focal"):
            raise ValueError(f"loss: expected 'bce' or 'focal', got {self.loss!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device: expected 'auto', 'cpu' or 'cuda', got {self.device!r}")
        threads.check(self.num_threads, "num_threads", allow_zero=True)
        if not isinstance(self.distributed, DistributedConfig):
            raise ValueError(f"distributed: expected a mapping of DistributedConfig fields, got {self.distributed!r}")
        if self.distributed.nproc > 1 and self.batch_size < 2 * self.distributed.nproc:
            raise ValueError(f"batch_size: the global batch ({self.batch_size}) must give every one of the "
                             f"{self.distributed.nproc} processes at least two rows")


@dataclasses.dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`.

    Attributes
    ----------
    module : nn.Module
        The trained module holding the best epoch's weights (in eval mode, on the training device).
    best_epoch : int
        1-based epoch whose weights were kept (the last epoch for a fixed-step fit).
    best_score : float
        Selection score of that epoch (``select``: minus the validation loss, the ROC-AUC or the
        smoothed ROC-AUC); NaN for a fixed-step fit.
    history : list of dict
        One dict per epoch: ``epoch, step, train_loss, val_loss, val_roc_auc, lr`` (no validation
        entries for a fixed-step fit).
    best_step : int
        Optimiser steps taken when the kept weights were saved.
    steps : int
        Optimiser steps taken in all.
    """

    module: Any
    best_epoch: int
    best_score: float
    history: list[dict[str, float]]
    best_step: int = 0
    steps: int = 0


#: Epochs of at least this many steps get their own progress bar over rows (with ``progress=True``).
ROWS_BAR_MIN_STEPS = 50


def to_tensor(array: np.ndarray, device: "torch.device") -> "torch.Tensor":
    """A batch of a numpy (or memmap) array as a tensor: floats become float32, integers int64."""
    import torch

    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.floating):
        array = np.ascontiguousarray(array, dtype=np.float32)
    elif np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        array = np.ascontiguousarray(array, dtype=np.int64)
    else:
        raise HmsparError(f"cannot convert an array of dtype {array.dtype} to a tensor")
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def batch_slices(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into nearly equal consecutive chunks of at most ``batch_size`` rows.

    Equal chunks avoid a final batch of a single row (which breaks batch normalisation).
    """
    if n <= 0:
        return []
    n_batches = math.ceil(n / batch_size)
    bounds = np.linspace(0, n, n_batches + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def take_batch(X: dict[str, Any], idx: np.ndarray, device: "torch.device") -> dict[str, "torch.Tensor"]:
    """Read rows ``idx`` (sorted, which keeps memory-map reads moving forward) of every modality of ``X``
    (numpy arrays, memmaps or lazy ``MappedRows`` views) as tensors on ``device``."""
    return {k: to_tensor(v[idx], device) for k, v in X.items()}


def n_rows(X: dict[str, Any]) -> int:
    """Rows of the first array of ``X``."""
    return int(np.shape(next(iter(X.values())))[0])


def n_outputs_for(n_classes: int) -> int:
    """Logit columns for ``n_classes`` classes: 1 for binary, ``n_classes`` otherwise."""
    return 1 if n_classes == 2 else int(n_classes)


def logits_to_proba(logits: np.ndarray) -> np.ndarray:
    """(n, 1) binary logits -> (n, 2); (n, K) logits -> softmax (n, K); float64, rows sum to one."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 1:
        logits = logits[:, None]
    if logits.shape[1] == 1:
        p1 = 1.0 / (1.0 + np.exp(-np.clip(logits[:, 0], -700, 700)))
        return np.stack([1.0 - p1, p1], axis=1)
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict_logits(module: "nn.Module", X: dict[str, Any], batch_size: int,
                   device: "torch.device", amp: bool = False, progress: bool = False,
                   distributed: bool = False) -> np.ndarray:
    """Run ``module`` in eval mode over ``X`` in batches; returns (n, n_outputs) float32 logits.

    Parameters
    ----------
    module : nn.Module
        ``forward(batch) -> (B, n_outputs)``.
    X : dict of str to array-like
        Modality arrays (numpy, memmap or ``MappedRows``), read ``batch_size`` rows at a time.
    batch_size : int
        Rows per forward pass.
    device : torch.device
    amp : bool
        Autocast on CUDA.
    progress : bool
        Show a tqdm bar over rows.
    distributed : bool
        Inside an initialised process group of several ranks, each rank predicts its contiguous share of
        the rows and the logits are all-gathered, so *every rank must call this* and every rank gets all
        (n, n_outputs) logits. Ignored without a process group (or when ``n`` < number of ranks).
    """
    import torch

    from hmspar.training import distributed as dist_mod

    n = n_rows(X)
    lo, hi = 0, n
    sharded = distributed and dist_mod.is_active() and n >= dist_mod.world_size()
    if sharded:
        bounds = dist_mod.shard_bounds(n, dist_mod.world_size())
        lo, hi = int(bounds[dist_mod.rank()]), int(bounds[dist_mod.rank() + 1])
    module.eval()
    out = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=hi - lo, desc="predict", unit="row", leave=False)
    with torch.no_grad():
        for a, b in batch_slices(hi - lo, batch_size):
            batch = {k: to_tensor(v[lo + a:lo + b], device) for k, v in X.items()}
            with _autocast(device, amp):
                logits = module(batch)  # (B, n_outputs)
            if logits.ndim == 1:
                logits = logits[:, None]
            out.append(logits.float().cpu().numpy())
            if bar is not None:
                bar.update(b - a)
    if bar is not None:
        bar.close()
    local = np.concatenate(out, axis=0) if out else np.zeros((0, 1), dtype=np.float32)
    if sharded:
        return dist_mod.gather_rows(local, n)
    return local


def _autocast(device: "torch.device", amp: bool):
    import contextlib

    import torch

    if amp and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)
    return contextlib.nullcontext()


def validation_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """ROC-AUC of (n, K) probabilities by :func:`hmspar.metrics.roc_auc` (binary on column 1, macro
    one-vs-rest otherwise); NaN if undefined or if ``proba`` is not finite (a diverged model)."""
    from hmspar.metrics import roc_auc

    proba = np.asarray(proba, dtype=np.float64)
    if not np.all(np.isfinite(proba)):
        return float("nan")
    return roc_auc(y, proba)


def _forward(net: "nn.Module", batch: dict[str, "torch.Tensor"], ddp: bool) -> "torch.Tensor":
    """``net(batch)``; under DDP, the error about parameters without gradients names the params key."""
    if not ddp:
        return net(batch)
    try:
        return net(batch)
    except RuntimeError as exc:
        if "find_unused_parameters" in str(exc):
            raise HmsparError("train.distributed: some parameters received no gradient in the previous step; "
                              "set train.distributed.find_unused_parameters: true") from exc
        raise


class Trainer:
    """Train a module whose ``forward(batch)`` returns logits, with early stopping on validation ROC-AUC.

    Parameters
    ----------
    cfg : TrainConfig
        Optimisation settings.
    seed : int
        Seeds the batch-shuffling generator and (inside ``fork_rng``) dropout and other layer randomness.
    callback : callable, optional
        ``callback(epoch, metrics)`` after every epoch, ``metrics`` holding ``train_loss, val_loss,
        val_roc_auc, lr`` (used for DVCLive); called on rank 0 only in distributed training.
    progress : bool
        Show tqdm bars over epochs and over the rows of each epoch (rank 0 only).

    Notes
    -----
    With ``cfg.distributed.nproc > 1`` :meth:`fit` must run in every one of ``nproc`` torchrun workers
    (it joins their process group); see :mod:`hmspar.training.distributed` for what is shared and how.
    """

    def __init__(self, cfg: TrainConfig, seed: int, callback: Callable[[int, dict], None] | None = None,
                 progress: bool = False) -> None:
        if not isinstance(cfg, TrainConfig):
            raise HmsparError(f"Trainer: cfg must be a TrainConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.seed = int(seed)
        self.callback = callback
        self.progress = progress

    def fit(self, module: "nn.Module", X_train: dict[str, Any], y_train: np.ndarray,
            X_val: dict[str, Any] | None = None, y_val: np.ndarray | None = None,
            steps: int | None = None) -> TrainResult:
        """Train ``module`` and return it holding the best validation epoch's weights.

        Parameters
        ----------
        module : nn.Module
            ``forward(batch: dict[str, Tensor]) -> (B, n_outputs)`` logits; may set ``aux_loss`` (added
            to the loss) and ``aux_logits`` (a list of extra ``(B, n_outputs)`` logits, each trained with
            the task loss, their mean weighted by the module's ``aux_logits_weight``).
        X_train, X_val : dict of str to array-like
            Modality arrays (numpy, memmap or lazy ``MappedRows``); batches are indexed, then converted.
        y_train, y_val : np.ndarray
            (n,) labels encoded as 0..K-1; K = 2 needs ``n_outputs = 1``.
        steps : int, optional
            Without validation data: train for exactly this many optimiser steps (on the cosine schedule
            of ``max(steps, max_steps)`` steps, cut at ``steps``) and keep the last weights. Must be given
            when ``X_val`` is None, and only then.

        Returns
        -------
        TrainResult
        """
        import torch

        from hmspar.training import distributed

        if (X_val is None) != (y_val is None):
            raise HmsparError("Trainer: give both X_val and y_val, or neither")
        if X_val is None:
            if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
                raise HmsparError(f"Trainer: without validation data, give a positive number of steps, got {steps!r}")
        elif steps is not None:
            raise HmsparError("Trainer: steps fixes the budget of a fit without validation data; "
                              "with validation data use train.max_steps")
        y_train = np.asarray(y_train, dtype=np.int64)
        y_val = np.zeros(0, dtype=np.int64) if y_val is None else np.asarray(y_val, dtype=np.int64)
        if y_train.ndim != 1 or y_train.size == 0:
            raise HmsparError("Trainer: y_train must be a non-empty 1-D array")
        checks = (("train", X_train, y_train),) + ((("val", X_val, y_val),) if X_val is not None else ())
        for name, X, y in checks:
            if not X:
                raise HmsparError(f"Trainer: X_{name} holds no modality")
            for k, v in X.items():
                if np.shape(v)[0] != y.shape[0]:
                    raise HmsparError(f"Trainer: X_{name}[{k!r}] has {np.shape(v)[0]} rows, y_{name} {y.shape[0]}")
        device = resolve_device(self.cfg.device)
        if self.cfg.distributed.nproc > 1:
            if distributed.in_worker():
                device = distributed.worker_device(device)  # cuda:<LOCAL_RANK>, set before joining
            distributed.init_process_group(self.cfg.distributed, device)
        devices = [device.index or 0] if device.type == "cuda" else []
        n_threads = threads.resolve(self.cfg.num_threads, "train.num_threads", allow_zero=True,
                                    share=self.cfg.distributed.nproc)
        with threads.limited(n_threads), torch.random.fork_rng(devices=devices):
            torch.manual_seed(self._layer_seed())  # restored on leaving fork_rng: no global state leaks
            return self._fit(module, X_train, y_train, X_val, y_val, device,
                             None if steps is None else int(steps))

    def _layer_seed(self) -> int:
        """Seed of dropout and other layer randomness: the run seed on rank 0 (and in one process),
        a seed derived from ``(seed, rank)`` on the other ranks so their dropout masks differ."""
        from hmspar.training import distributed

        r = distributed.rank() if self.cfg.distributed.nproc > 1 else 0
        if r == 0:
            return self.seed
        return int(np.random.SeedSequence([self.seed, r]).generate_state(1)[0])

    # ------------------------------------------------------------------
    def _fit(self, module, X_train, y_train, X_val, y_val, device, fixed_steps) -> TrainResult:
        import torch

        from hmspar.training import distributed
        from hmspar.training.losses import make_loss

        cfg = self.cfg
        ddp = cfg.distributed.nproc > 1
        world, rank = (distributed.world_size(), distributed.rank()) if ddp else (1, 0)
        main = rank == 0
        module = module.to(device)
        n_classes = max(2, int(y_train.max()) + 1)
        n_outputs = n_outputs_for(n_classes)
        if y_train.min() < 0 or (y_val.size and (y_val.min() < 0 or y_val.max() >= n_classes)):
            raise HmsparError(f"Trainer: labels must be encoded 0..{n_classes - 1} (as seen in y_train)")
        loss_fn = make_loss(cfg.loss, y_train, n_classes, class_weight=cfg.class_weight,
                            gamma=cfg.focal_gamma).to(device)
        # ``work`` is the module trained (``module`` itself, or on CUDA under DDP a copy whose batch norms
        # are SyncBatchNorm, same state-dict keys); ``net`` what the training forward runs (``work`` or its
        # DDP wrapper). The best state is loaded back into ``module`` at the end.
        work = module
        if ddp and device.type == "cuda":
            work = torch.nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(module))
        params = [p for p in work.parameters() if p.requires_grad]
        if not params:
            raise HmsparError("Trainer: the module has no trainable parameters")
        net = work
        if ddp:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(
                work, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=cfg.distributed.find_unused_parameters)
        optimiser = adamw(work, cfg.lr, cfg.weight_decay)
        n = y_train.size
        steps_per_epoch = len(batch_slices(n, cfg.batch_size))
        if fixed_steps is not None:
            total_steps = fixed_steps
        elif cfg.max_steps:
            total_steps = cfg.max_steps
        else:
            total_steps = max(1, cfg.epochs * steps_per_epoch)
        # A fixed-step refit follows the schedule its budget was chosen under (max_steps long, as in the
        # k-fold models that early-stopped at that step), cut at the budget: a cosine squeezed into the
        # budget gives far smaller learning rates (a 120-step refit of HMSPAR on 48 rows never left its
        # initial plateau and ranked the test rows at ROC-AUC 0.34, where the fold models reached 0.96).
        schedule_steps = max(total_steps, cfg.max_steps) if fixed_steps is not None else total_steps
        n_epochs = math.ceil(total_steps / steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, schedule_steps) / schedule_steps)))
        use_amp = cfg.amp and device.type == "cuda"
        scaler = None
        if use_amp and not torch.cuda.is_bf16_supported():
            scaler = torch.amp.GradScaler("cuda")
        generator = torch.Generator().manual_seed(self.seed)  # the same permutation on every rank
        y_train_t = torch.from_numpy(y_train)
        use_auc = X_val is not None and np.unique(y_val).size == n_classes
        show = self.progress and main

        best_score, best_epoch, best_state, bad_epochs, best_loss = -math.inf, 0, None, 0, math.inf
        step, best_step = 0, 0
        aucs: list[float] = []
        history: list[dict[str, float]] = []
        epochs = range(1, n_epochs + 1)
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(epochs, desc="epochs", leave=False)
            epochs = bar
        for epoch in epochs:
            net.train()
            perm = torch.randperm(n, generator=generator).numpy()
            total, seen = 0.0, 0
            rows_bar = None
            if show and steps_per_epoch >= ROWS_BAR_MIN_STEPS:
                from tqdm.auto import tqdm

                rows_bar = tqdm(total=n, desc=f"epoch {epoch}", unit="row", leave=False)
            for a, b in batch_slices(n, cfg.batch_size):
                if step >= total_steps:
                    break
                idx = np.sort(perm[a:b])
                if ddp:
                    idx = distributed.shard(idx, rank, world)  # this rank's disjoint part of the global batch
                batch = take_batch(X_train, idx, device)
                target = y_train_t[idx].to(device)
                if hasattr(work, "aux_loss"):
                    work.aux_loss = None
                with _autocast(device, use_amp):
                    logits = _forward(net, batch, ddp)  # (B, n_outputs)
                if logits.ndim == 1:
                    logits = logits[:, None]
                if logits.shape != (idx.size, n_outputs):
                    raise HmsparError(f"Trainer: module returned logits of shape {tuple(logits.shape)}, "
                                      f"expected {(idx.size, n_outputs)} for {n_classes} classes")
                loss = loss_fn(logits.float(), target)
                aux = getattr(work, "aux_loss", None)
                if aux is not None:
                    loss = loss + aux.float()
                aux_logits = getattr(work, "aux_logits", None)
                if aux_logits:
                    aux_task = torch.stack([loss_fn(x.float() if x.ndim > 1 else x.float()[:, None], target)
                                            for x in aux_logits]).mean()
                    loss = loss + float(getattr(work, "aux_logits_weight", 1.0)) * aux_task
                train_loss = float(loss.detach())  # the loss optimised, auxiliary terms included
                if not torch.isfinite(loss):
                    raise HmsparError(f"Trainer: loss became {loss.item()} at epoch {epoch}; "
                                      "try a lower train.lr")
                # DDP averages gradients over ranks; weighting each rank by its share of the global batch
                # makes that average the gradient of the global batch mean (shards may differ by a row).
                step_loss = loss * (idx.size * world / (b - a)) if ddp else loss
                optimiser.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(step_loss).backward()
                    scaler.unscale_(optimiser)
                else:
                    step_loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                if scaler is not None:
                    scaler.step(optimiser)
                    scaler.update()
                else:
                    optimiser.step()
                scheduler.step()
                step += 1
                total += train_loss * idx.size
                seen += idx.size
                if rows_bar is not None:
                    rows_bar.update(b - a)
            if rows_bar is not None:
                rows_bar.close()
            if ddp:
                total, seen = distributed.all_sum([total, float(seen)])
                distributed.broadcast_buffers(work)  # rank 0's batch-norm statistics everywhere
            lr = float(optimiser.param_groups[0]["lr"])
            if X_val is None:  # fixed-step fit: no evaluation, the last weights are kept
                metrics = {"epoch": epoch, "step": step, "train_loss": total / max(seen, 1), "lr": lr}
                history.append(metrics)
                if self.callback is not None and main:
                    self.callback(epoch, {k: v for k, v in metrics.items() if k not in ("epoch", "step")})
                if step >= total_steps:
                    break
                continue
            logits_val = predict_logits(work, X_val, cfg.eval_batch_size, device, use_amp, distributed=ddp)
            with torch.no_grad():
                val_loss = float(loss_fn(torch.from_numpy(logits_val).to(device),
                                         torch.from_numpy(y_val).to(device)))
            val_auc = validation_auc(y_val, logits_to_proba(logits_val)) if use_auc else float("nan")
            metrics = {"epoch": epoch, "step": step, "train_loss": total / max(seen, 1), "val_loss": val_loss,
                       "val_roc_auc": val_auc, "lr": lr}
            history.append(metrics)
            aucs.append(val_auc)
            if cfg.select == "val_loss" or not use_auc:
                score = -val_loss
            elif cfg.select == "smoothed_auc":
                score = float(np.mean(aucs[-cfg.smooth_window:]))
            else:
                score = val_auc
            if not math.isfinite(score):
                score = -math.inf
            # Ties in a selection by ROC-AUC (a small validation split saturates at 1.0 within a few epochs)
            # are broken by the validation loss, so training goes on while the predictions still sharpen.
            improved = (best_state is None or score > best_score
                        or (score == best_score and cfg.select != "val_loss" and use_auc and val_loss < best_loss))
            if cfg.patience_steps:
                waited = step - best_step >= cfg.patience_steps
            else:
                waited = bad_epochs + 1 >= cfg.patience
            stop = (not improved and waited and step >= cfg.min_steps) or step >= total_steps
            if ddp:  # every rank saw the same gathered logits; rank 0 decides all the same
                improved, stop = distributed.broadcast_flags([improved, stop])
            if improved:
                best_score, best_epoch, best_step, bad_epochs, best_loss = score, epoch, step, 0, val_loss
                best_state = copy.deepcopy(work.state_dict())
            else:
                bad_epochs += 1
            if bar is not None:
                bar.set_postfix(loss=f"{metrics['train_loss']:.4f}", val_auc=f"{val_auc:.4f}")
            if self.callback is not None and main:
                self.callback(epoch, {k: v for k, v in metrics.items() if k not in ("epoch", "step")})
            if stop:
                break
        if bar is not None:
            bar.close()
        if X_val is None:
            best_state, best_score = copy.deepcopy(work.state_dict()), math.nan
            best_epoch, best_step = len(history), step
        module.load_state_dict(best_state)
        module.eval()
        return TrainResult(module=module, best_epoch=best_epoch, best_score=float(best_score), history=history,
                           best_step=best_step, steps=step)
