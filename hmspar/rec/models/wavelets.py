"""A differentiable discrete wavelet transform (Haar, db2) in torch, as an orthogonal matrix.

With periodic extension, a multi-level DWT of a length-``n`` signal is an orthogonal ``n x n`` linear
map: :func:`dwt_matrix` builds it once in numpy, :class:`DWT` applies it along the last axis (forward
``x @ W.T``, inverse ``c @ W``), so gradients flow through both directions at the cost of one matmul.
Coefficients are ordered like PyWavelets' ``wavedec``: ``[cA_J, cD_J, ..., cD_1]`` (Haar values equal
PyWavelets' ``mode="periodization"`` ones; db2 may differ from it by a circular shift). No new dependency: the two filter banks are written out here.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from hmspar.errors import HmsparError

_S3 = math.sqrt(3.0)
#: Decomposition low-pass filters (orthonormal: sum of squares 1, sum sqrt 2).
LOWPASS = {
    "haar": np.array([1.0, 1.0]) / math.sqrt(2.0),
    "db2": np.array([1 + _S3, 3 + _S3, 3 - _S3, 1 - _S3]) / (4 * math.sqrt(2.0)),
}


def _one_level(n: int, wavelet: str) -> np.ndarray:
    """(n, n) orthogonal single-level analysis matrix: rows 0..n/2-1 approximation, then detail."""
    h = LOWPASS[wavelet]
    # quadrature mirror high-pass, sign chosen to match PyWavelets (haar: cD = (x0 - x1) / sqrt 2)
    g = np.array([(-1) ** k * h[len(h) - 1 - k] for k in range(len(h))])
    half = n // 2
    W = np.zeros((n, n))
    for i in range(half):
        for k in range(len(h)):
            W[i, (2 * i + k) % n] += h[k]
            W[half + i, (2 * i + k) % n] += g[k]
    return W


def dwt_matrix(n: int, wavelet: str = "haar", levels: int = 1) -> np.ndarray:
    """Orthogonal (n, n) matrix of a ``levels``-level periodised DWT.

    Parameters
    ----------
    n : int
        Signal length, divisible by ``2 ** levels``.
    wavelet : {"haar", "db2"}
    levels : int
        Decomposition levels (>= 1).

    Returns
    -------
    np.ndarray
        ``W`` with ``coeffs = W @ x`` ordered ``[cA_J, cD_J, ..., cD_1]`` and ``x = W.T @ coeffs``.

    Raises
    ------
    HmsparError
        On an unknown wavelet or a length not divisible by ``2 ** levels``.
    """
    if wavelet not in LOWPASS:
        raise HmsparError(f"wavelet: unknown wavelet {wavelet!r} (known: {', '.join(LOWPASS)})")
    if levels < 1 or n % (2 ** levels):
        raise HmsparError(f"wavelet levels: length {n} is not divisible by 2**{levels}")
    W = np.eye(n)
    m = n
    for _ in range(levels):
        step = np.eye(n)
        step[:m, :m] = _one_level(m, wavelet)
        W = step @ W
        m //= 2
    return W


def band_index(n: int, levels: int) -> np.ndarray:
    """(n,) band of each coefficient: 0 = approximation cA_J, j = detail cD_{J-j+1} (coarse to fine)."""
    out = np.zeros(n, dtype=np.int64)
    start = n // (2 ** levels)
    size = start
    for j in range(1, levels + 1):
        out[start:start + size] = j
        start += size
        size *= 2
    return out


class DWT(nn.Module):
    """Multi-level DWT along the last axis of a tensor (differentiable, exact inverse).

    Parameters
    ----------
    n : int
        Length of the last axis.
    wavelet : {"haar", "db2"}
    levels : int
    """

    def __init__(self, n: int, wavelet: str = "haar", levels: int = 1) -> None:
        super().__init__()
        self.register_buffer("W", torch.from_numpy(dwt_matrix(n, wavelet, levels)).float())
        self.register_buffer("bands", torch.from_numpy(band_index(n, levels)))
        self.n_bands = levels + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., n) signal -> (..., n) coefficients ``[cA_J, cD_J, ..., cD_1]``."""
        return x @ self.W.T

    def inverse(self, c: torch.Tensor) -> torch.Tensor:
        """(..., n) coefficients -> (..., n) signal."""
        return c @ self.W
