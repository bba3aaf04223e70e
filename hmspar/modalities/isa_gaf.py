"""ISA-GAF images: turn sparse (N, C, T) activity series into (N, 2C, S, S) Gramian Angular Fields.

For every channel two images are built (Imputed-Sparse-Aware GAF):

* image ``2c`` (trend): zero/NaN steps are filled by linear interpolation between observed (> 0) steps,
  the series is ``log1p``-compressed, reduced to ``S`` points by piecewise aggregate approximation (PAA),
  rescaled per sample to [-1, 1] and encoded as a Gramian Angular Summation Field (GASF);
* image ``2c + 1`` (sparsity): the 0/1 activity mask is reduced by PAA to ``S`` activity rates in [0, 1],
  which are used directly as cosines (no rescaling) and encoded as a GASF.

For *signed* (real-valued) series (``values="signed"``, e.g. z-normalised measurements) 0 is an ordinary
value and only NaN is a gap: image ``2c`` is the GASF of the gap-interpolated series without ``log1p``
(the per-sample min-max works on any real values), and image ``2c + 1`` the Gramian Angular *Difference*
Field ``sin(phi_i - phi_j)`` of the same rescaled series, which keeps the direction of change that the
symmetric GASF loses (an observation mask of a fully observed series would be a constant image).

Everything is plain, vectorized numpy; no pyts at import or run time. :func:`paa` and :func:`gasf` follow
``pyts.approximation.PiecewiseAggregateApproximation`` and ``pyts.image.GramianAngularField``
(``method='summation'``) exactly, including their segment bounds and the per-sample min-max rule
(a constant sample is mapped to the lower end of the range); ``tests/test_isa_gaf.py`` checks the
equality against pyts itself.
"""

from __future__ import annotations

import numpy as np

from hmspar.errors import HmsparError

__all__ = ["paa", "gasf", "gadf", "activity_mask", "interpolate_gaps", "isa_gaf"]

# sklearn's MinMaxScaler (used by pyts) treats a data range below 10 machine epsilons as zero.
_ZERO_RANGE = 10 * np.finfo(np.float64).eps
# Values this far outside [-1, 1] are float noise and are clipped when ``sample_range`` is None.
_RANGE_TOL = 1e-6


def _check_size(name: str, size: object, length: int) -> int:
    """Validate an output size ``1 <= size <= length`` and return it as an int."""
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)):
        raise HmsparError(f"{name} must be an integer, got {size!r}")
    if not 1 <= int(size) <= length:
        raise HmsparError(f"{name} must satisfy 1 <= {name} <= T = {length}, got {int(size)}")
    return int(size)


def _segments(length: int, output_size: int, overlapping: bool) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) index of each PAA window, as in ``pyts.utils.segmentation``.

    Parameters
    ----------
    length : int
        Number of time steps T.
    output_size : int
        Number of windows S, ``1 <= S <= T``.
    overlapping : bool
        If True, every window has the same width ``w = ceil(T / S)`` and neighbouring windows overlap
        by the ``S * w - T`` surplus spread evenly; if False, the windows partition ``[0, T)`` with
        bounds ``floor(linspace(0, T, S + 1))`` and widths that may differ by one.

    Returns
    -------
    start, end : np.ndarray
        int64 arrays of shape (S,).
    """
    width = -(-length // output_size)  # ceil(T / S)
    if not overlapping:
        bounds = np.linspace(0, length, output_size + 1).astype(np.int64)
        return bounds[:-1], bounds[1:]
    surplus = output_size * width - length
    shift = np.linspace(0, surplus, output_size).astype(np.int64)
    start = np.arange(output_size, dtype=np.int64) * width - shift
    return start, start + width


def paa(x: np.ndarray, output_size: int, overlapping: bool = True) -> np.ndarray:
    """Piecewise aggregate approximation over the last axis.

    Equal to ``pyts.approximation.PiecewiseAggregateApproximation(window_size=None,
    output_size=output_size, overlapping=overlapping)`` applied to every row: each of the S output
    points is the mean of one window of the input (see :func:`_segments` for the window bounds).
    When ``output_size == T`` the input is returned unchanged (as float64).

    Parameters
    ----------
    x : np.ndarray
        Array of shape (..., T).
    output_size : int
        Number of output points S, ``1 <= S <= T``.
    overlapping : bool, default True
        Fixed-width overlapping windows (True) or a partition into windows of nearly equal width.

    Returns
    -------
    np.ndarray
        float64 array of shape (..., S).

    Raises
    ------
    HmsparError
        If ``x`` has no time axis or ``output_size`` is out of range.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 1:
        raise HmsparError(f"paa: input must have a time axis, got shape {x.shape}")
    length = x.shape[-1]
    size = _check_size("output_size", output_size, length)
    if size == length:
        return x.copy()
    start, end = _segments(length, size, overlapping)
    widths = end - start
    out = np.empty(x.shape[:-1] + (size,), dtype=np.float64)
    # At most two distinct widths (one when overlapping): gather each group of windows at once.
    for width in np.unique(widths):
        cols = np.flatnonzero(widths == width)
        index = start[cols, None] + np.arange(width)  # (k, w)
        out[..., cols] = x[..., index].mean(axis=-1)  # (..., k, w) -> (..., k)
    return out


def _min_max(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Rescale each row of ``x`` (..., S) to [low, high]; a constant row maps to ``low``."""
    x_min = x.min(axis=-1, keepdims=True)
    data_range = x.max(axis=-1, keepdims=True) - x_min
    data_range = np.where(data_range < _ZERO_RANGE, 1.0, data_range)
    scale = (high - low) / data_range
    return x * scale + (low - x_min * scale)


def gasf(
    x: np.ndarray,
    image_size: int,
    sample_range: tuple[float, float] | None = (-1, 1),
    overlapping: bool = True,
) -> np.ndarray:
    """Gramian Angular Summation Field of each row of ``x``.

    The series is reduced to ``image_size`` points with :func:`paa`, rescaled per sample to
    ``sample_range`` (or taken as is when ``sample_range`` is None), read as ``cos(phi)`` and encoded
    as ``G[i, j] = cos(phi_i + phi_j) = cos_i cos_j - sin_i sin_j``. Equal to
    ``pyts.image.GramianAngularField(image_size, sample_range, method='summation',
    overlapping=overlapping)``.

    Parameters
    ----------
    x : np.ndarray
        Array of shape (..., T).
    image_size : int
        Image side S, ``1 <= S <= T``.
    sample_range : tuple (low, high) or None, default (-1, 1)
        Target range of the per-sample min-max rescaling, with ``-1 <= low < high <= 1``. A constant
        sample is mapped to ``low`` everywhere. If None, the PAA values must already lie in [-1, 1];
        float noise up to 1e-6 beyond the bounds is clipped.
    overlapping : bool, default True
        PAA window mode, see :func:`paa`. Note that pyts's own default is ``overlapping=False``; both
        agree whenever S divides T.

    Returns
    -------
    np.ndarray
        float64 array of shape (..., S, S), values in [-1, 1].

    Raises
    ------
    HmsparError
        If ``image_size`` or ``sample_range`` is invalid, or values lie outside [-1, 1] when
        ``sample_range`` is None.
    """
    x = np.asarray(x, dtype=np.float64)
    reduced = paa(x, image_size, overlapping=overlapping)  # (..., T) -> (..., S)
    if sample_range is None:
        if reduced.size and (np.nanmin(reduced) < -1 - _RANGE_TOL or np.nanmax(reduced) > 1 + _RANGE_TOL):
            raise HmsparError(
                "gasf: with sample_range=None all values must lie in [-1, 1], got "
                f"[{np.nanmin(reduced):.6g}, {np.nanmax(reduced):.6g}]"
            )
        cos = np.clip(reduced, -1.0, 1.0)
    else:
        if len(sample_range) != 2 or not -1 <= sample_range[0] < sample_range[1] <= 1:
            raise HmsparError(f"gasf: sample_range must be None or (low, high) with -1 <= low < high <= 1, "
                              f"got {sample_range!r}")
        cos = _min_max(reduced, float(sample_range[0]), float(sample_range[1]))
    sin = np.sqrt(np.clip(1.0 - cos**2, 0.0, 1.0))
    # (..., S) -> (..., S, S)
    return cos[..., :, None] * cos[..., None, :] - sin[..., :, None] * sin[..., None, :]


def gadf(x: np.ndarray, image_size: int, overlapping: bool = True) -> np.ndarray:
    """Gramian Angular Difference Field of each row of ``x``: PAA to ``image_size`` points, per-sample min-max
    to [-1, 1] (a constant sample maps to -1), ``G[i, j] = sin(phi_i - phi_j) = sin_i cos_j - cos_i sin_j``.

    Equal to ``pyts.image.GramianAngularField(image_size, method='difference', overlapping=overlapping)``.

    Parameters
    ----------
    x : np.ndarray
        Array of shape (..., T).
    image_size : int
        Image side S, ``1 <= S <= T``.
    overlapping : bool, default True
        PAA window mode, see :func:`paa`.

    Returns
    -------
    np.ndarray
        float64 array of shape (..., S, S), antisymmetric, values in [-1, 1].
    """
    reduced = paa(np.asarray(x, dtype=np.float64), image_size, overlapping=overlapping)  # (..., S)
    cos = _min_max(reduced, -1.0, 1.0)
    sin = np.sqrt(np.clip(1.0 - cos**2, 0.0, 1.0))
    # (..., S) -> (..., S, S)
    return sin[..., :, None] * cos[..., None, :] - cos[..., :, None] * sin[..., None, :]


def activity_mask(series: np.ndarray) -> np.ndarray:
    """Activity indicator of each step: 1.0 where the value is > 0, 0.0 where it is 0 or NaN.

    Parameters
    ----------
    series : np.ndarray
        Array of any shape, typically (N, C, T).

    Returns
    -------
    np.ndarray
        float32 array of the same shape.
    """
    series = np.asarray(series)
    with np.errstate(invalid="ignore"):
        return (series > 0).astype(np.float32)


def interpolate_gaps(series: np.ndarray, signed: bool = False) -> np.ndarray:
    """Fill gaps (steps that are 0 or NaN; with ``signed=True`` only NaN) by linear interpolation between
    observed steps (> 0; with ``signed=True`` any finite value).

    Inside a run of gaps the values go linearly from the last observed value before the run to the
    first one after it; gaps before the first (after the last) observed step take the first (last)
    observed value; a row with no observed step becomes all 0. Fully vectorized over the leading axes.

    Parameters
    ----------
    series : np.ndarray
        Array of shape (..., T).
    signed : bool, default False
        Real-valued series: 0 and negative values are observations, only NaN is a gap.

    Returns
    -------
    np.ndarray
        float64 array of the same shape, with no NaN.

    Examples
    --------
    >>> interpolate_gaps(np.array([0.0, 2.0, 0.0, np.nan, 8.0, 0.0]))
    array([2., 2., 4., 6., 8., 8.])
    >>> interpolate_gaps(np.array([-1.0, np.nan, 3.0, 0.0]), signed=True)
    array([-1.,  1.,  3.,  0.])
    """
    x = np.asarray(series, dtype=np.float64)
    if x.ndim < 1:
        raise HmsparError(f"interpolate_gaps: input must have a time axis, got shape {x.shape}")
    length = x.shape[-1]
    with np.errstate(invalid="ignore"):
        observed = np.isfinite(x) if signed else x > 0  # (..., T)
    steps = np.arange(length)
    # Index of the last observed step at or before t (-1 if none) and the first at or after t (T if none).
    prev = np.maximum.accumulate(np.where(observed, steps, -1), axis=-1)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(observed, steps, length), axis=-1), axis=-1), axis=-1)
    has_prev, has_next = prev >= 0, nxt < length
    # Missing neighbours borrow the other side (edge gaps); rows with neither end up 0 below.
    left = np.where(has_prev, prev, nxt).clip(0, length - 1)
    right = np.where(has_next, nxt, prev).clip(0, length - 1)
    x_left = np.take_along_axis(x, left, axis=-1)
    x_right = np.take_along_axis(x, right, axis=-1)
    span = right - left
    frac = np.where(span > 0, (steps - left) / np.where(span > 0, span, 1), 0.0)
    filled = x_left + (x_right - x_left) * frac
    return np.where(has_prev | has_next, filled, 0.0)


def isa_gaf(
    series: np.ndarray,
    image_size: int,
    chunk_size: int = 8192,
    progress: bool = False,
    signed: bool = False,
) -> np.ndarray:
    """ISA-GAF images of sparse multichannel series: a trend and a sparsity GASF per channel.

    For channel ``c``:

    * ``out[:, 2c]`` (trend): :func:`interpolate_gaps`, ``log1p``, :func:`paa` to S points, per-sample
      min-max to [-1, 1], GASF. A series with a constant trend (including one with no activity at all)
      is mapped to -1 everywhere, hence an all +1 image, as pyts does.
    * ``out[:, 2c + 1]`` (sparsity): PAA of the 0/1 :func:`activity_mask`, i.e. the activity rate of each
      window in [0, 1], used directly as ``cos(phi)`` (``sample_range=None``). An always-active mask
      gives an all +1 image and a never-active mask an all -1 image. A per-sample min-max rescale would
      map both constant masks to the same picture, erasing the most important distinction, which is
      why it is not applied here.

    Entities are processed ``chunk_size`` at a time, so a memory-mapped ``series`` is never fully loaded.

    Parameters
    ----------
    series : np.ndarray
        Array of shape (N, C, T); 0 = inactive step, NaN = unobserved step (both are gaps).
    image_size : int
        Image side S, ``1 <= S <= T``. PAA uses pyts's overlapping windows of width ``ceil(T / S)``.
    chunk_size : int, default 8192
        Number of entities transformed at once.
    progress : bool, default False
        Show a tqdm progress bar over the chunks.
    signed : bool, default False
        Real-valued series (see the module docstring): gaps are NaN only, no ``log1p``, and image
        ``2c + 1`` is the GADF of the trend instead of the sparsity GASF.

    Returns
    -------
    np.ndarray
        float32 array of shape (N, 2C, S, S), values in [-1, 1].

    Raises
    ------
    HmsparError
        If ``series`` is not 3-dimensional or ``image_size`` / ``chunk_size`` is out of range.
    """
    if getattr(series, "ndim", None) != 3:
        shape = getattr(series, "shape", None)
        raise HmsparError(f"isa_gaf: series must have shape (N, C, T), got {shape if shape is not None else type(series).__name__}")
    n, channels, length = series.shape
    size = _check_size("image_size", image_size, length)
    if isinstance(chunk_size, (bool, np.bool_)) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise HmsparError(f"isa_gaf: chunk_size must be a positive integer, got {chunk_size!r}")
    out = np.empty((n, 2 * channels, size, size), dtype=np.float32)
    starts = range(0, n, int(chunk_size))
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, total=len(starts), desc="isa-gaf", unit="chunk")
    for lo in starts:
        hi = min(lo + int(chunk_size), n)
        x = np.asarray(series[lo:hi], dtype=np.float64).reshape(-1, length)  # (n_c * C, T)
        if signed:
            filled = interpolate_gaps(x, signed=True)  # (n_c * C, T), any real values
            trend = gasf(filled, size, sample_range=(-1, 1))  # (n_c * C, S, S)
            sparsity = gadf(filled, size)  # (n_c * C, S, S): direction of change instead of activity
        else:
            trend = gasf(np.log1p(interpolate_gaps(x)), size, sample_range=(-1, 1))  # (n_c * C, S, S)
            sparsity = gasf(activity_mask(x), size, sample_range=None)  # (n_c * C, S, S)
        out[lo:hi, 0::2] = trend.reshape(hi - lo, channels, size, size)
        out[lo:hi, 1::2] = sparsity.reshape(hi - lo, channels, size, size)
    return out
