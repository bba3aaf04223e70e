"""Typed configuration: build dataclasses from ``params.yaml`` sections, rejecting unknown keys and wrong types.

Every component declares a frozen dataclass; :func:`build` fills it from a plain mapping and raises
:class:`~hmspar.errors.HmsparError` naming the dotted params key when a key is unknown, missing or of the
wrong type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from hmspar.errors import HmsparError

T = TypeVar("T")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against type annotation ``tp`` and return it (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except HmsparError as exc:
                errors.append(str(exc))
        raise HmsparError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise HmsparError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise HmsparError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        out = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise HmsparError(f"{where}: expected a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise HmsparError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise HmsparError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise HmsparError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise HmsparError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise HmsparError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def build(cls: type[T], data: Mapping[str, Any] | None, where: str) -> T:
    """Build dataclass ``cls`` from ``data``; ``where`` is the dotted params path used in error messages.

    Raises
    ------
    HmsparError
        On an unknown key (listing the accepted ones), a missing required key or a value of the wrong type.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise HmsparError(f"{where}: expected a mapping of settings, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise HmsparError(
            f"{where}.{unknown[0]}: unknown key (accepted keys: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, field in fields.items():
        key = f"{where}.{name}"
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise HmsparError(f"{key}: required key is missing")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # raised by __post_init__ validation
        message = str(exc)
        first, _, rest = message.partition(" ")
        name = first.rstrip(":")
        if name in fields and rest:  # "lr: must be positive, got -1" (or "lr must ...") -> "train.lr: must ..."
            raise HmsparError(f"{where}.{name}: {rest}") from None
        raise HmsparError(f"{where}: {message}") from None


def require_positive(where: str, **values: float) -> None:
    """Raise a :class:`HmsparError` naming the first non-positive value, e.g. ``datasets.retail.n_entities``."""
    for name, value in values.items():
        if value is not None and value <= 0:
            raise HmsparError(f"{where}.{name}: must be positive, got {value!r}")


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-dict view of a config dataclass (for metadata files)."""
    return dataclasses.asdict(obj)
