"""Progressive Layered Extraction (PLE) adapted to fusing per-modality embeddings.

PLE (Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task Learning (MTL) Model for
Personalized Recommendations", RecSys 2020) stacks *extraction levels*, each holding task-specific and
shared experts; a gate per task mixes its own experts with the shared ones, and a shared gate mixes
all experts into the shared input of the next level. Here the "tasks" are the input modalities:

- level 0 receives one embedding ``x_m`` ``(B, d)`` per modality ``m = 1..M``; the shared path starts
  from the concatenation ``[x_1, ..., x_M]`` ``(B, M d)``, so level-0 shared experts see every
  modality jointly;
- at each level, modality ``m`` has ``n_specific`` experts on its own path, and ``n_shared`` experts
  sit on the shared path (experts are two-layer MLPs ``-> d``);
- gate ``m`` (a linear layer on the modality path's input) mixes modality ``m``'s experts and the
  shared experts; the shared gate (on the shared path's input) mixes every expert of the level;
- the last level's ``M`` modality outputs and the shared output are concatenated (``(B, (M+1) d)``)
  or averaged (``(B, d)``).

Routing. ``top_k = 0`` gives dense softmax gates. ``top_k > 0`` keeps each gate's ``top_k`` largest
logits (other weights exactly 0) and renormalises them with a softmax. ``noise > 0`` adds
``noise * N(0, 1)`` (``torch.randn_like``) to the gate logits in training mode only, so evaluation is
deterministic. Experts are always evaluated densely (sizes here are small); top-k sparsifies the mixture
weights, not the compute.

Load balancing. :func:`switch_balance_loss` is the Switch-Transformer auxiliary loss (Fedus et al.,
2022) per gate, ``n * sum_i f_i * P_i``, with ``P_i`` the batch mean of the full softmax probability of
expert ``i`` (before top-k/noise masking) and ``f_i`` the fraction of routing slots (the ``k`` largest
logits per sample, ``k = max(top_k, 1)``) sent to expert ``i``. It equals exactly 1 whenever the router
probabilities are uniform or the dispatch is uniform, and grows to ``n`` when everything goes to one
expert. The module returns the mean of this loss over all gates of all levels.
"""

from __future__ import annotations

import torch
from torch import nn

from hmspar.errors import HmsparError


def switch_balance_loss(logits: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Switch-style load-balancing loss of one gate.

    Parameters
    ----------
    logits : Tensor
        ``(B, n)`` router logits (without noise).
    k : int
        Routing slots per sample (the ``k`` largest logits count as dispatched).

    Returns
    -------
    Tensor
        Scalar ``n * sum_i f_i * P_i``; ``f`` carries no gradient, ``P`` does.
    """
    B, n = logits.shape
    k = max(1, min(k, n))
    probs = torch.softmax(logits, dim=-1)  # (B, n)
    P = probs.mean(dim=0)  # (B, n) -> (n,)
    with torch.no_grad():
        idx = logits.topk(k, dim=-1).indices  # (B, n) -> (B, k)
        counts = torch.zeros(n, dtype=logits.dtype, device=logits.device)
        counts.scatter_add_(0, idx.reshape(-1), torch.ones(idx.numel(), dtype=logits.dtype, device=logits.device))
        f = counts / (B * k)  # (n,)
    return n * torch.sum(f * P)


class Expert(nn.Module):
    """Two-layer MLP expert ``Linear(d_in, d) -> GELU -> Dropout -> Linear(d, d)``.

    Parameters
    ----------
    d_in, d : int
        Input and output sizes.
    dropout : float
        Dropout between the two layers.
    """

    def __init__(self, d_in: int, d: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d), nn.GELU(), nn.Dropout(dropout), nn.Linear(d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, d_in) -> (B, d)``."""
        return self.net(x)


class Gate(nn.Module):
    """Softmax gate over ``n_experts`` with optional noisy top-k routing.

    Parameters
    ----------
    d_in : int
        Size of the gate's input.
    n_experts : int
        Number of experts it mixes.
    top_k : int
        0 = dense softmax; otherwise keep the ``min(top_k, n_experts)`` largest logits.
    noise : float
        Standard deviation of the gaussian noise added to the logits in training mode.

    Attributes
    ----------
    record : list or None
        When a list (see :meth:`PLE.record_gates`), every forward appends the batch's summed mixture
        weights ``(n,)`` and its row count, so mean gate weights over a data set can be read afterwards.
    """

    def __init__(self, d_in: int, n_experts: int, top_k: int = 0, noise: float = 0.0):
        super().__init__()
        self.proj = nn.Linear(d_in, n_experts)
        self.n_experts = n_experts
        self.top_k = top_k
        self.noise = noise
        self.record: list | None = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return mixture weights ``(B, n)`` (rows sum to 1) and the balance loss (scalar) for ``x`` ``(B, d_in)``."""
        logits = self.proj(x)  # (B, d_in) -> (B, n)
        balance = switch_balance_loss(logits, self.top_k)
        if self.training and self.noise > 0:
            logits = logits + self.noise * torch.randn_like(logits)
        if 0 < self.top_k < self.n_experts:
            kth = logits.topk(self.top_k, dim=-1).values[:, -1:]  # (B, n) -> (B, 1)
            logits = logits.masked_fill(logits < kth, float("-inf"))
        weights = torch.softmax(logits, dim=-1)  # (B, n)
        if self.record is not None:
            self.record.append((weights.detach().sum(dim=0).cpu(), weights.shape[0]))
        return weights, balance


def _mix(weights: torch.Tensor, experts: list[torch.Tensor]) -> torch.Tensor:
    """Weighted sum of expert outputs: ``(B, n)`` and ``n x (B, d)`` -> ``(B, d)``."""
    stacked = torch.stack(experts, dim=1)  # n x (B, d) -> (B, n, d)
    return torch.einsum("bn,bnd->bd", weights, stacked)  # -> (B, d)


class ExtractionLevel(nn.Module):
    """One PLE level: modality-specific and shared experts, one gate per modality and a shared gate.

    Parameters
    ----------
    n_modalities : int
        ``M``.
    d_in_specific, d_in_shared : int
        Input sizes of the modality paths and of the shared path.
    d : int
        Expert output size.
    n_shared, n_specific : int
        Shared experts and experts per modality.
    top_k, noise, dropout
        See :class:`Gate` and :class:`Expert`.
    """

    def __init__(self, n_modalities: int, d_in_specific: int, d_in_shared: int, d: int, n_shared: int,
                 n_specific: int, top_k: int, noise: float, dropout: float):
        super().__init__()
        self.n_modalities = n_modalities
        self.n_specific = n_specific
        self.specific = nn.ModuleList(
            nn.ModuleList(Expert(d_in_specific, d, dropout) for _ in range(n_specific)) for _ in range(n_modalities)
        )
        self.shared = nn.ModuleList(Expert(d_in_shared, d, dropout) for _ in range(n_shared))
        self.gates = nn.ModuleList(
            Gate(d_in_specific, n_specific + n_shared, top_k, noise) for _ in range(n_modalities)
        )
        self.shared_gate = Gate(d_in_shared, n_modalities * n_specific + n_shared, top_k, noise)

    def forward(self, hs: list[torch.Tensor],
                h_shared: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Run the level.

        Parameters
        ----------
        hs : list of Tensor
            ``M`` modality-path inputs ``(B, d_in_specific)``.
        h_shared : Tensor
            Shared-path input ``(B, d_in_shared)``.

        Returns
        -------
        outs : list of Tensor
            ``M`` modality outputs ``(B, d)``.
        shared_out : Tensor
            ``(B, d)``.
        balance : Tensor
            Scalar mean balance loss over the ``M + 1`` gates.
        """
        shared_e = [e(h_shared) for e in self.shared]  # n_shared x (B, d_in_shared) -> (B, d)
        spec_e = [[e(h) for e in experts] for h, experts in zip(hs, self.specific)]  # M x n_specific x (B, d)
        outs, losses = [], []
        for h, own, gate in zip(hs, spec_e, self.gates):
            w, loss = gate(h)  # (B, d_in) -> (B, n_specific + n_shared)
            outs.append(_mix(w, own + shared_e))  # -> (B, d)
            losses.append(loss)
        w, loss = self.shared_gate(h_shared)  # (B, d_in_shared) -> (B, M n_specific + n_shared)
        shared_out = _mix(w, [e for own in spec_e for e in own] + shared_e)  # -> (B, d)
        losses.append(loss)
        return outs, shared_out, torch.stack(losses).mean()


class PLE(nn.Module):
    """Progressive Layered Extraction over ``M`` modality embeddings (see the module docstring).

    Parameters
    ----------
    n_modalities : int
        ``M`` (>= 1).
    d : int
        Embedding size of each modality input and of every expert.
    n_levels : int
        Extraction levels (>= 1).
    n_shared : int
        Shared experts per level.
    n_specific : int
        Experts per modality per level (``n_shared + n_specific`` must be >= 1).
    top_k : int
        0 = dense gates; otherwise noisy top-k routing keeping ``top_k`` experts per gate.
    noise : float
        Train-time gaussian noise on gate logits (standard deviation).
    dropout : float
        Dropout inside the experts.
    output : {"concat", "mean"}
        How the last level's ``M`` modality outputs and shared output are combined.

    Attributes
    ----------
    out_features : int
        ``(M + 1) d`` for ``concat``, ``d`` for ``mean``.
    """

    def __init__(self, n_modalities: int, d: int, n_levels: int = 2, n_shared: int = 2, n_specific: int = 1,
                 top_k: int = 0, noise: float = 0.0, dropout: float = 0.0, output: str = "concat"):
        super().__init__()
        if n_modalities < 1:
            raise HmsparError("PLE: at least one modality is required")
        if n_levels < 1:
            raise HmsparError(f"model.fusion.n_levels: must be >= 1, got {n_levels}")
        if n_shared < 0 or n_specific < 0 or n_shared + n_specific < 1:
            raise HmsparError(f"model.fusion: n_shared and n_specific must be >= 0 with at least one expert, "
                              f"got n_shared={n_shared}, n_specific={n_specific}")
        if top_k < 0:
            raise HmsparError(f"model.fusion.top_k: must be >= 0 (0 = dense), got {top_k}")
        if noise < 0:
            raise HmsparError(f"model.fusion.noise: must be >= 0, got {noise}")
        if output not in ("concat", "mean"):
            raise HmsparError(f"PLE: output must be 'concat' or 'mean', got {output!r}")
        self.n_modalities = n_modalities
        self.d = d
        self.output = output
        self.levels = nn.ModuleList(
            ExtractionLevel(n_modalities, d, n_modalities * d if i == 0 else d, d, n_shared, n_specific,
                            top_k, noise, dropout)
            for i in range(n_levels)
        )
        self.out_features = (n_modalities + 1) * d if output == "concat" else d

    def forward(self, xs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse modality embeddings.

        Parameters
        ----------
        xs : list of Tensor
            ``M`` tensors ``(B, d)``, in a fixed modality order.

        Returns
        -------
        fused : Tensor
            ``(B, out_features)``.
        balance : Tensor
            Scalar load-balancing loss (mean over gates and levels; 1.0 when balanced).
        """
        if len(xs) != self.n_modalities:
            raise HmsparError(f"PLE: expected {self.n_modalities} modality embeddings, got {len(xs)}")
        hs = list(xs)
        h_shared = torch.cat(hs, dim=-1)  # M x (B, d) -> (B, M d)
        losses = []
        for level in self.levels:
            hs, h_shared, loss = level(hs, h_shared)  # -> M x (B, d), (B, d)
            losses.append(loss)
        if self.output == "concat":
            fused = torch.cat(hs + [h_shared], dim=-1)  # (M + 1) x (B, d) -> (B, (M + 1) d)
        else:
            fused = torch.stack(hs + [h_shared], dim=0).mean(dim=0)  # (M + 1, B, d) -> (B, d)
        return fused, torch.stack(losses).mean()

    def record_gates(self, on: bool) -> None:
        """Start (``on=True``, clearing earlier records) or stop recording the shared gates' weights."""
        for level in self.levels:
            level.shared_gate.record = [] if on else None

    def shared_gate_weights(self, names: list[str]) -> list[dict[str, float]]:
        """Mean weight of each *source* in every level's shared gate, over the recorded forwards.

        The shared gate mixes every expert of its level; its weight on modality ``m`` is the sum of its
        weights on ``m``'s specific experts, and ``"shared"`` the sum on the shared experts. A collapse
        onto one modality shows as one source near 1.

        Parameters
        ----------
        names : list of str
            The ``M`` modality names, in input order.

        Returns
        -------
        list of dict
            One ``{name: weight, ..., "shared": weight}`` per level (weights sum to 1); empty dicts if
            nothing was recorded.
        """
        if len(names) != self.n_modalities:
            raise HmsparError(f"PLE: expected {self.n_modalities} modality names, got {len(names)}")
        out = []
        for level in self.levels:
            rec = level.shared_gate.record or []
            if not rec:
                out.append({})
                continue
            total = torch.stack([w for w, _ in rec]).sum(dim=0) / sum(n for _, n in rec)  # (n_experts,)
            k = level.n_specific
            shares = {m: float(total[i * k:(i + 1) * k].sum()) for i, m in enumerate(names)}
            shares["shared"] = float(total[self.n_modalities * k:].sum())
            out.append(shares)
        return out
