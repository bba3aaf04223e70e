"""Torch device resolution from a ``train.device`` setting (``auto``, ``cpu`` or ``cuda``): the one
resolver of both tracks.

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
        ``"auto"`` (CUDA when available, else the CPU), ``"cpu"`` or ``"cuda"`` (or ``"cuda:N"``). Inside a
        torchrun worker, CUDA resolves to the worker's own GPU (``cuda:<LOCAL_RANK>``).

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
        resolved = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif str(device).startswith("cuda") and not torch.cuda.is_available():
        raise HmsparError(f"train.device: {device!r} requested but no CUDA device is available "
                          "(set train.device to 'auto' or 'cpu')")
    else:
        resolved = torch.device(device)
    if resolved.type == "cuda":
        from hmspar.training import distributed

        if distributed.is_active():  # a torchrun worker with its process group up
            return distributed.worker_device(resolved)
    return resolved
