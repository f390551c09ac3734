"""Load pharos.yaml: YAML text -> the frozen ``Config``, generically, every error at once.

The pieces beneath: ``document`` composes the YAML into nodes that keep
their line and column, ``hints`` says what each config annotation accepts,
``substitution`` expands ``${NAME}``, and ``builder`` walks the nodes
against the dataclasses' type hints (no per-class code, so any dataclass
made of the vocabulary of ``pharosd.config.schema`` loads). A bad value
records a ``ConfigIssue`` and the walk goes on, so one run reports every
problem; ``ConfigError`` lists them in file order. A top-level ``include``
reads drop-ins (``pharosd.config.include``) into the same ``Config``. ``<<`` merge keys work;
duplicate keys, non-string keys and tags outside YAML's own (``!vault``) are
errors anywhere in the document.

This module is the public face: ``parse_config``, ``parse_as``,
``load_config``, ``resolve_config_path``, ``default_config_text``, ``issue_at``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode

from pharosd.config.builder import Builder
from pharosd.config.document import compose, is_null, locate
from pharosd.config.include import parse_tree, read_text
from pharosd.config.schema import Config
from pharosd.errors import ConfigError, ConfigIssue

DEFAULT_CONFIG_PATH = "/etc/pharos.yaml"
EMBEDDED_SOURCE = "<embedded default>"


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config and where it came from (``source`` is a path or EMBEDDED_SOURCE)."""

    config: Config
    source: str
    loaded_at: float      # wall-clock time of the load
    digest: str           # sha256 of the text(s), to tell whether a reload changed anything
    files: tuple[str, ...] = ()                # the main file and its drop-ins, as read
    added: tuple[dict[str, int], ...] = ()     # per file: list key -> entries it added


def parse_config(text: str, filename: str = "<string>",
                 environ: Mapping[str, str] | None = None) -> Config:
    """Parse pharos.yaml text into ``Config``; raise ``ConfigError`` listing every problem."""
    return parse_tree(text, filename, os.environ if environ is None else environ).config


def parse_as(cls: type, text: str, filename: str = "<string>",
             environ: Mapping[str, str] | None = None) -> Any:
    """Parse YAML text into any dataclass made of the schema vocabulary."""
    root = compose(text, filename)
    if root is None or is_null(root):   # an empty file: every default
        root = MappingNode("tag:yaml.org,2002:map", [],
                           start_mark=yaml.Mark(filename, 0, 0, 0, "", 0))
    builder = Builder(filename, os.environ if environ is None else environ)
    builder.scan(root, "", set())
    value = builder.build(root, cls, "")
    if builder.issues:
        raise ConfigError(builder.sorted_issues())
    return value


def default_config_text() -> str:
    """The embedded default config (pharosd/config/default.yaml)."""
    # A plain file beside this module: importlib.resources would cost ~1 MiB of RSS
    # (it imports tempfile, shutil and the compression modules) for one read.
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.yaml")
    with open(path, encoding="utf-8") as f:
        return f.read()


def load_config(path: str | None, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read and parse ``path``, or the embedded default when ``path`` is None."""
    if path is None:
        source, text = EMBEDDED_SOURCE, default_config_text()
    else:
        source, text = path, read_text(path)
    try:
        tree = parse_tree(text, source, os.environ if environ is None else environ)
    except ConfigError:
        raise
    except Exception as e:     # a bug: still an error message, never a traceback
        message = (f"the config could not be read ({type(e).__name__}: {str(e)[:200]}); "
                   "this is a bug in pharosd, please report it")
        raise ConfigError([ConfigIssue(source, 0, 0, "", message)]) from e
    return LoadedConfig(tree.config, source, time.time(), tree.digest, tree.files, tree.added)


def resolve_config_path(cli_path: str | None, environ: Mapping[str, str] | None = None,
                        default_path: str = DEFAULT_CONFIG_PATH) -> str | None:
    """``-c/--config``, else ``$PHAROS_CONFIG``, else ``default_path`` if it exists,
    else None (the embedded default)."""
    if cli_path:
        return cli_path
    env = os.environ if environ is None else environ
    if env.get("PHAROS_CONFIG"):
        return env["PHAROS_CONFIG"]
    if os.path.exists(default_path):
        return default_path
    return None


def issue_at(source: str, path: str, message: str) -> ConfigIssue:
    """A ``ConfigIssue`` at the value of key ``path`` (``http.listen``) in the config
    ``source`` (a path or ``EMBEDDED_SOURCE``), for errors found after parsing
    (a port in use); the position is 0:0 when the file or key cannot be found."""
    line = column = 0
    try:
        if source == EMBEDDED_SOURCE:
            text = default_config_text()
        else:
            with open(source, encoding="utf-8") as f:
                text = f.read()
        root = compose(text, source)
    except (OSError, UnicodeDecodeError, ConfigError):
        root = None
    if root is not None:
        mark = locate(root, path).start_mark
        line, column = mark.line + 1, mark.column + 1
    return ConfigIssue(source, line, column, path, message)
