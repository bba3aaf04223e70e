"""MTSTRec as its source builds it (seed 001), under the recommender contract.

The lab's :mod:`~hmspar.rec.models.mtstrec` keeps MTSTRec's name and its time-aligned shared token but runs
causal streams, reads the user state off the shared token and trains every position with a full-catalogue
cross-entropy. This module follows the public code (``model.py``, ``module.py``, ``trainer.py``), read beside the
seed document; ``../shared/rec_fidelity.md`` lists what it does.

**Streams.** One per item modality in ``inputs``: the item ID (a learned embedding), the picture style (the
frozen picture features, ``vision``, through a linear layer), the text (the frozen MiniLM embedding through a
linear layer) and the price (the standardised log price, one number copied into all ``d`` channels, as the
source does). Each stream appends a learned **cloze token** after the history, adds its own learned position
embedding (the cloze at the last position, the history right-aligned before it) and runs ``layers[m]``
**bidirectional** transformer blocks of its own (``heads[m]``, feed-forward ``ff[m] * d``, ``hidden_dropout[m]``);
padded positions are masked as keys.

**Time-aligned shared tokens (TST).** A learned token per position (the cloze position included). In each of
the ``fusion_layers`` last layers, every stream's next block reads ``[its tokens ; the TSTs]`` under
:func:`fusion_mask`: TST ``t`` attends to the stream's token ``t`` and to itself; the stream's tokens attend to
each other and, from the second fusion layer on, token ``t`` also to TST ``t``. The TST outputs of the streams'
blocks are averaged into the next layer's TSTs. ``tst: false`` drops the shared tokens (the fusion layers are
then plain self-attention layers and the streams never meet).

**User and candidates.** After a final layer norm, each stream's cloze output goes through that stream's
linear head (``out_dim`` numbers; the price head gives one), and the heads' outputs are concatenated. A
candidate item goes through the *same* heads from its stream inputs (ID embedding, projected picture and
text, copied price), and the score is the **cosine** of the two vectors: an item with no training interaction
is ranked by its picture, text and price (its ID row is untrained).

**Training** (the source's): for each example the next item is the positive and ``n_negatives`` items the
negatives; the loss is the binary cross-entropy of ``sigmoid(cosine)``, the positive weighted as much as all
negatives together; the candidates' vectors are computed without gradient, as in the source. Two switches,
off by default, depart from the source to probe its objective: ``target_grad`` lets the gradient reach the
candidates' vectors, and ``temperature`` divides the cosine inside the sigmoid; a third, ``loss: softmax``,
replaces the sampled BCE by the full-catalogue cross-entropy that the lab's full ranking asks for. Examples are
RecBole-style prefixes (``train.windows: prefixes``): the cloze token reads the whole history, both ways, so
only the last position of an example can be trained.

Where this differs from the source, and why:

* **one positive**: the source's positives are all items of the next purchase session (a basket); the lab's
  logs give one next interaction per example;
* **negatives** are drawn afresh each step (the source fixes them per user): ``negatives: on_sale`` draws
  them uniformly from the items on sale at the history's last interaction (arrived by then: the catalogue's
  date, else the first training interaction), the lab's reading of the source's "products on sale in the
  purchase month" without reading the time of the interaction being predicted; ``catalogue`` draws from
  every item seen in training;
* **no prompt stream**: the source mixes several LLM-written texts per item by a learned gate; the lab's
  items carry one text;
* **no hub weights**: the picture features are the fixed style descriptor or a local ``.npy`` array
  (``vision``), not VGG Gram features; the text is MiniLM (384-d), not a 4096-d LLM embedding;
* **sizes** for two CPU cores: ``d`` 64 rather than 512 (heads and feed-forward widths scaled alike);
  max length 20 as the source; AdamW with weight decay 5e-6 (the source's Adam adds it to the gradient) and no
  StepLR schedule; the lab's step budget and early stopping on validation NDCG@10 (the source: NDCG@5);
* the source's last-item style zeroing (a defect the fidelity note lists) is not reproduced.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmspar.errors import HmsparError
from hmspar.rec.base import Histories, ItemFeatures
from hmspar.rec.models.common import (
    check_prefix_training,
    check_vision,
    fast_dropout,
    frozen_tables,
    in_length_groups,
    last_target,
    train_items,
)
from hmspar.rec.train import RecTrainConfig, TorchSeqRecommender, item_arrivals

#: The item streams of the source (``image`` is its picture style), in the source's order.
STREAMS = ("id", "image", "text", "price")

#: Length groups the encoders run a batch in (:func:`~hmspar.rec.models.common.length_groups`): a row's vector
#: does not depend on them (only the speed and the dropout draws do).
LENGTH_GROUPS = 4


@dataclasses.dataclass(frozen=True)
class Config:
    """MTSTRec as published (``rec.recommenders.mtstrec_paper``).

    Parameters
    ----------
    inputs : list of str
        Streams, a subset of ``id, image, text, price``.
    tst : bool
        Fuse the streams with time-aligned shared tokens (False: the streams never meet).
    d : int
        Token width (source 512).
    layers, heads : dict of str to int
        Each stream's own bidirectional blocks and attention heads (source ID 2/4, style 4/8, text 2/8,
        price 2/1).
    ff : dict of str to int
        Each stream's feed-forward width in multiples of ``d`` (source 1, 4, 2, 1).
    hidden_dropout : dict of str to float
        Each stream's feed-forward dropout (source 0.1, 0.2, 0.3, 0.2).
    fusion_layers : int
        Last blocks of every stream that read the shared tokens (source 3).
    attention_dropout : float
        Dropout of the attention weights (source 0.1).
    out_dim : int
        Width of each stream's head (the price head gives 1).
    n_negatives : int
        Negatives per example (source 100).
    negatives : {"on_sale", "catalogue"}
        Where negatives come from (module docstring).
    target_grad : bool
        Let the loss's gradient reach the candidates' vectors (a deviation; the source computes them without
        gradient, so an item's vector as a candidate learns only through its use as a history input).
    temperature : float
        The loss reads ``sigmoid(cosine / temperature)`` (the source: 1, so the logits stay within [-1, 1]).
        Ranking is by the cosine, which the temperature does not change.
    loss : {"bce", "softmax"}
        ``bce``: the source's BCE against ``n_negatives`` sampled items. ``softmax`` (a deviation): the
        cross-entropy of the next item against the whole catalogue, over ``cosine / temperature`` (the
        objective that matches full-catalogue ranking; it needs a temperature well below 1, e.g. 0.1).
    vision : {"descriptor", "weights"}
    vision_features : str or None
        Local ``(n_items + 1, D)`` ``.npy`` picture features (``vision: weights``).
    train : RecTrainConfig
        ``windows`` must be ``prefixes`` and ``request_time`` false.
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: list(STREAMS))
    tst: bool = True
    d: int = 64
    layers: dict[str, int] = dataclasses.field(default_factory=lambda: {"id": 2, "image": 4, "text": 2, "price": 2})
    heads: dict[str, int] = dataclasses.field(default_factory=lambda: {"id": 4, "image": 8, "text": 8, "price": 1})
    ff: dict[str, int] = dataclasses.field(default_factory=lambda: {"id": 1, "image": 4, "text": 2, "price": 1})
    hidden_dropout: dict[str, float] = dataclasses.field(
        default_factory=lambda: {"id": 0.1, "image": 0.2, "text": 0.3, "price": 0.2})
    fusion_layers: int = 3
    attention_dropout: float = 0.1
    out_dim: int = 64
    n_negatives: int = 100
    negatives: Literal["on_sale", "catalogue"] = "on_sale"
    target_grad: bool = False
    temperature: float = 1.0
    loss: Literal["bce", "softmax"] = "bce"
    vision: Literal["descriptor", "weights"] = "descriptor"
    vision_features: str | None = None
    train: RecTrainConfig = dataclasses.field(
        default_factory=lambda: RecTrainConfig(windows="prefixes", max_len=20, batch_size=64, lr=1e-3,
                                               weight_decay=5e-6))

    def __post_init__(self) -> None:
        mods = list(self.inputs)
        if not mods or any(m not in STREAMS for m in mods) or len(set(mods)) != len(mods):
            raise ValueError(f"inputs must be distinct names among {', '.join(STREAMS)}, got {self.inputs!r}")
        for name in ("layers", "heads", "ff", "hidden_dropout"):
            table = getattr(self, name)
            missing = [m for m in mods if m not in table]
            if missing or any(m not in STREAMS for m in table):
                raise ValueError(f"{name} must give a value for each stream of inputs ({', '.join(mods)}) and "
                                 f"name no other, got {table!r}")
        for m in mods:
            if self.layers[m] < 0 or self.heads[m] < 1 or self.ff[m] < 1 or self.d % self.heads[m]:
                raise ValueError(f"layers, heads, ff: stream {m!r} needs layers >= 0, ff >= 1 and heads >= 1 "
                                 f"dividing d={self.d}")
            if not 0.0 <= self.hidden_dropout[m] < 1.0:
                raise ValueError(f"hidden_dropout must be in [0, 1) for every stream, got {self.hidden_dropout!r}")
        if self.fusion_layers < 0 or self.fusion_layers + min(self.layers[m] for m in mods) < 1:
            raise ValueError(f"fusion_layers must be >= 0 with at least one block per stream, got {self.fusion_layers!r}")
        if not self.temperature > 0.0:
            raise ValueError(f"temperature must be positive, got {self.temperature!r}")
        for name in ("d", "out_dim", "n_negatives"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not 0.0 <= self.attention_dropout < 1.0:
            raise ValueError(f"attention_dropout must be in [0, 1), got {self.attention_dropout!r}")
        if self.loss not in ("bce", "softmax"):
            raise ValueError(f"loss must be 'bce' or 'softmax', got {self.loss!r}")
        if self.negatives not in ("on_sale", "catalogue"):
            raise ValueError(f"negatives must be 'on_sale' or 'catalogue', got {self.negatives!r}")
        check_vision(self.vision, self.vision_features)
        check_prefix_training(self.train, "the cloze token reads the whole history both ways")


def fusion_mask(key_valid: torch.Tensor, first: bool) -> torch.Tensor:
    """Who may attend to whom in a fusion block over ``[stream tokens ; shared tokens]`` (True = may attend).

    Parameters
    ----------
    key_valid : Tensor
        (B, S) bool: the stream's tokens that are not padding (the cloze token always is valid).
    first : bool
        The first fusion layer: stream tokens do not see the shared tokens yet.

    Returns
    -------
    Tensor
        (B, 2S, 2S) bool: a stream token sees the valid stream tokens and, after the first fusion layer, the
        shared token of its own position; shared token ``t`` sees stream token ``t`` (when valid) and itself.
    """
    B, S = key_valid.shape
    eye = torch.eye(S, dtype=torch.bool, device=key_valid.device).expand(B, S, S)
    seq_seq = key_valid[:, None, :].expand(B, S, S)
    seq_tst = torch.zeros_like(eye) if first else eye
    tst_seq = eye & key_valid[:, None, :]
    return torch.cat([torch.cat([seq_seq, seq_tst], 2), torch.cat([tst_seq, eye], 2)], 1)


class SourceBlock(nn.Module):
    """The source's encoder block: ``q = LN(x)``; attention of ``q`` over the un-normalised ``x``; ``x = q +
    attention``; ``x = LN(x)``; ``x = x + FF(x)`` (GELU, dropout after each layer).

    Parameters
    ----------
    d, heads, ff : int
        Width, heads and feed-forward width.
    attention_dropout, hidden_dropout : float
    """

    def __init__(self, d: int, heads: int, ff: int, attention_dropout: float, hidden_dropout: float) -> None:
        super().__init__()
        self.h = heads
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=1e-8), nn.LayerNorm(d, eps=1e-8)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ff1, self.ff2 = nn.Linear(d, ff), nn.Linear(ff, d)
        self.hidden_dropout, self.attention_dropout = hidden_dropout, attention_dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, query: int | None = None) -> torch.Tensor:
        """(B, T, d) tokens, (B, T, T) bool mask (True = may attend) -> (B, T, d); with ``query`` the output of
        that token alone, (B, 1, d) (its keys and values still come from every token), for a last block whose
        other outputs nobody reads."""
        B, T, d = x.shape
        dh = d // self.h
        rows = slice(None) if query is None else slice(query, query + 1)
        q_in = self.ln1(x[:, rows])
        Q = q_in.shape[1]
        split = (lambda t: t.view(B, t.shape[1], self.h, dh).transpose(1, 2))  # (B, h, ., dh)
        logits = split(self.q(q_in)) @ split(self.k(x)).transpose(-1, -2) / dh ** 0.5    # (B, h, Q, T)
        w = torch.softmax(logits.masked_fill(~allowed[:, None, rows], float("-inf")), -1)
        a = fast_dropout(w, self.attention_dropout, self.training) @ split(self.v(x))   # (B, h, Q, dh)
        x = self.ln2(q_in + self.o(a.transpose(1, 2).reshape(B, Q, d)))
        f = fast_dropout(F.gelu(self.ff1(x)), self.hidden_dropout, self.training)
        return x + fast_dropout(self.ff2(f), self.hidden_dropout, self.training)


class MTSTRecPaperNet(nn.Module):
    """The network (see the module docstring)."""

    def __init__(self, cfg: Config, n_items: int, tables: dict[str, np.ndarray], arrival: np.ndarray,
                 fit_rows: np.ndarray) -> None:
        super().__init__()
        self.cfg = cfg
        self.mods = tuple(cfg.inputs)
        d, S = cfg.d, cfg.train.max_len + 1
        self.n_items, self.frame = n_items, S
        if "id" in self.mods:
            self.id_emb = nn.Embedding(n_items + 1, d, padding_idx=0)           # the source's N(0, 1) start
        self.proj = nn.ModuleDict()
        for m in ("image", "text"):
            if m in self.mods:
                self.register_buffer(f"raw_{m}", torch.from_numpy(tables[m]))
                self.proj[m] = nn.Linear(tables[m].shape[1], d)
        if "price" in self.mods:
            self.register_buffer("raw_price", torch.from_numpy(tables["price"]))
        self.cloze = nn.ParameterDict({m: nn.Parameter(torch.zeros(d)) for m in self.mods})
        self.pos = nn.ParameterDict({m: nn.Parameter(nn.init.xavier_uniform_(torch.empty(S, d))) for m in self.mods})
        self.tst = nn.Parameter(nn.init.xavier_uniform_(torch.empty(S, d))) if cfg.tst else None
        self.blocks = nn.ModuleDict({
            m: nn.ModuleList(SourceBlock(d, cfg.heads[m], cfg.ff[m] * d, cfg.attention_dropout, cfg.hidden_dropout[m])
                             for _ in range(cfg.layers[m] + cfg.fusion_layers))
            for m in self.mods})
        self.norm = nn.LayerNorm(d)
        self.heads = nn.ModuleDict({m: nn.Linear(d, 1 if m == "price" else cfg.out_dim) for m in self.mods})
        # negatives: items ordered by arrival day, so "on sale at t" is a prefix of this order
        arr = np.asarray(arrival, dtype=np.float64)
        pool = np.flatnonzero(np.isfinite(arr))
        pool = pool[pool > 0]
        order = pool[np.argsort(arr[pool], kind="stable")]
        self.register_buffer("sale_items", torch.from_numpy(order.astype(np.int64)))
        self.register_buffer("sale_days", torch.from_numpy(arr[order].astype(np.float32)))
        self.register_buffer("train_rows", torch.from_numpy(np.asarray(fit_rows, dtype=np.int64)))

    # -- item inputs --------------------------------------------------------------------------------
    def item_inputs(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        """stream -> (..., d) input embeddings of items ``idx`` (before cloze and positions)."""
        out = {}
        d = self.cfg.d
        for m in self.mods:
            if m == "id":
                out[m] = self.id_emb(idx)
            elif m == "price":
                out[m] = F.embedding(idx, self.raw_price).expand(*idx.shape, d)
            else:
                out[m] = self.proj[m](F.embedding(idx, getattr(self, f"raw_{m}")))
        return out

    def item_vectors(self, idx: torch.Tensor) -> torch.Tensor:
        """(..., sum of head widths) candidate vectors of items ``idx``: each stream's head on its input."""
        x = self.item_inputs(idx)
        return torch.cat([self.heads[m](x[m]) for m in self.mods], -1)

    # -- encoder ------------------------------------------------------------------------------------
    def user_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """(B, L <= max_len) left-padded histories -> (B, sum of head widths) user vectors. Rows run in length
        groups (:func:`~hmspar.rec.models.common.length_groups`), each on its own columns (the leading columns
        that are padding in all of its rows cut): padded tokens are never keys, a padded position's shared token
        is seen by its padded stream token alone and positions are right-aligned, so a row's vector depends
        neither on its group nor on its padding's width."""
        B, L = items.shape
        if L > self.frame - 1:
            raise HmsparError(f"mtstrec_paper: histories of {L} columns exceed max_len={self.frame - 1}")
        return in_length_groups(items > 0, LENGTH_GROUPS,
                                lambda rows, start: self._user_vectors(items[rows][:, start:]))

    def _user_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """The user vectors of one length group (see :meth:`user_vectors`); each stream's last block computes
        the cloze token alone (no other output is read)."""
        B, L = items.shape
        S = L + 1
        key_valid = torch.cat([items > 0, torch.ones(B, 1, dtype=torch.bool, device=items.device)], 1)  # (B, S)
        emb = self.item_inputs(items)
        x = {m: torch.cat([emb[m] * (items > 0)[..., None], self.cloze[m].expand(B, 1, -1)], 1) + self.pos[m][-S:]
             for m in self.mods}
        self_mask = key_valid[:, None, :].expand(B, S, S)
        n_fuse = self.cfg.fusion_layers
        for m in self.mods:                                               # each stream's own blocks
            own = self.blocks[m][:len(self.blocks[m]) - n_fuse]
            for i, blk in enumerate(own):
                x[m] = blk(x[m], self_mask, query=S - 1 if n_fuse == 0 and i == len(own) - 1 else None)
        tst = self.tst[-S:].expand(B, S, -1) if self.tst is not None else None
        for j in range(n_fuse):                                           # the fusion blocks, in step
            final = S - 1 if j == n_fuse - 1 else None                    # the cloze token's output alone
            if tst is None:
                for m in self.mods:
                    x[m] = self.blocks[m][len(self.blocks[m]) - n_fuse + j](x[m], self_mask, query=final)
                continue
            mask = fusion_mask(key_valid, first=j == 0)
            outs = []
            for m in self.mods:
                out = self.blocks[m][len(self.blocks[m]) - n_fuse + j](torch.cat([x[m], tst], 1), mask, query=final)
                x[m] = out[:, :S]
                outs.append(out[:, S:])
            if final is None:
                tst = torch.stack(outs, 0).mean(0)
        return torch.cat([self.heads[m](self.norm(x[m][:, -1])) for m in self.mods], -1)

    # -- the recommender contract -------------------------------------------------------------------
    def score(self, items, times, target_times) -> torch.Tensor:
        """(B, n_items + 1) cosine of each user vector with every item's vector (times are not read)."""
        u = F.normalize(self.user_vectors(items), dim=-1)
        v = F.normalize(self.item_vectors(torch.arange(self.n_items + 1, device=items.device)), dim=-1)
        return u @ v.T

    def negatives(self, ref_times: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, n_negatives) items drawn uniformly from those on sale at ``ref_times`` (``negatives: on_sale``;
        the training items where none is) or from every training item (``catalogue``)."""
        B, k = ref_times.shape[0], self.cfg.n_negatives
        u = torch.rand(B, k, generator=generator, device=ref_times.device)
        if self.cfg.negatives == "on_sale":
            count = torch.searchsorted(self.sale_days, ref_times.float().contiguous(), right=True)     # (B,)
            pick = self.sale_items[(u * count[:, None]).long().clamp(max=max(len(self.sale_items) - 1, 0))]
            fallback = self.train_rows[(u * len(self.train_rows)).long()]
            return torch.where((count > 0)[:, None], pick, fallback)
        return self.train_rows[(u * len(self.train_rows)).long()]

    def loss(self, items, times, next_items, next_times, generator) -> torch.Tensor:
        """The source's BCE on ``sigmoid(cosine)`` for prefix examples (only ``next_items[:, -1]`` is a target),
        or under ``loss: softmax`` the full-catalogue cross-entropy of ``cosine / temperature``."""
        target = last_target(next_items, "mtstrec_paper")
        u = F.normalize(self.user_vectors(items), dim=-1)                   # (B, D)
        grad = self.cfg.target_grad and torch.is_grad_enabled()
        if self.cfg.loss == "softmax":
            with torch.set_grad_enabled(grad):                            # every item but the padding row
                v = F.normalize(self.item_vectors(torch.arange(1, self.n_items + 1, device=items.device)), dim=-1)
            return F.cross_entropy(u @ v.T / self.cfg.temperature, target - 1)
        cand = torch.cat([target[:, None], self.negatives(times[:, -1], generator)], 1)   # (B, 1 + k)
        with torch.set_grad_enabled(grad):                                # the source: no gradient
            v = F.normalize(self.item_vectors(cand), dim=-1)              # (B, 1 + k, D)
        cos = (v @ u[:, :, None]).squeeze(-1) / self.cfg.temperature      # (B, 1 + k)
        k = cand.shape[1] - 1
        pos = F.logsigmoid(cos[:, 0]) * k
        neg = F.logsigmoid(-cos[:, 1:]).sum(1)                            # log(1 - sigmoid(c))
        return -((pos + neg) / (1 + k)).mean()


class MTSTRecPaper(TorchSeqRecommender):
    """MTSTRec as published, under the recommender contract (see the module docstring)."""

    Config = Config
    name = "mtstrec_paper"

    def build_module(self, train: Histories, items: ItemFeatures) -> nn.Module:
        cfg = self.cfg
        fit_rows = np.flatnonzero(train_items(train, items.n_items))
        if fit_rows.size == 0:
            raise HmsparError("mtstrec_paper: the training histories hold no item")
        tables = frozen_tables(items, fit_rows, cfg.inputs, cfg.vision, cfg.vision_features)
        return MTSTRecPaperNet(cfg, items.n_items, tables, item_arrivals(train, items), fit_rows)
