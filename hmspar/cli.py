"""Shared entry-point plumbing for the ``stages/`` scripts: one error format, one exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable

from hmspar.errors import HmsparError


def main(fn: Callable[[list[str]], None], usage: str, n_args: int) -> None:
    """Run ``fn(argv)``; a :class:`HmsparError` prints ``error: ...`` and exits with status 2."""
    argv = sys.argv[1:]
    if len(argv) != n_args:
        print(f"usage: {usage}", file=sys.stderr)
        sys.exit(2)
    try:
        fn(argv)
    except HmsparError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
