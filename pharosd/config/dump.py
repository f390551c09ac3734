"""The effective config as YAML, for ``pharosd check-config --dump``, secrets redacted.

``dump_config(config)`` walks ``Config`` by its type hints (so a ``Duration`` reads
``30s`` and a ``Size`` ``512MiB``, not a float): every key with its value after
defaults, ``${NAME}`` substitution and drop-ins; a key whose value is None
("inherit" or "unset") is left out, and so is ``include`` (the drop-ins are
already in). A value under a key that names a secret (``token``, ``password``,
``secret``, ``auth``, ... see ``substitution.looks_secret``) reads
``<redacted>``, and so does the password of a URL (``https://user:***@host``).
Without redactions, the output loads back into the same ``Config``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml

from pharosd.config.hints import accepts, fields_of
from pharosd.config.schema import Config
from pharosd.config.substitution import looks_secret
from pharosd.types import Duration, Size
from pharosd.units import format_duration

REDACTED = "<redacted>"
_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://)([^/@:]*):([^/@]*)@", re.IGNORECASE)
_SIZE_UNITS = (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def dump_config(config: Config) -> str:
    """``config`` as YAML text, keys in schema order."""
    data = _record(config, "")
    data.pop("include", None)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True,
                          width=100)


def _record(obj: Any, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    cls: type = type(obj)
    for key, f in fields_of(cls).items():
        value = getattr(obj, f.attr)
        if value is None:
            continue
        out[key] = _value(value, f.annotation, f"{path}.{key}" if path else key)
    return out


def _value(value: Any, annotation: Any, path: str) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _record(value, path)
    acc = accepts(annotation)
    if isinstance(value, tuple):
        return [_value(v, acc.sequence, f"{path}[{i}]") for i, v in enumerate(value)]
    if acc.dict_values is not None and not isinstance(value, str | int | float | bool):
        return {k: _value(v, acc.dict_values, f"{path}.{k}") for k, v in value.items()}
    if looks_secret(path) and value != "":
        return REDACTED
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and Duration in acc.scalars:
        return format_duration(value)
    if isinstance(value, int) and Size in acc.scalars:
        return _size(value)
    if isinstance(value, str):
        return _USERINFO.sub(lambda m: f"{m[1]}{m[2]}:{REDACTED}@", value)
    return value


def _size(size: int) -> str | int:
    for unit, factor in _SIZE_UNITS:
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return size
