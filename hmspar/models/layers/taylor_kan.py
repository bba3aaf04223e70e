"""Taylor-KAN layers: Kolmogorov-Arnold style layers whose edge functions are truncated power series.

A :class:`TaylorKAN` layer maps ``in_features`` inputs to ``out_features`` outputs with one learnable
polynomial per (output, input) edge and no constant term per edge (the constant is the output bias)::

    y_o = b_o + sum_c sum_{k=1..order} a[o, c, k] * x_c ** k

The powers ``x ** 1 .. x ** order`` are computed once, stacked to ``(..., in * order)`` and contracted
with a single matrix product, so the cost is that of one ``nn.Linear`` with ``order`` times the inputs
and no ``(batch, out, length, in)`` tensor is ever built.

:class:`TaylorKANConv1d` applies such a layer to sliding temporal windows (a polynomial convolution) and
:class:`TaylorKANConvEncoder` (HMSPAR's series encoder) stacks them over time. The older
:class:`TaylorKANEncoder` applies a stack of such layers independently at every time step of a
multichannel series (values and activity mask side by side) and pools over time to one vector.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hmspar.errors import HmsparError


class TaylorKAN(nn.Module):
    """One Taylor-KAN layer: a learnable polynomial of degree ``order`` on every input-output edge.

    Parameters
    ----------
    in_features : int
        Number of inputs ``c``.
    out_features : int
        Number of outputs ``o``.
    order : int
        Highest power on each edge; the powers used are ``1 .. order`` and the constant term is the
        output bias, so ``order=3`` is a cubic. (The earlier research code called its cubic layer
        "order 4" because it counted the constant; ``order=3`` here is that layer.)

    Notes
    -----
    The layer itself is a pure polynomial and does not squash its input: the caller must keep the
    inputs in a bounded range, otherwise ``x ** order`` explodes for large ``|x|``.
    :class:`TaylorKANEncoder` applies ``tanh`` before every layer so each power lies in ``(-1, 1)``.

    Initialisation: ``a[:, :, k] ~ N(0, (1 / (k * sqrt(in_features)))^2)`` and ``b = 0``. For inputs
    in ``[-1, 1]`` the output variance is then at most ``sum_k 1 / k^2 < 1.65``, whatever the width or
    order, so activations stay bounded through a stack of layers.

    Attributes
    ----------
    coef : nn.Parameter
        ``(out_features, in_features, order)``; ``coef[o, c, k - 1]`` multiplies ``x_c ** k``.
    bias : nn.Parameter
        ``(out_features,)``.
    """

    def __init__(self, in_features: int, out_features: int, order: int):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise HmsparError(f"TaylorKAN: in_features and out_features must be >= 1, "
                              f"got {in_features} and {out_features}")
        if order < 1:
            raise HmsparError(f"TaylorKAN: order must be >= 1 (1 = linear, 3 = cubic), got {order}")
        self.in_features = in_features
        self.out_features = out_features
        self.order = order
        self.coef = nn.Parameter(torch.empty(out_features, in_features, order))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the coefficients from the torch default generator (seeded by the caller) and zero the bias."""
        with torch.no_grad():
            for k in range(1, self.order + 1):
                nn.init.normal_(self.coef[:, :, k - 1], mean=0.0, std=1.0 / (k * math.sqrt(self.in_features)))
            self.bias.zero_()

    def powers(self, x: torch.Tensor) -> torch.Tensor:
        """Stack ``x ** 1 .. x ** order`` along a new last axis and flatten it into the feature axis.

        ``(..., in) -> (..., in * order)``, feature ``c * order + (k - 1)`` holding ``x_c ** k``.
        """
        pows = [x]
        for _ in range(1, self.order):
            pows.append(pows[-1] * x)
        return torch.stack(pows, dim=-1).flatten(-2)  # (..., in, order) -> (..., in * order)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate the layer on the last axis of ``x``.

        Parameters
        ----------
        x : Tensor
            ``(..., in_features)``.

        Returns
        -------
        Tensor
            ``(..., out_features)``.
        """
        if x.shape[-1] != self.in_features:
            raise HmsparError(f"TaylorKAN: expected {self.in_features} input features, got {x.shape[-1]}")
        p = self.powers(x)  # (..., in) -> (..., in * order)
        weight = self.coef.reshape(self.out_features, self.in_features * self.order)  # (out, in * order)
        return nn.functional.linear(p, weight, self.bias)  # (..., in * order) -> (..., out)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, order={self.order}"


class AttentionPool(nn.Module):
    """Softmax attention pooling over time with one learned scoring vector.

    Parameters
    ----------
    dim : int
        Feature size ``d`` of each time step.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Linear(dim, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """Pool ``(B, T, d) -> (B, d)`` with weights ``softmax_t(score(h_t))``."""
        w = torch.softmax(self.score(h).squeeze(-1), dim=1)  # (B, T, d) -> (B, T)
        return torch.einsum("bt,btd->bd", w, h)  # (B, T), (B, T, d) -> (B, d)


class TaylorKANEncoder(nn.Module):
    """Encode a multichannel series into one vector with per-time-step Taylor-KAN layers and pooling.

    At every time step ``t`` the input vector is ``[x_1..x_C, m_1..m_C]`` (standardised values and
    activity mask, ``in_channels = 2C``), plus, with ``positional=True``, the relative position
    ``tau_t = 2 t / (T - 1) - 1`` in ``[-1, 1]``. The same stack of layers is applied at every step::

        h^0 = TaylorKAN_0(tanh(z_t))                       # in_channels (+1) -> hidden
        h^l = h^{l-1} + Dropout(TaylorKAN_l(tanh(LN(h^{l-1}))))   for l = 1 .. n_layers - 1

    and the steps are pooled over time (``mean`` or ``attention``). Every time step exists (a zero
    mask value is information, not padding), so nothing is masked out of the pooling.

    Stability: ``tanh`` before each layer keeps every power in ``(-1, 1)`` (standardised sparse series
    have large positive spikes, whose cubes would otherwise dominate); the ``LayerNorm`` in front of
    the ``tanh`` on deeper layers keeps the hidden units in tanh's sensitive range.

    Without the position channel the encoder is a permutation-invariant function of the time steps; the
    channel lets it weigh recent periods differently from old ones (recency matters for churn-like
    labels) while staying independent of ``T``, so the same weights work for any length.

    Parameters
    ----------
    in_channels : int
        Features per time step (series channels plus mask channels, ``2C``).
    hidden : int
        Width of every layer and of the output.
    n_layers : int
        Number of Taylor-KAN layers (>= 1).
    order : int
        Polynomial order of every layer (3 = cubic).
    pooling : {"mean", "attention"}
        Temporal pooling.
    dropout : float
        Dropout after every layer but the first (on the residual branch) and after pooling.
    positional : bool
        Append the relative-position channel ``tau_t``.
    """

    def __init__(self, in_channels: int, hidden: int, n_layers: int, order: int,
                 pooling: str = "mean", dropout: float = 0.0, positional: bool = True):
        super().__init__()
        if n_layers < 1:
            raise HmsparError(f"TaylorKANEncoder: n_layers must be >= 1, got {n_layers}")
        if pooling not in ("mean", "attention"):
            raise HmsparError(f"TaylorKANEncoder: pooling must be 'mean' or 'attention', got {pooling!r}")
        self.in_channels = in_channels
        self.positional = positional
        self.pooling = pooling
        self.out_features = hidden
        n_in = in_channels + (1 if positional else 0)
        self.first = TaylorKAN(n_in, hidden, order)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(n_layers - 1))
        self.layers = nn.ModuleList(TaylorKAN(hidden, hidden, order) for _ in range(n_layers - 1))
        self.dropout = nn.Dropout(dropout)
        self.pool = AttentionPool(hidden) if pooling == "attention" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode a batch of series.

        Parameters
        ----------
        x : Tensor
            ``(B, T, in_channels)`` time-major features (values and mask concatenated on the last axis).

        Returns
        -------
        Tensor
            ``(B, hidden)``.
        """
        if x.dim() != 3 or x.shape[-1] != self.in_channels:
            raise HmsparError(f"TaylorKANEncoder: expected (B, T, {self.in_channels}) input, got {tuple(x.shape)}")
        B, T, _ = x.shape
        z = torch.tanh(x)
        if self.positional:
            tau = torch.linspace(-1.0, 1.0, T, dtype=x.dtype, device=x.device) if T > 1 \
                else torch.zeros(1, dtype=x.dtype, device=x.device)
            z = torch.cat([z, tau.view(1, T, 1).expand(B, T, 1)], dim=-1)  # (B, T, C) -> (B, T, C + 1)
        h = self.first(z)  # (B, T, C[+1]) -> (B, T, hidden)
        for norm, layer in zip(self.norms, self.layers):
            h = h + self.dropout(layer(torch.tanh(norm(h))))  # (B, T, hidden) -> (B, T, hidden)
        if self.pool is None:
            out = h.mean(dim=1)  # (B, T, hidden) -> (B, hidden)
        else:
            out = self.pool(h)  # (B, T, hidden) -> (B, hidden)
        return self.dropout(out)


class TaylorKANConv1d(nn.Module):
    """A Taylor-KAN layer applied over sliding temporal windows: a polynomial 1-D convolution.

    For output channel ``o`` at time ``t``, with window positions ``j = 0 .. kernel_size - 1``::

        y_o(t) = b_o + sum_c sum_j sum_{k=1..order} a[o, c, j, k] * x_c(t + (j - left) * dilation) ** k

    i.e. one learnable polynomial per edge from every (channel, window position) input to every output,
    exactly a :class:`TaylorKAN` layer whose inputs are the ``C * kernel_size`` values of the window.
    The powers are taken elementwise once and contracted with a single ``conv1d``. The series is
    zero-padded with ``left = (kernel_size - 1) * dilation // 2`` steps before and the rest after
    ("same" padding: the output has the input's length ``T``).

    Parameters
    ----------
    in_channels, out_channels : int
        ``C`` and ``O``.
    kernel_size : int
        Window length (>= 1; 1 is the per-step :class:`TaylorKAN`).
    dilation : int
        Spacing of the window positions (>= 1).
    order : int
        Highest power on each edge (the constant is the output bias).

    Notes
    -----
    Initialisation as :class:`TaylorKAN` with ``in_features = C * kernel_size``:
    ``a[..., k] ~ N(0, (1 / (k sqrt(C kernel_size)))^2)``, ``b = 0``. The layer does not squash its
    input; keep it bounded (or use ``order=1``, a plain convolution, on unbounded inputs).

    Attributes
    ----------
    coef : nn.Parameter
        ``(out_channels, in_channels, kernel_size, order)``; ``coef[o, c, j, k - 1]`` multiplies
        ``x_c(t + (j - left) dilation) ** k``.
    bias : nn.Parameter
        ``(out_channels,)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 1,
                 order: int = 3):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("kernel_size", kernel_size), ("dilation", dilation), ("order", order)):
            if value < 1:
                raise HmsparError(f"TaylorKANConv1d: {name} must be >= 1, got {value}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.dilation, self.order = kernel_size, dilation, order
        span = (kernel_size - 1) * dilation
        self.pad = (span // 2, span - span // 2)
        self.coef = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, order))
        self.bias = nn.Parameter(torch.empty(out_channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the coefficients from the torch default generator (seeded by the caller) and zero the bias."""
        fan_in = self.in_channels * self.kernel_size
        with torch.no_grad():
            for k in range(1, self.order + 1):
                nn.init.normal_(self.coef[..., k - 1], mean=0.0, std=1.0 / (k * math.sqrt(fan_in)))
            self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, T) -> (B, out_channels, T)``."""
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise HmsparError(f"TaylorKANConv1d: expected (B, {self.in_channels}, T) input, got {tuple(x.shape)}")
        pows = [x]
        for _ in range(1, self.order):
            pows.append(pows[-1] * x)
        p = torch.stack(pows, dim=2).flatten(1, 2)  # (B, C, T) -> (B, C, order, T) -> (B, C * order, T)
        p = nn.functional.pad(p, self.pad)  # (B, C * order, T + span)
        # weight[o, c * order + k - 1, j] = coef[o, c, j, k - 1], matching p's channel layout
        weight = self.coef.permute(0, 1, 3, 2).reshape(self.out_channels, self.in_channels * self.order,
                                                       self.kernel_size)
        return nn.functional.conv1d(p, weight, self.bias, dilation=self.dilation)  # -> (B, O, T)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"dilation={self.dilation}, order={self.order}")


#: Temporal poolings of :class:`TaylorKANConvEncoder`.
POOLINGS = ("mean", "max", "attention", "meanmax")


class TaylorKANConvEncoder(nn.Module):
    """Encode a multichannel series with Taylor-KAN convolutions over time and pool it to one vector.

    Input channels (``(B, C_in, T)``, e.g. standardised values and activity mask) are optionally
    extended with the first difference of the first ``n_diff`` channels (``x_t - x_{t-1}``, 0 at
    ``t = 0``) and the relative position ``tau_t = 2 t / (T - 1) - 1``. Then::

        h^0 = TaylorKANConv1d_1(z)                                      # order 1: linear in the inputs
        h^l = h^{l-1} + Dropout(TaylorKANConv1d_order(tanh(LN(h^{l-1}))))    l = 1 .. n_layers,
                                                                         dilation dilation ** (l - 1)

    followed by a last LayerNorm and temporal pooling (``mean``, ``max``, ``attention`` or
    ``meanmax``, the concatenation of mean and max).

    Why this shape: the stem is a polynomial of degree 1 on the raw standardised values, so a large
    spike is neither cubed (which explodes) nor squashed by a fixed ``tanh`` (which hid the size of
    spikes in the per-step encoder); the polynomial layers act on layer-normalised hidden features,
    where ``tanh`` keeps every power bounded whatever the input scale. Growing dilations give a
    receptive field of ``1 + (kernel_size - 1)(1 + sum_l dilation^(l-1))`` steps.

    Parameters
    ----------
    in_channels : int
        ``C_in``.
    hidden : int
        Channels of every layer.
    n_layers : int
        Polynomial (residual) layers after the stem (>= 1).
    order : int
        Polynomial order of those layers.
    kernel_size, dilation : int
        Window of every convolution; layer ``l`` uses ``dilation ** (l - 1)`` (the stem dilation 1).
    pooling : {"mean", "max", "attention", "meanmax"}
        Temporal pooling.
    dropout : float
        Dropout on the residual branches and after pooling.
    n_diff : int
        How many leading input channels get a first-difference channel (0 = none).
    positional : bool
        Append the relative-position channel.

    Attributes
    ----------
    out_features : int
        ``hidden`` (``2 hidden`` for ``meanmax``).
    """

    def __init__(self, in_channels: int, hidden: int, n_layers: int = 2, order: int = 3, kernel_size: int = 3,
                 dilation: int = 2, pooling: str = "attention", dropout: float = 0.0, n_diff: int = 0,
                 positional: bool = True):
        super().__init__()
        if n_layers < 1:
            raise HmsparError(f"TaylorKANConvEncoder: n_layers must be >= 1, got {n_layers}")
        if pooling not in POOLINGS:
            raise HmsparError(f"TaylorKANConvEncoder: pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        if not 0 <= n_diff <= in_channels:
            raise HmsparError(f"TaylorKANConvEncoder: n_diff must be in [0, {in_channels}], got {n_diff}")
        self.in_channels, self.n_diff, self.positional, self.pooling = in_channels, n_diff, positional, pooling
        n_in = in_channels + n_diff + (1 if positional else 0)
        self.stem = TaylorKANConv1d(n_in, hidden, kernel_size, 1, order=1)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(n_layers))
        self.layers = nn.ModuleList(TaylorKANConv1d(hidden, hidden, kernel_size, dilation ** l, order)
                                    for l in range(n_layers))
        self.final_norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)
        self.pool = AttentionPool(hidden) if pooling == "attention" else None
        self.out_features = 2 * hidden if pooling == "meanmax" else hidden

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The stem's input: ``(B, C_in, T) -> (B, C_in + n_diff [+ 1], T)`` (differences, position)."""
        B, _, T = x.shape
        parts = [x]
        if self.n_diff:
            v = x[:, :self.n_diff]  # (B, n_diff, T)
            parts.append(torch.cat([torch.zeros_like(v[..., :1]), v[..., 1:] - v[..., :-1]], dim=-1))
        if self.positional:
            tau = torch.linspace(-1.0, 1.0, T, dtype=x.dtype, device=x.device) if T > 1 \
                else torch.zeros(1, dtype=x.dtype, device=x.device)
            parts.append(tau.view(1, 1, T).expand(B, 1, T))
        return torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode a batch of series.

        Parameters
        ----------
        x : Tensor
            ``(B, in_channels, T)`` channel-major series.

        Returns
        -------
        Tensor
            ``(B, out_features)``.
        """
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise HmsparError(f"TaylorKANConvEncoder: expected (B, {self.in_channels}, T) input, got {tuple(x.shape)}")
        h = self.stem(self.inputs(x))  # (B, C_in', T) -> (B, hidden, T)
        for norm, layer in zip(self.norms, self.layers):
            z = torch.tanh(norm(h.transpose(1, 2))).transpose(1, 2)  # LN over channels: (B, hidden, T)
            h = h + self.dropout(layer(z))  # (B, hidden, T) -> (B, hidden, T)
        h = self.final_norm(h.transpose(1, 2))  # (B, hidden, T) -> (B, T, hidden)
        if self.pooling == "mean":
            out = h.mean(dim=1)  # (B, T, hidden) -> (B, hidden)
        elif self.pooling == "max":
            out = h.amax(dim=1)  # (B, T, hidden) -> (B, hidden)
        elif self.pooling == "meanmax":
            out = torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=-1)  # -> (B, 2 hidden)
        else:
            out = self.pool(h)  # (B, T, hidden) -> (B, hidden)
        return self.dropout(out)
