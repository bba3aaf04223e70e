"""ModernNCA (Ye et al., "Revisiting Nearest Neighbor for Tabular Data: A Deep Tabular Baseline Two
Decades Later", ICLR 2025): a learned embedding in which a soft nearest-neighbour vote classifies.

Implemented from the paper's description, on the flattened table of
:func:`hmspar.models.tabular.flatten_inputs` (default ``inputs: [series, static]``):

* **Embedding** ``phi``: optional PLR numeric embeddings (Gorishniy et al. 2022: per feature,
  ``ReLU(Linear([cos(2 pi c x), sin(2 pi c x)]))`` with learned frequencies ``c ~ N(0, sigma)``) for the
  non-binary columns, binary columns (mask, one-hot) passed through as they are; then ``Linear(d_in, dim)``
  followed by ``n_blocks`` residual blocks ``BatchNorm-Linear-ReLU-Dropout-Linear``.
* **Prediction**: ``p(y = k | x) = sum_{j: y_j = k} exp(-d(phi(x), phi(x_j)) / T) / sum_j exp(-d(...) / T)``
  over the candidate set, i.e. a softmax over negative distances (``distance: euclidean`` as the paper
  recommends, or the classic NCA ``sqeuclidean``) giving distance-weighted label averages.
* **Stochastic neighbourhood sampling**: every training batch uses a fresh random ``sample_rate`` share of
  the training rows as candidates, never the batch's own rows (so no query votes for itself); queries and
  candidates are embedded in one pass (shared batch-norm statistics).
* **Inference**: the whole training set is the candidate set; its embeddings are computed once per
  ``predict_proba`` call and queries are processed in ``train.eval_batch_size`` batches.

Why a dedicated training loop rather than the shared :class:`~hmspar.training.trainer.Trainer`: the
Trainer's ``forward(batch)`` sees only the batch's modality arrays, while a ModernNCA step also needs the
training labels and the batch's row indices (to sample candidates that exclude the queries). The loop
below mirrors the Trainer otherwise and reads the same nested ``train`` settings: AdamW, cosine schedule,
gradient clipping, early stopping on validation ROC-AUC with ``patience`` and a deep copy of the best
weights, balanced class weights from the training labels, ``torch.Generator``/``fork_rng`` seeded from the
run seed. ``train.loss: bce`` is the negative log-likelihood of the neighbour vote (equal to BCE for two
classes), ``focal`` its focal version; ``train.amp`` is ignored.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from hmspar import threads
from hmspar.errors import HmsparError
from hmspar.models.tabular import check_inputs, flatten_inputs
from hmspar.models.torch_base import TorchClassifier, stratified_holdout
from hmspar.device import resolve_device
from hmspar.training.trainer import TrainConfig, batch_slices, validation_auc


def _default_inputs() -> list[str]:
    return ["series", "static"]


def _default_train() -> TrainConfig:
    return TrainConfig(epochs=100, batch_size=512, eval_batch_size=1024, lr=1e-3, weight_decay=1e-5, patience=10)


@dataclasses.dataclass(frozen=True)
class ModernNCAConfig:
    """``baselines.modern_nca`` settings.

    Parameters
    ----------
    inputs : list of str
        Modalities flattened into the table (see :mod:`hmspar.models.tabular`).
    include_mask : bool
        Include the activity mask columns with the series.
    dim : int
        Embedding width (the space distances are measured in).
    d_block : int
        Hidden width of each residual block.
    n_blocks : int
        Residual blocks after the first linear layer (0: a linear embedding, as in classic NCA).
    dropout : float
        Dropout inside the blocks.
    temperature : float
        ``T`` in ``softmax(-d / T)``.
    distance : {"euclidean", "sqeuclidean"}
        Distance between embeddings.
    sample_rate : float
        Share of the training rows used as candidates in each training batch.
    num_embeddings : {"plr", "none"}
        PLR embeddings of the non-binary columns, or raw values.
    n_frequencies, frequency_scale, d_embedding : int, float, int
        PLR: frequencies per feature, std of their initialisation, output width per feature.
    train : TrainConfig
        Optimisation settings (nested ``train`` section).
    """

    inputs: list[str] = dataclasses.field(default_factory=_default_inputs)
    include_mask: bool = True
    dim: int = 128
    d_block: int = 256
    n_blocks: int = 1
    dropout: float = 0.1
    temperature: float = 1.0
    distance: Literal["euclidean", "sqeuclidean"] = "euclidean"
    sample_rate: float = 0.3
    num_embeddings: Literal["plr", "none"] = "plr"
    n_frequencies: int = 16
    frequency_scale: float = 0.1
    d_embedding: int = 8
    train: TrainConfig = dataclasses.field(default_factory=_default_train)

    def __post_init__(self) -> None:
        check_inputs(self.inputs)
        for name in ("dim", "d_block", "n_frequencies", "d_embedding"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be a positive integer, got {getattr(self, name)!r}")
        if self.n_blocks < 0:
            raise ValueError(f"n_blocks: must be non-negative, got {self.n_blocks!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: must be positive, got {self.temperature!r}")
        if not 0.0 < self.sample_rate <= 1.0:
            raise ValueError(f"sample_rate: must be in (0, 1], got {self.sample_rate!r}")
        if not self.frequency_scale > 0:
            raise ValueError(f"frequency_scale: must be positive, got {self.frequency_scale!r}")
        if self.distance not in ("euclidean", "sqeuclidean"):
            raise ValueError(f"distance: expected 'euclidean' or 'sqeuclidean', got {self.distance!r}")
        if self.num_embeddings not in ("plr", "none"):
            raise ValueError(f"num_embeddings: expected 'plr' or 'none', got {self.num_embeddings!r}")


# ------------------------------------------------------------------------------------------ networks
class PLREmbedding(nn.Module):
    """Periodic-Linear-ReLU embedding of each of ``n_features`` scalar columns, (B, F) -> (B, F * d).

    Parameters
    ----------
    n_features : int
        Columns embedded.
    n_frequencies : int
        ``k`` learned frequencies per column.
    frequency_scale : float
        Std of the frequencies' normal initialisation.
    d_embedding : int
        Output width per column (a separate linear map per column).
    """

    def __init__(self, n_features: int, n_frequencies: int, frequency_scale: float, d_embedding: int) -> None:
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(n_features, n_frequencies) * frequency_scale)
        bound = 1.0 / math.sqrt(2 * n_frequencies)
        self.weight = nn.Parameter(torch.empty(n_features, 2 * n_frequencies, d_embedding).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_features, d_embedding).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = 2 * math.pi * self.frequencies[None] * x[..., None]  # (B, F) -> (B, F, k)
        v = torch.cat([torch.cos(v), torch.sin(v)], dim=-1)  # (B, F, 2k)
        h = torch.einsum("bfi,fid->bfd", v, self.weight) + self.bias  # (B, F, 2k) -> (B, F, d)
        return torch.relu(h).flatten(1)  # (B, F * d)


class ModernNCANet(nn.Module):
    """Embedding network ``phi`` and the soft nearest-neighbour vote.

    Parameters
    ----------
    numeric : np.ndarray
        (F,) bool, columns given PLR embeddings (if ``plr`` is not None); the rest are used raw.
    n_classes : int
        Number of classes ``K``.
    cfg : ModernNCAConfig
        Architecture settings.
    """

    def __init__(self, numeric: np.ndarray, n_classes: int, cfg: ModernNCAConfig) -> None:
        super().__init__()
        numeric = np.asarray(numeric, dtype=bool)
        use_plr = cfg.num_embeddings == "plr" and numeric.any()
        if not use_plr:
            numeric = np.zeros_like(numeric)
        self.register_buffer("num_idx", torch.from_numpy(np.flatnonzero(numeric)).long())
        self.register_buffer("raw_idx", torch.from_numpy(np.flatnonzero(~numeric)).long())
        self.plr = (PLREmbedding(int(numeric.sum()), cfg.n_frequencies, cfg.frequency_scale, cfg.d_embedding)
                    if use_plr else None)
        d_in = int(numeric.sum()) * cfg.d_embedding + int((~numeric).sum())
        self.linear = nn.Linear(d_in, cfg.dim)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.BatchNorm1d(cfg.dim), nn.Linear(cfg.dim, cfg.d_block), nn.ReLU(),
                          nn.Dropout(cfg.dropout), nn.Linear(cfg.d_block, cfg.dim))
            for _ in range(cfg.n_blocks)
        )
        self.n_classes = int(n_classes)
        self.temperature = float(cfg.temperature)
        self.squared = cfg.distance == "sqeuclidean"

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``phi``: (B, F) table rows -> (B, dim) embeddings."""
        parts = [x[:, self.raw_idx]]  # (B, F_raw)
        if self.plr is not None:
            parts.insert(0, self.plr(x[:, self.num_idx]))  # (B, F_num) -> (B, F_num * d_embedding)
        h = self.linear(torch.cat(parts, dim=1))  # (B, d_in) -> (B, dim)
        for block in self.blocks:
            h = h + block(h)  # (B, dim)
        return h

    def log_proba(self, q: torch.Tensor, c: torch.Tensor, c_codes: torch.Tensor) -> torch.Tensor:
        """Log class probabilities of queries from candidates' embeddings and labels.

        Parameters
        ----------
        q : (B, dim) query embeddings
        c : (M, dim) candidate embeddings
        c_codes : (M,) candidate labels in 0..K-1

        Returns
        -------
        torch.Tensor
            (B, K) log-probabilities (rows log-sum-exp to 0).
        """
        sq = (q.pow(2).sum(1, keepdim=True) + c.pow(2).sum(1)[None] - 2.0 * q @ c.T).clamp_min(0.0)  # (B, M)
        dist = sq if self.squared else torch.sqrt(sq + 1e-12)  # (B, M)
        logits = -dist / self.temperature  # (B, M)
        onehot = nn.functional.one_hot(c_codes, self.n_classes).to(logits.dtype)  # (M, K)
        # 0 where the candidate has class k, else a huge finite negative (not -inf: a class without any
        # candidate would give NaN gradients through logsumexp); (M, K)
        log_mask = (onehot - 1.0) * 1e30
        per_class = torch.logsumexp(logits[:, :, None] + log_mask[None], dim=1)  # (B, M, K) -> (B, K)
        return per_class - torch.logsumexp(logits, dim=1, keepdim=True)  # (B, K)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class log-probabilities of ``batch["table"]`` (B, F) given ``batch["candidates"]`` (M, F) and
        ``batch["candidate_codes"]`` (M,); (B, K) (usable as logits: softmax recovers the probabilities)."""
        x, cand = batch["table"], batch["candidates"]
        h = self.embed(torch.cat([x, cand], dim=0))  # (B + M, F) -> (B + M, dim)
        return self.log_proba(h[: x.shape[0]], h[x.shape[0]:], batch["candidate_codes"])  # (B, K)


# ------------------------------------------------------------------------------------------------ model
class ModernNCAModel(TorchClassifier):
    """ModernNCA on the flattened table, with its own training loop (see the module notes).

    Attributes
    ----------
    module_ : ModernNCANet
        Best-validation weights.
    candidates_ : np.ndarray
        (n_train, F) float32 training table, the candidate set at inference.
    candidate_codes_ : np.ndarray
        (n_train,) encoded training labels.
    n_features_in_ : int
        Table width ``F``.
    """

    Config = ModernNCAConfig
    name = "modern_nca"

    @classmethod
    def test_params(cls) -> dict[str, Any]:
        return {"dim": 32, "d_block": 32, "n_frequencies": 4, "d_embedding": 4, "sample_rate": 0.5,
                "train": {"epochs": 20, "batch_size": 64, "lr": 3e-3, "patience": 5, "eval_batch_size": 256,
                          "num_threads": 1}}

    def _table(self, X: dict[str, np.ndarray]) -> np.ndarray:
        return flatten_inputs(self.select_inputs(X), self.cfg.inputs, self.cfg.include_mask)

    def build_module(self, X: dict[str, np.ndarray], n_outputs: int) -> nn.Module:
        """The embedding network for training arrays ``X``; columns with more than two distinct training
        values get PLR embeddings. ``n_outputs`` is 1 for binary tasks (two classes), else ``K``."""
        table = X["table"] if "table" in X else self._table(X)
        numeric = np.array([np.unique(table[:, j]).size > 2 for j in range(table.shape[1])], dtype=bool)
        return ModernNCANet(numeric, 2 if n_outputs == 1 else n_outputs, self.cfg)

    # ------------------------------------------------------------------
    def fit(self, X, y, X_val=None, y_val=None):
        """Train the embedding with stochastic neighbourhood sampling; validation drives early stopping.

        Without ``X_val``/``y_val`` a stratified ``holdout_fraction`` of the training rows is held out.
        """
        if (X_val is None) != (y_val is None):
            raise HmsparError("ModernNCAModel: give both X_val and y_val, or neither")
        codes = self._fit_classes(y)
        table = self._table(X)
        if table.shape[0] != codes.size:
            raise HmsparError(f"ModernNCAModel: X has {table.shape[0]} rows but y has {codes.size}")
        if X_val is None:
            tr, ho = stratified_holdout(codes, self.holdout_fraction, self.seed)
            if ho.size == 0:
                raise HmsparError("ModernNCAModel: too few training rows to hold out validation data")
            table, val_table, codes, val_codes = table[tr], table[ho], codes[tr], codes[ho]
        else:
            val_table, val_codes = self._table(X_val), self._encode_labels(y_val)
        if table.shape[0] < 2:
            raise HmsparError("ModernNCAModel: needs at least two training rows")
        self.n_features_in_ = int(table.shape[1])
        cfg = self.train_config
        n_outputs = 1 if self.classes_.size == 2 else int(self.classes_.size)
        module = self.make_module({"table": table}, n_outputs)
        device = resolve_device(cfg.device)
        n_threads = threads.resolve(cfg.num_threads, "baselines.modern_nca.train.num_threads", allow_zero=True)
        with threads.limited(n_threads), \
                torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(self.seed)  # dropout; restored on leaving fork_rng
            module = self._train(module, table, codes, val_table, val_codes, device)
        self.module_ = module.cpu().eval()
        self.candidates_ = table
        self.candidate_codes_ = codes
        return self

    def _train(self, module: ModernNCANet, table: np.ndarray, codes: np.ndarray, val_table: np.ndarray,
               val_codes: np.ndarray, device: torch.device) -> ModernNCANet:
        cfg = self.train_config
        k = int(self.classes_.size)
        n = codes.size
        module = module.to(device)
        x_all = torch.from_numpy(table).to(device)
        y_all = torch.from_numpy(codes).to(device)
        counts = np.bincount(codes, minlength=k).astype(np.float64)
        class_w = (n / (k * np.maximum(counts, 1.0))) if cfg.class_weight else np.ones(k)
        class_w_t = torch.tensor(class_w, dtype=torch.float32, device=device)
        params = [p for p in module.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        slices = batch_slices(n, cfg.batch_size)
        total_steps = max(1, cfg.epochs * len(slices))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps)))
        generator = torch.Generator().manual_seed(self.seed)
        n_cand = max(1, int(round(self.cfg.sample_rate * n)))
        use_auc = np.unique(val_codes).size == k

        best_score, best_epoch, best_state, bad = -math.inf, 0, None, 0
        self.history_ = []
        epochs: Any = range(1, cfg.epochs + 1)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = epochs = tqdm(epochs, desc="epochs", leave=False)
        for epoch in epochs:
            module.train()
            perm = torch.randperm(n, generator=generator)
            total, seen = 0.0, 0
            for a, b in slices:
                idx = perm[a:b]
                # candidates: a random share of the rows outside this batch
                pool = torch.ones(n, dtype=torch.bool)
                pool[idx] = False
                pool_idx = torch.nonzero(pool).squeeze(1)
                cand = pool_idx[torch.randperm(pool_idx.numel(), generator=generator)[: min(n_cand, pool_idx.numel())]]
                if cand.numel() == 0:
                    continue
                idx_d, cand_d = idx.to(device), cand.to(device)
                log_p = module({"table": x_all[idx_d], "candidates": x_all[cand_d],
                                "candidate_codes": y_all[cand_d]})  # (B, K)
                target = y_all[idx_d]
                # queries whose class has no candidate this batch (possible for rare classes) are skipped
                present = torch.bincount(y_all[cand_d], minlength=k) > 0
                valid = present[target].to(log_p.dtype)  # (B,)
                nll = -log_p.gather(1, target[:, None]).squeeze(1).clamp_max(1e4)  # (B,)
                if cfg.loss == "focal":
                    nll = (1.0 - torch.exp(-nll)).pow(cfg.focal_gamma) * nll
                loss = (valid * class_w_t[target] * nll).sum() / valid.sum().clamp_min(1.0)
                if not torch.isfinite(loss):
                    raise HmsparError(f"ModernNCAModel: loss became {loss.item()} at epoch {epoch}; "
                                      "try a lower train.lr or a higher temperature")
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                optimiser.step()
                scheduler.step()
                total += float(loss.detach()) * (b - a)
                seen += b - a
            log_p_val = self._log_proba(module, table, codes, val_table, device)
            val_loss = float(-np.mean(log_p_val[np.arange(val_codes.size), val_codes]))
            val_auc = validation_auc(val_codes, np.exp(log_p_val)) if use_auc else float("nan")
            metrics = {"train_loss": total / max(seen, 1), "val_loss": val_loss, "val_roc_auc": val_auc,
                       "lr": float(optimiser.param_groups[0]["lr"])}
            self.history_.append({"epoch": epoch, **metrics})
            score = val_auc if use_auc else -val_loss
            if not math.isfinite(score):
                score = -math.inf
            if best_state is None or score > best_score:
                best_score, best_epoch, bad = score, epoch, 0
                best_state = copy.deepcopy(module.state_dict())
            else:
                bad += 1
            if bar is not None:
                bar.set_postfix(loss=f"{metrics['train_loss']:.4f}", val_auc=f"{val_auc:.4f}")
            if self.callback is not None:
                self.callback(epoch, metrics)
            if bad >= cfg.patience:
                break
        if bar is not None:
            bar.close()
        module.load_state_dict(best_state)
        self.best_epoch_ = best_epoch
        return module.eval()

    @torch.no_grad()
    def _log_proba(self, module: ModernNCANet, cand_table: np.ndarray, cand_codes: np.ndarray,
                   table: np.ndarray, device: torch.device) -> np.ndarray:
        """(n, K) float64 log-probabilities of ``table`` rows with every candidate (eval mode, batched)."""
        module.eval()
        bs = self.train_config.eval_batch_size
        cand = torch.cat([module.embed(torch.from_numpy(cand_table[a:b]).to(device))
                          for a, b in batch_slices(cand_table.shape[0], bs)])  # (M, dim)
        codes = torch.from_numpy(cand_codes).to(device)
        out = [module.log_proba(module.embed(torch.from_numpy(table[a:b]).to(device)), cand, codes).double().cpu()
               for a, b in batch_slices(table.shape[0], bs)]  # (B, K) each
        return torch.cat(out).numpy() if out else np.zeros((0, int(self.classes_.size)))

    def predict_proba(self, X):
        """(n, K) class probabilities: soft vote of the whole training set in the learned embedding."""
        self._check_fitted()
        if self.module_ is None:
            raise HmsparError("ModernNCAModel: predict_proba called before fit")
        table = self._table(X)
        if table.shape[1] != self.n_features_in_:
            raise HmsparError(f"ModernNCAModel: X gives {table.shape[1]} features, the model was fitted on "
                              f"{self.n_features_in_}")
        device = resolve_device(self.train_config.device)
        module = self.module_.to(device)
        try:
            log_p = self._log_proba(module, self.candidates_, self.candidate_codes_, table, device)
        finally:
            self.module_ = module.cpu()
        proba = np.exp(log_p - log_p.max(axis=1, keepdims=True))
        return proba / proba.sum(axis=1, keepdims=True)
