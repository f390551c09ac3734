"""The top-level config: pharos.yaml loaded into frozen dataclasses, with every error at once.

This package sits above the families: ``schema`` assembles their config
shapes into ``Config`` and ``loader`` reads YAML into it (with ``document``,
``hints`` and ``substitution`` beneath it). No family imports it. Names
handed on here:

* ``Config``: the whole of pharos.yaml (``pharosd.config.schema``).
* ``load_config(path, environ=None) -> LoadedConfig``: read a file, or the
  embedded default when ``path`` is None; raises ``ConfigError``.
* ``parse_config(text, filename="<string>", environ=None) -> Config``.
* ``resolve_config_path(cli_path, environ=None) -> str | None``: ``-c``, else
  ``$PHAROS_CONFIG``, else ``DEFAULT_CONFIG_PATH`` if it exists, else None.
* ``LoadedConfig`` (``config``, ``source``, ``loaded_at``, ``digest``),
  ``DEFAULT_CONFIG_PATH``, ``EMBEDDED_SOURCE``, ``default_config_text()``.

Durations and sizes (``parse_duration`` and friends) live in the leaf
``pharosd.units``; ``Duration``, ``Size`` and ``FrozenDict`` in ``pharosd.types``.
"""

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

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "EMBEDDED_SOURCE",
    "Config",
    "LoadedConfig",
    "default_config_text",
    "load_config",
    "parse_config",
    "resolve_config_path",
]
