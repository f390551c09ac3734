"""The config: pharos.yaml loaded into frozen dataclasses, with every error at once.

Public API (imported lazily, so the family modules such as
``pharosd.sinks.config`` can import ``pharosd.config.types`` without a cycle
through ``schema``):

* ``Config``: the whole of pharos.yaml (``pharosd.config.schema``).
* ``load_config(path, environ=None) -> LoadedConfig``: read a file, or the
  embedded default when ``path`` is None; raises ``ConfigError``.
* ``parse_config(text, filename="<string>", environ=None) -> Config``.
* ``resolve_config_path(cli_path, environ=None) -> str | None``: ``-c``, else
  ``$PHAROS_CONFIG``, else ``DEFAULT_CONFIG_PATH`` if it exists, else None.
* ``LoadedConfig`` (``config``, ``source``, ``loaded_at``, ``digest``),
  ``DEFAULT_CONFIG_PATH``, ``EMBEDDED_SOURCE``, ``default_config_text()``.
* ``parse_duration``, ``parse_size``, ``format_duration``, ``format_size``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pharosd.config.loader import (
        DEFAULT_CONFIG_PATH,
        EMBEDDED_SOURCE,
        LoadedConfig,
        default_config_text,
        load_config,
        parse_config,
        resolve_config_path,
    )
    from pharosd.config.schema import Config
    from pharosd.config.units import format_duration, format_size, parse_duration, parse_size

_EXPORTS = {
    "Config": "pharosd.config.schema",
    "DEFAULT_CONFIG_PATH": "pharosd.config.loader",
    "EMBEDDED_SOURCE": "pharosd.config.loader",
    "LoadedConfig": "pharosd.config.loader",
    "default_config_text": "pharosd.config.loader",
    "load_config": "pharosd.config.loader",
    "parse_config": "pharosd.config.loader",
    "resolve_config_path": "pharosd.config.loader",
    "format_duration": "pharosd.config.units",
    "format_size": "pharosd.config.units",
    "parse_duration": "pharosd.config.units",
    "parse_size": "pharosd.config.units",
}

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "EMBEDDED_SOURCE",
    "Config",
    "LoadedConfig",
    "default_config_text",
    "format_duration",
    "format_size",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_size",
    "resolve_config_path",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
