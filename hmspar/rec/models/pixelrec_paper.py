"""The seed-004 recommender as its source describes it: a *pointwise* user-item scorer, not a sequential model.

For one (user, item) pair the model builds five tokens of width ``d``:

* the user's ID embedding,
* the item's ID embedding,
* the item's picture features: frozen features projected by ``Linear -> ReLU -> Dropout``,
* the item's text features: the frozen MiniLM sentence embedding (standardised on training items), projected
  the same way,
* the item's numerical features (log price, standardised on training items), projected the same way.

A multi-head self-attention layer mixes the five tokens (no residual, as in the source). The five outputs are
concatenated, and an MLP (``fusion_hidden``, each ``Linear -> ReLU -> Dropout -> BatchNorm``) ends in one logit; the
source's sigmoid is folded into the loss (``BCEWithLogits``), and the logit ranks items exactly as the
probability would.

Training (the source's recipe, under the lab's step budget): every training interaction ``(user, item)`` is a
positive; each positive gets ``n_negatives`` items drawn uniformly from the catalogue by a seeded
``torch.Generator`` (a draw equal to the positive is ignored); binary cross-entropy; AdamW with decoupled weight
decay, gradient clipping, ``ReduceLROnPlateau`` on the validation NDCG@10 (factor 0.5, patience 2 evaluations)
and early stopping on it, the best state restored. Steps, evaluation, patience and the validation subset follow
:class:`~hmspar.rec.train.RecTrainConfig` as for every torch recommender.

Deviations from the source, each forced by the lab and kept visible:

* **Frozen picture features**: no hub weights here. ``vision: descriptor`` uses the fixed 88-d style
  descriptor of :func:`common.style_descriptor`; ``vision: weights`` reads a local ``(n_items + 1, D)`` float
  array (``.npy``) of frozen picture features at ``vision_features`` (for instance from a picture encoder the
  lab pretrains), with a clear error when the file is absent or mis-shaped.
* **Unseen IDs**: the source fits its ID encoders on the whole log, so an item first bought in the test window
  still has a (never trained) random embedding. Here an item or a user without a training interaction maps to
  row 0, a zero vector: it is scored from its content alone, which is the cold-item task the source evaluates.
* **No CLIP contrastive term**: the source's optional picture-text alignment needs CLIP's text tower; MiniLM
  and the frozen picture features have no shared space to align, so the term is left out.
* **Full-catalogue ranking**: the evaluator ranks every item, so ``score`` runs the network on every
  (user, item) pair. Item tokens and their attention projections are computed once per call; the pairwise
  part (attention weights, output projection, MLP) runs in chunks of ``score_chunk`` items.

Size: the source uses ``d = 128``, 4 heads, ``fusion_hidden = [512, 256, 128]``, dropout 0.3, attention dropout 0.1;
the lab's defaults (``params.yaml``) may be smaller, to fit the 2-core budget of full-catalogue ranking.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmspar.errors import HmsparError
from hmspar.rec.base import Histories, ItemFeatures, user_rows
from hmspar.rec.models.common import check_vision, frozen_tables, train_items
from hmspar.rec.train import RecTrainConfig, TorchSeqRecommender

CONTENT = ("image", "text", "price")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of the seed-004 pointwise recommender (``rec.recommenders.pixelrec_paper``).

    Parameters
    ----------
    inputs : list of str
        Item tokens among ``id, image, text, price``; ``id`` adds the user and item ID tokens. At least one
        token; absent ones are left out of the attention and the MLP.
    d : int
        Token width (the source: 128).
    heads : int
        Attention heads (the source: 4); must divide ``d``.
    dropout, attention_dropout : float
        Dropout of the projections and the MLP (the source: 0.3), and of the attention weights (0.1).
    fusion_hidden : list of int
        MLP widths (the source: 512, 256, 128).
    batch_norm : bool
        BatchNorm after each MLP layer (the source: on).
    vision : {"descriptor", "weights"}
        Frozen picture features: the fixed style descriptor, or a local feature file (``vision_features``).
    vision_features : str or None
        Path of an ``(n_items + 1, D)`` ``.npy`` array of frozen picture features (``vision: weights``).
    n_negatives : int
        Negatives drawn per positive.
    negatives : {"catalogue", "train_items"}
        Where negatives are drawn from: every catalogue item (the source), or only the items that occur in
        the training histories. Under the lab's split the catalogue also holds items first sold after the
        training period; drawn as negatives, they teach the model that an unseen (zero) item ID means "not
        bought", and push exactly the new items down.
    id_dropout : float
        Probability that an item's ID token is zeroed in a training pair (0: the source), so that the network
        also learns to score an item from its content alone, as it must for an item without training
        interactions.
    lr_patience : int
        Evaluations without a better validation NDCG@10 before ``ReduceLROnPlateau`` halves the learning
        rate (the source: 2).
    score_chunk : int
        Items scored per forward pass at ranking time (memory only; scores do not depend on it).
    train : RecTrainConfig
        The lab's loop settings (steps, evaluation, patience, batch size = positives per step, lr, weight
        decay, clipping, device, threads); ``max_len`` and the window settings are not used.
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id", "image", "text", "price"])
    d: int = 64
    heads: int = 4
    dropout: float = 0.3
    attention_dropout: float = 0.1
    fusion_hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 128, 64])
    batch_norm: bool = True
    vision: Literal["descriptor", "weights"] = "descriptor"
    vision_features: str | None = None
    n_negatives: int = 4
    negatives: Literal["catalogue", "train_items"] = "catalogue"
    id_dropout: float = 0.0
    lr_patience: int = 2
    score_chunk: int = 1024
    train: RecTrainConfig = dataclasses.field(default_factory=RecTrainConfig)

    def __post_init__(self) -> None:
        known = ("id",) + CONTENT
        bad = [m for m in self.inputs if m not in known]
        if bad or not self.inputs:
            raise ValueError(f"inputs must be a non-empty list among {', '.join(known)}, got {self.inputs!r}")
        if self.d < 1 or self.heads < 1 or self.d % self.heads:
            raise ValueError(f"d must be a positive multiple of heads, got d={self.d!r}, heads={self.heads!r}")
        if not self.fusion_hidden or min(self.fusion_hidden) < 1:
            raise ValueError(f"fusion_hidden must be a non-empty list of positive integers, got {self.fusion_hidden!r}")
        if self.negatives not in ("catalogue", "train_items"):
            raise ValueError(f"negatives must be 'catalogue' or 'train_items', got {self.negatives!r}")
        for name in ("dropout", "attention_dropout", "id_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        check_vision(self.vision, self.vision_features)
        for name in ("n_negatives", "lr_patience", "score_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")


class TokenAttention(nn.Module):
    """Multi-head self-attention over a few tokens, with the projections exposed so that item tokens are
    projected once per catalogue at ranking time (``qkv`` then ``attend``); the source's layer, no residual."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.in_proj = nn.Linear(d, 3 * d)
        self.out_proj = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def qkv(self, tok: torch.Tensor) -> torch.Tensor:
        """(..., T, d) tokens -> (..., T, 3d) queries, keys and values."""
        return self.in_proj(tok)

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """(N, T, 3d) -> (N, T, d) attended tokens."""
        N, T, _ = qkv.shape
        q, k, v = qkv.view(N, T, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)   # each (N, h, T, dh)
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.dh), -1)  # (N, h, T, T)
        out = (self.drop(w) @ v).transpose(1, 2).reshape(N, T, -1)           # (N, T, d)
        return self.out_proj(out)

    def forward(self, tok: torch.Tensor) -> torch.Tensor:
        return self.attend(self.qkv(tok))


class PointwiseNet(nn.Module):
    """User and item tokens -> self-attention -> MLP -> one logit per (user, item) pair."""

    def __init__(self, cfg: Config, n_users: int, n_items: int, vision: np.ndarray | None,
                 text: np.ndarray | None, price: np.ndarray | None) -> None:
        super().__init__()
        d = cfg.d
        self.use_id = "id" in cfg.inputs
        self.n_items = n_items
        proj = (lambda n_in: nn.Sequential(nn.Linear(n_in, d), nn.ReLU(), nn.Dropout(cfg.dropout)))
        self.item_tables: list[str] = []
        for name, table in (("vision", vision), ("text", text), ("price", price)):
            if table is not None:
                self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(table, dtype=np.float32)))
                setattr(self, f"{name}_proj", proj(table.shape[1]))
                self.item_tables.append(name)
        if self.use_id:
            # row 0: unknown user / item (no training interaction) -> a zero vector that stays zero
            self.user_emb = nn.Embedding(n_users + 1, d, padding_idx=0)
            self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=0)
            for emb in (self.user_emb, self.item_emb):
                nn.init.xavier_uniform_(emb.weight)
                with torch.no_grad():
                    emb.weight[0].zero_()
        self.n_tokens = 2 * self.use_id + len(self.item_tables)
        self.attn = TokenAttention(d, cfg.heads, cfg.attention_dropout)
        layers: list[nn.Module] = []
        width = self.n_tokens * d
        for h in cfg.fusion_hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(cfg.dropout)]
            if cfg.batch_norm:
                layers.append(nn.BatchNorm1d(h))
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def item_tokens(self, items: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        """(N,) catalogue rows and their ID rows (0 = unseen) -> (N, T_item, d) item tokens."""
        toks = [self.item_emb(item_ids)] if self.use_id else []
        toks += [getattr(self, f"{name}_proj")(getattr(self, name)[items]) for name in self.item_tables]
        return torch.stack(toks, 1)

    def logits_from_qkv(self, user_qkv: torch.Tensor | None, item_qkv: torch.Tensor) -> torch.Tensor:
        """(N, 3d) user and (N, T_item, 3d) item projections of N pairs -> (N,) logits."""
        qkv = item_qkv if user_qkv is None else torch.cat([user_qkv[:, None], item_qkv], 1)  # (N, T, 3d)
        return self.mlp(self.attn.attend(qkv).flatten(1))[:, 0]                              # (N,)

    def rank_tables(self, item_qkv: torch.Tensor, user_qkv: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Per-item and per-user parts of the first MLP layer, for :meth:`rank_logits` (eval mode).

        The first MLP layer reads the attention outputs ``y_t = W_o o_t + b_o`` of every token ``t``, and
        ``o_t`` mixes the value vectors ``v_s`` with the pair's attention weights ``w_ts`` (per head). Both
        maps are linear, so ``W1 [y_1 .. y_T] = sum_{t,h,s} w^h_ts (A_th v^h_s) + const`` with
        ``A_th = W1_t W_o^h``: the vectors ``A_th v^h_s`` depend on one token's owner only (an item, or a
        user), so they are computed once per item and once per user, and a pair costs a weighted sum.
        """
        a = self.attn
        H, dh = a.h, a.dh
        d = H * dh
        T = self.n_tokens
        w1 = self.mlp[0].weight                                               # (k, T*d)
        A = torch.einsum("ktd,dhe->thke", w1.view(-1, T, d), a.out_proj.weight.view(d, H, dh))  # (T, H, k, dh)

        def parts(qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            q, k, v = qkv.unflatten(-1, (3, H, dh)).unbind(-3)                 # each (..., S, H, dh)
            return q, k, torch.einsum("thke,nshe->nsthk", A, v)               # (N, S, T, H, k)

        iq, ik, ip = parts(item_qkv)                                          # item tokens (C, S_i, ...)
        const = (w1.view(-1, T, d) @ a.out_proj.bias).sum(1) + self.mlp[0].bias  # (k,)
        tables = {"iq": iq, "ik": ik, "ip": ip, "const": const}
        if user_qkv is not None:
            uq, uk, up = parts(user_qkv[:, None])                             # (B, 1, ...)
            tables.update(uq=uq[:, 0], uk=uk[:, 0], up=up[:, 0])
        return tables

    def rank_logits(self, tab: dict[str, torch.Tensor], items: slice, users: slice | None) -> torch.Tensor:
        """(nb, C) logits of the users ``users`` against the items ``items`` from :meth:`rank_tables`."""
        iq, ik, ip = tab["iq"][items], tab["ik"][items], tab["ip"][items]     # (C, S_i, H, dh), ..., (C, S_i, T, H, k)
        C, S_i, H, dh = iq.shape
        scale = 1.0 / math.sqrt(dh)
        ii = torch.einsum("cthe,cshe->chts", iq, ik) * scale                  # item -> item (C, H, S_i, S_i)
        if users is None:
            w = torch.softmax(ii, -1)                                         # (C, H, T, S)
            z = torch.einsum("chts,csthk->ck", w, ip)[None] + tab["const"]    # (1, C, k)
        else:
            uq, uk, up = tab["uq"][users], tab["uk"][users], tab["up"][users]  # (nb, H, dh), ..., (nb, T, H, k)
            nb = uq.shape[0]
            uu = (uq * uk).sum(-1)[:, None, :, None, None] * scale           # user -> user (nb, 1, H, 1, 1)
            ui = torch.einsum("bhe,cshe->bchs", uq, ik)[:, :, :, None] * scale  # user -> items (nb, C, H, 1, S_i)
            iu = torch.einsum("cthe,bhe->bcht", iq, uk)[..., None] * scale    # items -> user (nb, C, H, S_i, 1)
            top = torch.cat([uu.expand(-1, C, -1, -1, -1), ui], -1)           # query: the user token
            bottom = torch.cat([iu, ii[None].expand(nb, -1, -1, -1, -1)], -1)  # queries: the item tokens
            w = torch.softmax(torch.cat([top, bottom], -2), -1)               # (nb, C, H, T, T)
            # the item values: per item, a (nb, H*T*S_i) @ (H*T*S_i, k) product
            wi = w[..., 1:].permute(1, 0, 2, 3, 4).reshape(C, nb, -1)         # (C, nb, H*T*S_i)
            pi = ip.permute(0, 3, 2, 1, 4).reshape(C, -1, ip.shape[-1])       # (C, H*T*S_i, k)
            z = torch.bmm(wi, pi).transpose(0, 1)                             # (nb, C, k)
            # the user's value: per user, a (C, H*T) @ (H*T, k) product
            wu = w[..., 0].reshape(nb, C, -1)                                 # (nb, C, H*T)
            pu = up.permute(0, 2, 1, 3).reshape(nb, -1, up.shape[-1])         # (nb, H*T, k)
            z = z + torch.bmm(wu, pu) + tab["const"]
        n, C_, k = z.shape
        return self.mlp[1:](z.reshape(n * C_, k)).view(n, C_)                 # ReLU, BatchNorm, later layers

    def forward(self, users: torch.Tensor, items: torch.Tensor, item_ids: torch.Tensor) -> torch.Tensor:
        """(N,) user rows, catalogue items and item ID rows -> (N,) logits."""
        item_qkv = self.attn.qkv(self.item_tokens(items, item_ids))
        user_qkv = self.attn.qkv(self.user_emb(users)) if self.use_id else None
        return self.logits_from_qkv(user_qkv, item_qkv)


class PixelRecPaper(TorchSeqRecommender):
    """The seed-004 pointwise multimodal recommender (see the module docstring)."""

    Config = Config
    name = "pixelrec_paper"

    def __init__(self, cfg: Any, seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.users_: np.ndarray = np.zeros(0, dtype=np.int64)
        self.item_ids_: np.ndarray | None = None

    def build_module(self, train: Histories, items: ItemFeatures) -> nn.Module:
        cfg = self.cfg
        known = train_items(train, items.n_items)
        fit_rows = np.flatnonzero(known)
        if fit_rows.size == 0:
            raise HmsparError("pixelrec_paper: the training histories hold no item")
        tables = frozen_tables(items, fit_rows, cfg.inputs, cfg.vision, cfg.vision_features)
        self.item_ids_ = np.where(known, np.arange(known.size), 0).astype(np.int64)
        return PointwiseNet(cfg, self.users_.size, items.n_items, tables.get("image"), tables.get("text"),
                            tables.get("price"))

    # -- data ---------------------------------------------------------------------------------------
    def _user_rows(self, users: np.ndarray | None, n: int) -> np.ndarray:
        """(n,) embedding rows of log users (0 for users without a training interaction)."""
        if users is None:
            raise HmsparError("pixelrec_paper: histories carry no user indices (it scores users by their ID)")
        users = np.asarray(users, dtype=np.int64)
        if users.shape != (n,):
            raise HmsparError(f"pixelrec_paper: expected {n} user indices, got shape {users.shape}")
        return user_rows(self.users_, users) + 1                           # row 0: no training interaction

    def fit(self, train: Histories, items: ItemFeatures, val: Histories | None = None) -> "PixelRecPaper":
        """Train on every training interaction as a positive against sampled negatives; ``val`` (validation
        targets) drives the learning-rate schedule, early stopping and the choice of the kept state only."""
        self.n_items = items.n_items
        if val is not None and val.targets is None:
            raise HmsparError("pixelrec_paper.fit: validation histories carry no targets")
        if train.users is None:
            raise HmsparError("pixelrec_paper.fit: training histories carry no user indices")
        seqs = train.whole()
        lengths = seqs.lengths
        self.users_ = np.unique(np.asarray(train.users, dtype=np.int64)[lengths > 0])  # sorted; row = position + 1
        pos_users = self._user_rows(np.repeat(np.asarray(train.users), lengths), int(lengths.sum()))
        pos_items = np.asarray(seqs.items, dtype=np.int64)
        if pos_items.size == 0:
            raise HmsparError("pixelrec_paper.fit: the training histories hold no interaction")
        self._fit_with(train, items, lambda module, device: self._fit_pairs(module, pos_users, pos_items, val, device))
        return self

    def _fit_pairs(self, module: PointwiseNet, pos_users: np.ndarray, pos_items: np.ndarray,
                   val: Histories | None, device: torch.device) -> None:
        cfg, K = self.train_cfg, self.cfg.n_negatives
        module = module.to(device)
        item_ids = torch.from_numpy(self.item_ids_).to(device)
        pool = None
        if self.cfg.negatives == "train_items":
            pool = torch.from_numpy(np.flatnonzero(self.item_ids_)).to(device)          # items seen in training
        id_drop = self.cfg.id_dropout
        gen = torch.Generator().manual_seed(self.seed)
        neg_gen = torch.Generator(device=device).manual_seed(self.seed + 1)
        u_all, i_all = torch.from_numpy(pos_users), torch.from_numpy(pos_items)
        n, bs = u_all.numel(), cfg.batch_size

        def losses():
            """One BCE per step: a batch of positives (a seeded permutation per pass) and K negatives each."""
            while True:
                perm = torch.randperm(n, generator=gen)
                for a in range(0, n, bs):
                    rows = perm[a:a + bs]
                    u = u_all[rows].to(device)
                    i = i_all[rows].to(device)
                    if pool is None:
                        neg = torch.randint(1, self.n_items + 1, (rows.numel(), K), generator=neg_gen, device=device)
                    else:
                        neg = pool[torch.randint(0, pool.numel(), (rows.numel(), K), generator=neg_gen, device=device)]
                    users = torch.cat([u, u.repeat_interleave(K)])
                    cand = torch.cat([i, neg.reshape(-1)])
                    labels = torch.cat([torch.ones_like(i, dtype=torch.float32),
                                        torch.zeros(neg.numel(), dtype=torch.float32, device=device)])
                    weight = torch.cat([torch.ones_like(labels[:i.numel()]),
                                        (neg != i[:, None]).reshape(-1).float()])  # accidental hits ignored
                    ids = item_ids[cand]
                    if id_drop > 0:
                        ids = torch.where(torch.rand(ids.shape, generator=neg_gen, device=device) < id_drop,
                                          torch.zeros_like(ids), ids)
                    logits = module(users, cand, ids)
                    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
                    yield (bce * weight).sum() / weight.sum()

        plateau = (lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5,
                                                                          patience=self.cfg.lr_patience))
        self._run_steps(module, losses(), math.ceil(n / bs), val, device, scheduler_factory=plateau)

    # -- score --------------------------------------------------------------------------------------
    def _score(self, histories: Histories, device: torch.device) -> np.ndarray:
        module: PointwiseNet = self.module_
        module.eval()
        B = len(histories)
        users = torch.from_numpy(self._user_rows(histories.users, B)).to(device)
        out = np.empty((B, self.n_items + 1), dtype=np.float32)
        chunk = self.cfg.score_chunk
        with torch.no_grad():
            cat = torch.arange(1, self.n_items + 1, device=device)
            item_qkv = module.attn.qkv(module.item_tokens(cat, torch.from_numpy(self.item_ids_).to(device)[cat]))
            user_qkv = module.attn.qkv(module.user_emb(users)) if module.use_id else None
            tab = module.rank_tables(item_qkv, user_qkv)
            per_batch = max(1, (1 << 17) // chunk)  # users per block: about 128k pairs at a time
            for a in range(0, B, per_batch):
                ub = slice(a, min(B, a + per_batch))
                for c in range(0, cat.numel(), chunk):
                    ib = slice(c, min(cat.numel(), c + chunk))
                    logits = module.rank_logits(tab, ib, ub if module.use_id else None)
                    out[ub, 1 + ib.start:1 + ib.stop] = logits.expand(ub.stop - ub.start, -1).cpu().numpy()
        out[:, 0] = -np.inf
        return out
