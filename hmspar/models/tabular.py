"""Flattening the modality dict into one tabular feature matrix, for tree models, ModernNCA and other
baselines that take a plain ``(n, F)`` table.

Column order is fixed and does not depend on the order of ``inputs``::

    series  C*T columns, channel-major (``series[c, t]``: all periods of channel 0, then channel 1, ...)
    mask    C*T columns, same order (only with ``series`` and ``include_mask=True``)
    image   K*S*S columns, channel-major then row-major (only if ``image`` is an input)
    static  F columns, as stored by the loader (one-hot categoricals, standardised numerics)
    text    D columns of the sentence embedding

So ``inputs: [series, static]`` gives ``2*C*T + F`` columns, and adding ``text`` appends ``D`` more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hmspar.errors import HmsparError

#: The fixed column order of :func:`flatten_inputs` (``mask`` follows ``series``).
COLUMN_ORDER = ("series", "mask", "image", "static", "text")
_KNOWN = ("series", "image", "text", "static")


def check_inputs(inputs: Sequence[str]) -> None:
    """Raise ``ValueError`` (turned into a :class:`HmsparError` naming the params key by
    :func:`hmspar.config.build`) if ``inputs`` is empty or names an unknown modality."""
    if not list(inputs):
        raise ValueError("inputs: must name at least one modality")
    for m in inputs:
        if m not in _KNOWN:
            raise ValueError(f"inputs: unknown modality {m!r} (known: {', '.join(_KNOWN)})")


def _blocks(inputs: Sequence[str], include_mask: bool) -> list[str]:
    """Names of the array blocks to concatenate, in :data:`COLUMN_ORDER`."""
    inputs = list(inputs)
    if not inputs:
        raise HmsparError("flatten_inputs: 'inputs' must name at least one modality")
    for m in inputs:
        if m not in _KNOWN:
            raise HmsparError(f"flatten_inputs: unknown input modality {m!r} (known: {', '.join(_KNOWN)})")
    wanted = set(inputs)
    if "series" in wanted and include_mask:
        wanted.add("mask")
    return [b for b in COLUMN_ORDER if b in wanted]


def flatten_inputs(X: Mapping[str, np.ndarray], inputs: Sequence[str], include_mask: bool = True) -> np.ndarray:
    """Concatenate the listed modalities of ``X`` into one float32 matrix.

    Parameters
    ----------
    X : mapping of str to np.ndarray
        Modality arrays as produced by :func:`hmspar.data.loader.load_task`: ``series``/``mask``
        (n, C, T), ``image`` (n, K, S, S), ``static`` (n, F), ``text`` (n, D).
    inputs : sequence of str
        Modalities to use (subset of ``series``, ``image``, ``text``, ``static``).
    include_mask : bool
        Append the activity mask after the series when ``series`` is an input.

    Returns
    -------
    np.ndarray
        (n, n_features) float32, columns in the order documented in this module.

    Raises
    ------
    HmsparError
        If a modality is unknown or missing from ``X``, or the arrays disagree in their number of rows.
    """
    parts = []
    n_rows = None
    for block in _blocks(inputs, include_mask):
        if block not in X:
            raise HmsparError(f"flatten_inputs: input modality {block!r} is missing from X "
                              f"(given: {', '.join(sorted(X)) or 'none'})")
        a = np.asarray(X[block], dtype=np.float32)
        if a.ndim < 1:
            raise HmsparError(f"flatten_inputs: {block!r} must have a row axis, got shape {a.shape}")
        if n_rows is None:
            n_rows = a.shape[0]
        elif a.shape[0] != n_rows:
            raise HmsparError(f"flatten_inputs: {block!r} has {a.shape[0]} rows, expected {n_rows}")
        parts.append(a.reshape(a.shape[0], -1))
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


def feature_names(X: Mapping[str, np.ndarray], inputs: Sequence[str], include_mask: bool = True,
                  channels: Sequence[str] | None = None, static_columns: Sequence[str] | None = None) -> list[str]:
    """Column names matching :func:`flatten_inputs` (e.g. ``series[ch0,t3]``, ``static[age]``, ``text[17]``).

    Parameters
    ----------
    X : mapping of str to np.ndarray
        Only the shapes are read.
    inputs, include_mask
        As in :func:`flatten_inputs`.
    channels : sequence of str, optional
        Channel names (``meta.json: channels``); default ``ch0, ch1, ...``.
    static_columns : sequence of str, optional
        Static column names (``meta.json``); default their indices.
    """
    names: list[str] = []
    for block in _blocks(inputs, include_mask):
        if block not in X:
            raise HmsparError(f"feature_names: input modality {block!r} is missing from X")
        shape = np.shape(X[block])[1:]
        if block in ("series", "mask"):
            n_ch, n_t = shape
            chs = list(channels) if channels is not None else [f"ch{c}" for c in range(n_ch)]
            if len(chs) != n_ch:
                raise HmsparError(f"feature_names: {len(chs)} channel names for {n_ch} channels")
            names += [f"{block}[{chs[c]},t{t}]" for c in range(n_ch) for t in range(n_t)]
        elif block == "image":
            k, h, w = shape
            names += [f"image[{c},{i},{j}]" for c in range(k) for i in range(h) for j in range(w)]
        elif block == "static":
            (f,) = shape
            cols = list(static_columns) if static_columns is not None else [str(j) for j in range(f)]
            if len(cols) != f:
                raise HmsparError(f"feature_names: {len(cols)} static column names for {f} columns")
            names += [f"static[{c}]" for c in cols]
        else:
            (d,) = shape
            names += [f"text[{j}]" for j in range(d)]
    return names
