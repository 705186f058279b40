"""A small declared schema for group data: dataclasses plus validators.

Every role declares its settings as a frozen dataclass. `parse()` builds one from
raw inventory data and refuses unknown keys, missing keys and wrong types with a
`SettingsError` that names the key and the fix, before any host is contacted.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from typing import Any

_DURATION = re.compile(r"^(\d+(?:ms|y|w|d|h|m|s))+$")
_DURATION_PART = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_SIZE = re.compile(r"^\d+(B|KB|MB|GB|TB|PB|EB)$")


class SettingsError(ValueError):
    """Bad inventory or group data. `key` is the dotted path, `fix` says what to do."""

    def __init__(self, key: str, problem: str, fix: str):
        self.key, self.problem, self.fix = key, problem, fix
        super().__init__(f"{key}: {problem}. Fix: {fix}")


def duration_seconds(value: str) -> float:
    """Seconds in a Prometheus-style duration such as "15d" or "1h30m"."""
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))


def check_duration(key: str, value: Any, minimum: str | None = None) -> None:
    if not isinstance(value, str) or not _DURATION.match(value):
        raise SettingsError(
            key, f"{value!r} is not a duration", 'write it like "30s", "15d" or "1h30m" (units ms, s, m, h, d, w, y)'
        )
    if minimum and duration_seconds(value) < duration_seconds(minimum):
        raise SettingsError(key, f"{value} is shorter than the minimum {minimum}", f"use {minimum} or more")


def check_size(key: str, value: Any) -> None:
    if value != "0" and (not isinstance(value, str) or not _SIZE.match(value)):
        raise SettingsError(key, f"{value!r} is not a size", 'write it like "50GB" or "512MB", or "0" for no limit')


def check_port(key: str, value: int) -> None:
    if not 1 <= value <= 65535:
        raise SettingsError(key, f"{value} is not a TCP port", "use a number from 1 to 65535")


def check_url(key: str, value: str, schemes: tuple[str, ...] = ("http", "https")) -> None:
    if not re.match(rf"^({'|'.join(schemes)})://[^/\s:]+(:\d+)?(/\S*)?$", value or ""):
        raise SettingsError(key, f"{value!r} is not a URL", f"write a full URL such as {schemes[0]}://host:port")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(key: str, tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, key)
    if isinstance(tp, type) and hasattr(tp, "model_validate"):
        # A pydantic settings model (roles/_model.py), nested in the dataclass Settings.
        from roles import _model

        try:
            return _model.parse(tp, value, key)
        except _model.SettingsError as err:
            raise SettingsError(err.key, err.problem, err.fix) from None
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(key, option, value)
            except SettingsError as err:
                errors.append(err)
        raise errors[0]
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise SettingsError(key, f"{value!r} is not allowed", f"use one of: {', '.join(map(str, allowed))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SettingsError(key, f"expected a list, got {type(value).__name__}", "write a list, e.g. [...]")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        return tuple(_coerce(f"{key}[{i}]", item_tp, v) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise SettingsError(key, f"expected a mapping, got {type(value).__name__}", "write a dict, e.g. {...}")
        _, val_tp = typing.get_args(tp) or (str, Any)
        return {str(k): _coerce(f"{key}.{k}", val_tp, v) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise SettingsError(key, f"expected {_type_name(tp)}, got {value!r}", f"set {key} to a {_type_name(tp)}")
    return value


def parse(cls: type, data: Any, prefix: str) -> Any:
    """Build dataclass `cls` from `data`, naming `prefix` in every error.

    After construction, `cls.validate(self, prefix)` runs when defined, for rules
    that span fields. A class may declare `MOVED_KEYS = {old key: where it lives now}`
    so data written for an older schema is refused with the new place as the fix.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SettingsError(prefix, f"expected a mapping, got {type(data).__name__}", f"set {prefix} to a dict")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    moved: dict[str, str] = getattr(cls, "MOVED_KEYS", {})
    for key in data:
        if key in moved:
            raise SettingsError(f"{prefix}.{key}", f"this key moved to {moved[key]}", f"set {moved[key]} instead and remove {key}")
        if key not in fields:
            close = difflib.get_close_matches(key, [*fields, *moved], n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(fields))}"
            if close and close[0] in moved:
                hint += f" It moved: set {moved[close[0]]} instead"
            raise SettingsError(f"{prefix}.{key}", "unknown key", hint)
    values = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}"
        if name in data:
            values[name] = _coerce(key, hints[name], data[name])
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise SettingsError(key, "required key is missing", f"set {key} in group_data or the inventory")
    obj = cls(**values)
    if hasattr(obj, "validate"):
        obj.validate(prefix)
    return obj
