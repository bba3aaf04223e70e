"""Heap policy for fits whose every step allocates and frees very large buffers.

A torch recommender scores the whole catalogue at every training position: each step allocates the
(positions x items) logits, their softmax and their gradients, tens to hundreds of megabytes each, and frees
them at the end of the step. glibc's ``malloc`` serves any block above its mmap threshold (at most 32 MiB)
with a fresh ``mmap`` and returns it with ``munmap`` on ``free``, so every step asks the kernel for new pages,
which it must zero. On the fashion shop that kernel work was 20 s of system time per 100 SASRec steps (44 s of
wall time) and 29 s per 150 GRU4Rec steps (41 s).

:func:`heap_reuse` keeps those blocks in the process heap for the duration of a fit (``mallopt``:
``M_MMAP_MAX = 0``, so no block is mmap-ed, and a trim threshold of 1 GiB, so freed memory is not handed back
at each step), then restores glibc's defaults and trims the heap. The arithmetic is untouched: the fitted
weights are byte-identical (checked by ``tests/test_memory.py``). The cost is fragmentation: a small block
allocated inside a freed large one makes the next large block grow the heap, so the peak memory rises. Measured
by ``python -m benchmarks.bench_heap`` on two idle cores (2026-12-07, ``benchmarks/results/heap_fashion.json``):
SASRec 43.9 -> 34.3 s per 100 steps (1.28x; peak memory 954 -> 1,283 MB), GRU4Rec 41.3 -> 28.7 s per 150 steps
(1.44x; 703 -> 1,213 MB), ATHWE as published 44.7 -> 45.4 s per 30 steps (no gain: its blocks are smaller);
HMSPAR, whose blocks are small, is unchanged as well, so the classification track does not use it.

Off glibc (macOS, musl) it does nothing. ``HMSPAR_HEAP_REUSE=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import platform
from collections.abc import Iterator

#: Environment variable: ``0`` turns :func:`heap_reuse` off.
ENV = "HMSPAR_HEAP_REUSE"
#: glibc's ``mallopt`` parameters and their defaults (malloc.h; glibc 2.x).
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
#: The trim threshold while a fit runs: freed heap memory up to this much stays with the process.
KEEP_BYTES = 1 << 30

_depth = 0


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc with ``mallopt`` and ``malloc_trim``; None otherwise (looked up once:
    ``platform.libc_ver`` reads the interpreter's file)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def enabled(environ: dict[str, str] | None = None) -> bool:
    """Whether :func:`heap_reuse` acts: on glibc, unless ``HMSPAR_HEAP_REUSE`` is ``0``."""
    env = os.environ if environ is None else environ
    return env.get(ENV, "1").strip() != "0" and _glibc() is not None


@contextlib.contextmanager
def heap_reuse() -> Iterator[bool]:
    """Keep large freed blocks in the heap while the block runs (see the module docstring); yields whether it
    acts. Nested uses act once, at the outermost level. Leaving restores glibc's defaults
    (``M_MMAP_MAX`` 65,536, trim threshold 128 KiB; glibc then keeps its mmap threshold where it stood, no
    longer adjusting it) and trims the heap."""
    global _depth
    libc = _glibc() if enabled() else None
    outermost = libc is not None and _depth == 0
    _depth += 1
    if outermost:
        libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES)
        libc.mallopt(M_MMAP_MAX, 0)
    try:
        yield libc is not None
    finally:
        _depth -= 1
        if outermost:
            libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
            libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
            libc.malloc_trim(0)
