"""Torch device resolution from a ``train.device`` setting (``auto``, ``cpu`` or ``cuda``).

torch is imported inside the function, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import Any

from hmspar.errors import HmsparError


def resolve_device(device: str) -> Any:
    """The ``torch.device`` a ``train.device`` setting asks for.

    Parameters
    ----------
    device : str
        ``"auto"`` (CUDA when available, else the CPU), ``"cpu"`` or ``"cuda"`` (or ``"cuda:N"``).

    Returns
    -------
    torch.device

    Raises
    ------
    HmsparError
        ``cuda`` asked for on a machine without a CUDA device.
    """
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise HmsparError(f"train.device: {device!r} requested but no CUDA device is available "
                          "(set train.device to 'auto' or 'cpu')")
    return torch.device(device)
