"""Reading ``params.yaml``: the single source of every setting, validated section by section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hmspar.errors import HmsparError

TOP_LEVEL_KEYS = ("datasets", "imports", "text", "runs", "hmspar_runs", "seeds", "selection", "model", "train",
                  "baselines", "baseline_models", "ablation", "evaluate", "rec", "search")


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Load and shallowly validate ``params.yaml`` (unknown top-level keys are rejected)."""
    path = Path(path)
    if not path.exists():
        raise HmsparError(f"{path}: params file not found (run from the repository root)")
    try:
        with open(path) as fh:
            params = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise HmsparError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(params, dict) or not params:
        raise HmsparError(f"{path}: empty or not a mapping")
    unknown = sorted(set(params) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise HmsparError(f"{path}: unknown top-level key {unknown[0]!r} (accepted: {', '.join(TOP_LEVEL_KEYS)})")
    return params


def section(params: dict[str, Any], dotted: str) -> Any:
    """Return ``params[a][b]...`` for ``dotted='a.b'``, with an error naming the missing key."""
    node: Any = params
    walked = []
    for part in dotted.split("."):
        walked.append(part)
        if not isinstance(node, dict) or part not in node:
            raise HmsparError(f"params.yaml: missing key {'.'.join(walked)!r}")
        node = node[part]
    return node


def seeds(params: dict[str, Any]) -> list[int]:
    """The top-level ``seeds`` list (every model and recommender fits once per seed), validated."""
    value = params.get("seeds")
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        raise HmsparError(f"seeds: expected a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        raise HmsparError(f"seeds: duplicate seeds in {value!r}")
    return value
