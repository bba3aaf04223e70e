"""ATHWE: per-modality transformer encoders, wavelet cross-modal fusion and a time-aware mixture of
experts routed by the gap to the previous interaction, with an InfoNCE loss between modalities.

Per position, each modality's encoder state (``d`` numbers) is decomposed by a multi-level DWT
(:class:`DWT`, below) into ``levels + 1`` bands; every band gets its own mixture weights
over the modalities (a learned prior plus a term from the band energies of that position), the mixed
coefficients are rescaled per band and transformed back. The transform runs along the feature axis,
not along time: a wavelet along time mixes later positions into earlier ones, which leaks the next
item into next-item training.

The fused state then passes a mixture of experts: ``n_shared_experts`` always-on feed-forward experts
and ``n_routed_experts`` routed ones, of which each position uses its ``top_k``; the router sees the
state and the bucket of the time since the previous interaction (as the published model, whose time
embedding is of the gap to the previous interaction; "unknown" at a history's first item), and that
bucket's embedding is added to the state. The time of the interaction a position predicts is never read:
only with ``train.request_time: true`` is the gap to it added to the final states, by the loop-wide
:class:`~hmspar.rec.train.RequestGap`, exactly as for every other sequential model. Experts live in
``nn.ModuleList`` so they are registered and trained (the public code keeps them in a plain list). A
Switch-style balance loss keeps every routed expert in use. The InfoNCE loss pairs the modality encoders'
states of the same user at its last position, with the other users of the batch as negatives (no mask
drops the positives).

Candidates are scored by ``output`` (:class:`common.CandidateScorer`): by default ``weighted``, the paper's
softmax-weighted sum of the ID, text and picture scores, so an item without any training interaction is
ranked by its content; ``id`` keeps the former ID-only head. ``item_age`` adds a learned score of each
candidate's age at the last history interaction (:class:`~hmspar.rec.train.ItemAge`).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hmspar.errors import HmsparError
from hmspar.rec.base import Histories, ItemFeatures
from hmspar.rec.models.common import (
    DWT,
    CandidateScorer,
    ItemEmbedder,
    MultiStreamBlock,
    check_output,
    add_request_gap,
    gap_bucket,
    gaps,
    info_nce,
    request_gap_module,
    small_embedding,
    train_items,
)
from hmspar.rec.train import RecTrainConfig, TorchSeqRecommender, item_age_module


@dataclasses.dataclass(frozen=True)
class Config:
    """ATHWE settings (``rec.recommenders.athwe``).

    Parameters
    ----------
    inputs : list of str
        Item modalities, one encoder each (default ID, text, picture).
    d, heads, layers : int
        Width, attention heads and layers of each modality encoder.
    dropout : float
    wavelet : {"haar", "db2", "db4"}
        Wavelet of the fusion DWT.
    levels : int
        DWT levels (``d`` must be divisible by ``2 ** levels``).
    n_shared_experts, n_routed_experts, top_k : int
        Mixture of experts: always-on experts, routed experts, routed experts used per position.
    expert_hidden : int
        Hidden width of each expert's feed-forward network.
    gap_edges : list of float
        Bucket edges (days) of the gap to the previous interaction that the router sees.
    infonce_weight, temperature : float
        Weight and temperature of the InfoNCE loss between modalities (0 disables it).
    balance_weight : float
        Weight of the expert load-balancing loss.
    output : {"weighted", "id", "sum", "heads"}
        How the user state scores candidates (:data:`common.OUTPUTS`): ``weighted`` (the default, the
        paper's softmax-weighted sum of the ID, text and picture scores), the ID embedding alone (needs
        ``id`` in ``inputs``), the summed modality embeddings, or per-modality heads.
    item_age : bool
        Add a learned score of each candidate's age at the last history interaction
        (:class:`~hmspar.rec.train.ItemAge`).
    train : RecTrainConfig
    """

    inputs: list[str] = dataclasses.field(default_factory=lambda: ["id", "text", "image"])
    d: int = 32
    heads: int = 2
    layers: int = 1
    dropout: float = 0.2
    wavelet: Literal["haar", "db2", "db4"] = "haar"
    levels: int = 2
    n_shared_experts: int = 1
    n_routed_experts: int = 4
    top_k: int = 2
    expert_hidden: int = 64
    gap_edges: list[float] = dataclasses.field(default_factory=lambda: [0.04, 1.0, 7.0, 30.0])
    infonce_weight: float = 0.1
    temperature: float = 0.2
    balance_weight: float = 0.01
    output: Literal["weighted", "id", "sum", "heads"] = "weighted"
    item_age: bool = False
    train: RecTrainConfig = dataclasses.field(default_factory=RecTrainConfig)

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("inputs must name at least one item modality")
        check_output(self.output, tuple(dict.fromkeys(self.inputs)))
        if self.levels < 1 or self.d % (2 ** self.levels):
            raise ValueError(f"levels must be >= 1 with d={self.d} divisible by 2**levels, got {self.levels!r}")
        if self.n_routed_experts < 1 or not 1 <= self.top_k <= self.n_routed_experts:
            raise ValueError(f"top_k must be between 1 and n_routed_experts={self.n_routed_experts}, "
                             f"got {self.top_k!r}")
        if self.n_shared_experts < 0:
            raise ValueError(f"n_shared_experts must be >= 0, got {self.n_shared_experts!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature!r}")
        if list(self.gap_edges) != sorted(self.gap_edges):
            raise ValueError(f"gap_edges must be increasing, got {self.gap_edges!r}")


def _expert(d: int, hidden: int, dropout: float) -> nn.Module:
    return nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d))


class WaveletFusion(nn.Module):
    """Fuse M modality states per position in the wavelet domain (band-wise modality weights).

    Parameters
    ----------
    n_modalities, d : int
    wavelet : str
    levels : int
    """

    def __init__(self, n_modalities: int, d: int, wavelet: str, levels: int) -> None:
        super().__init__()
        self.dwt = DWT(d, wavelet, levels)
        nb = self.dwt.n_bands
        self.M, self.nb = n_modalities, nb
        self.prior = nn.Parameter(torch.zeros(nb, n_modalities))
        self.gate = nn.Linear(nb * n_modalities, nb * n_modalities)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)
        self.band_scale = nn.Parameter(torch.ones(nb))
        self.ln = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, M, L, d) modality states -> (B, L, d) fused state."""
        B, M, L, d = x.shape
        c = self.dwt(x)                                                     # (B, M, L, d) coefficients
        bands = self.dwt.bands                                              # (d,)
        onehot = F.one_hot(bands, self.nb).to(c.dtype)                      # (d, nb)
        energy = (c ** 2) @ onehot / onehot.sum(0)                          # (B, M, L, nb) mean energy
        feat = torch.log1p(energy).permute(0, 2, 3, 1).reshape(B, L, self.nb * M)
        logits = self.prior + self.gate(feat).view(B, L, self.nb, M)        # (B, L, nb, M)
        w = torch.softmax(logits, -1)[:, :, bands]                          # (B, L, d, M)
        fused = (c.permute(0, 2, 3, 1) * w).sum(-1) * self.band_scale[bands]  # (B, L, d)
        return self.ln(self.dwt.inverse(fused))                             # (B, L, d)


class TimeAwareMoE(nn.Module):
    """Shared plus top-k routed feed-forward experts; routing depends on the gap bucket.

    Parameters
    ----------
    d, hidden : int
    n_shared, n_routed, top_k : int
    n_buckets : int
        Number of gap buckets (including the "unknown" bucket 0).
    dropout : float
    """

    def __init__(self, d: int, hidden: int, n_shared: int, n_routed: int, top_k: int, n_buckets: int,
                 dropout: float) -> None:
        super().__init__()
        self.shared = nn.ModuleList(_expert(d, hidden, dropout) for _ in range(n_shared))
        self.routed = nn.ModuleList(_expert(d, hidden, dropout) for _ in range(n_routed))
        self.router = nn.Linear(d, n_routed)
        self.bucket_route = small_embedding(n_buckets, n_routed)            # per-bucket routing logits
        self.bucket_emb = small_embedding(n_buckets, d)
        self.top_k = top_k
        self.ln = nn.LayerNorm(d)
        self.balance_loss = torch.zeros(())

    def forward(self, h: torch.Tensor, bucket: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, L, d) states, (B, L) gap buckets, (B, L) valid -> (B, L, d); sets ``balance_loss``."""
        B, L, d = h.shape
        z = (h + self.bucket_emb(bucket)).reshape(B * L, d)                 # (N, d)
        probs = torch.softmax(self.router(z) + self.bucket_route(bucket).reshape(B * L, -1), -1)  # (N, E)
        top_p, top_i = probs.topk(self.top_k, -1)                           # (N, k)
        top_p = top_p / top_p.sum(-1, keepdim=True)
        out = z.clone()
        for expert in self.shared:
            out = out + expert(z) / len(self.shared)
        for e, expert in enumerate(self.routed):
            w = (top_p * (top_i == e)).sum(-1)                              # (N,) weight of expert e
            rows = torch.nonzero(w > 0).squeeze(1)
            if rows.numel():
                out = out.index_add(0, rows, w[rows, None] * expert(z[rows]))
        m = valid.reshape(-1)
        if m.any():  # Switch-Transformer balance loss over valid positions
            E = len(self.routed)
            frac = F.one_hot(top_i[m], E).float().sum(1).mean(0) / self.top_k  # (E,) share of routings
            self.balance_loss = E * (frac * probs[m].mean(0)).sum()
        else:
            self.balance_loss = torch.zeros((), device=h.device)
        return self.ln(out.view(B, L, d))


class ATHWENet(nn.Module):
    """The ATHWE network (see the module docstring)."""

    def __init__(self, embedder: ItemEmbedder, cfg: Config, age: nn.Module | None = None) -> None:
        super().__init__()
        self.embedder = embedder
        self.mods = tuple(dict.fromkeys(cfg.inputs))
        M, d = len(self.mods), cfg.d
        self.edges = tuple(float(e) for e in cfg.gap_edges)
        self.pos = small_embedding(cfg.train.max_len, d)
        self.mod_type = small_embedding(M, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoders = nn.ModuleList(MultiStreamBlock(M, d, cfg.heads, cfg.dropout) for _ in range(cfg.layers))
        self.fusion = WaveletFusion(M, d, cfg.wavelet, cfg.levels)
        self.moe = TimeAwareMoE(d, cfg.expert_hidden, cfg.n_shared_experts, cfg.n_routed_experts, cfg.top_k,
                                len(self.edges) + 2, cfg.dropout)
        self.nce_proj = nn.ModuleList(nn.Linear(d, d) for _ in range(M))
        self.infonce_weight, self.temperature = cfg.infonce_weight, cfg.temperature
        self.balance_weight = cfg.balance_weight
        self.request_gap = request_gap_module(cfg, d)                       # None unless train.request_time
        self.scorer = CandidateScorer(cfg.output, self.mods, d, age)        # last: the other inits keep their draws

    def encode(self, items: torch.Tensor, times: torch.Tensor,
               table: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """States at every position, from the history alone (no time of a predicted interaction).

        Parameters
        ----------
        items : Tensor
            (B, L) int64.
        times : Tensor
            (B, L) days of the history's interactions; the experts are routed by the bucket of the gap
            to the previous one.
        table : dict of str to Tensor
            The catalogue's modality embeddings, m -> (n_items + 1, d).

        Returns
        -------
        (Tensor, Tensor)
            Final states (B, L, d) and per-modality encoder states (B, M, L, d).
        """
        B, L = items.shape
        valid = items > 0
        pos = self.pos(torch.arange(L - 1, -1, -1, device=items.device))    # (L, d) most recent = 0
        mod_type = self.mod_type.weight[:, None]                            # (M, 1, d)
        # F.embedding rather than table[m][items]: a deterministic backward on the CPU (see pixelrec.py)
        x = torch.stack([F.embedding(items, table[m]) for m in self.mods], 1) + mod_type + pos  # (B, M, L, d)
        h = self.drop(x).reshape(B, len(self.mods) * L, -1)
        for blk in self.encoders:
            h = blk(h, valid)                                               # causal within each modality
        per_mod = h.view(B, len(self.mods), L, -1)                          # (B, M, L, d)
        fused = self.fusion(per_mod)                                        # (B, L, d)
        prev, _ = gaps(times, valid, None)                                  # (B, L) days since the previous item
        out = self.moe(fused, gap_bucket(prev, self.edges), valid)          # (B, L, d)
        return out, per_mod

    def nce_loss(self, per_mod: torch.Tensor) -> torch.Tensor:
        """Mean InfoNCE over modality pairs at each user's last position ((B, M, L, d) states)."""
        last = per_mod[:, :, -1]                                            # (B, M, d)
        pairs = list(itertools.combinations(range(last.shape[1]), 2))
        if not pairs or last.shape[0] < 2:
            return torch.zeros((), device=per_mod.device)
        return sum(info_nce(self.nce_proj[a](last[:, a]), self.nce_proj[b](last[:, b]), self.temperature)
                   for a, b in pairs) / len(pairs)

    def loss(self, items, times, next_items, next_times, generator) -> torch.Tensor:
        """Next-item cross-entropy + InfoNCE between modalities + expert balance (items (B, L)).
        ``next_times`` is read only with ``train.request_time`` (the gap to it is added to every state)."""
        table = self.embedder.catalogue()                                   # m -> (n_items + 1, d), once
        h, per_mod = self.encode(items, times, table)
        h = add_request_gap(self.request_gap, h, items, times, next_times)  # (B, L, d)
        loss = self.scorer.loss(h, table, next_items, times)
        if self.infonce_weight > 0:
            loss = loss + self.infonce_weight * self.nce_loss(per_mod)
        return loss + self.balance_weight * self.moe.balance_loss

    def score(self, items, times, target_times) -> torch.Tensor:
        """(B, n_items + 1) scores of the next item after the last position (``target_times`` read only
        with ``train.request_time``)."""
        table = self.embedder.catalogue()
        h, _ = self.encode(items, times, table)
        last = add_request_gap(self.request_gap, h[:, -1], items[:, -1], times[:, -1], target_times)  # (B, d)
        return self.scorer(last, table, times[:, -1])


class ATHWE(TorchSeqRecommender):
    """ATHWE under the recommender contract (see the module docstring)."""

    Config = Config
    name = "athwe"

    def build_module(self, train: Histories, items: ItemFeatures) -> nn.Module:
        fit_rows = np.flatnonzero(train_items(train, items.n_items))
        if fit_rows.size == 0:
            raise HmsparError("athwe: the training histories hold no item")
        mods = tuple(dict.fromkeys(self.cfg.inputs))
        return ATHWENet(ItemEmbedder(items, mods, self.cfg.d, fit_rows), self.cfg,
                        item_age_module(self.cfg.item_age, train, items))
