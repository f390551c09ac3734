"""Glob matchers on an alert's rule name and labels, shared by routing, silences and
maintenance windows.

Globs use fnmatch syntax (``*``, ``?``, ``[abc]``), are case sensitive and match the
whole value. ``Selector`` is the common shape: ``rules`` are alternatives (the alert's
rule must match one of them; none given: any rule), ``labels`` must all match (a label
the alert lacks never matches). Pure; compiled patterns are cached per pattern.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from pharosd.model import Labels

Matcher = Callable[[str], bool]


@functools.lru_cache(maxsize=1024)
def glob(pattern: str) -> Matcher:
    """A predicate that is True for values matching ``pattern`` as a whole."""
    if not any(c in pattern for c in "*?["):
        return pattern.__eq__
    rx = re.compile(fnmatch.translate(pattern))
    return lambda v: rx.match(v) is not None


@dataclass(frozen=True, slots=True)
class Selector:
    """Which alerts something applies to: rule globs (any) and label globs (all)."""

    rules: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, rules: Iterable[str] = (),
           labels: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> Selector:
        items = labels.items() if isinstance(labels, Mapping) else labels
        return cls(tuple(rules), tuple(sorted((str(k), str(v)) for k, v in items)))

    @property
    def empty(self) -> bool:
        return not self.rules and not self.labels

    def matches(self, rule: str, labels: Labels) -> bool:
        return self.rule_matches(rule) and self.labels_match(labels)

    def rule_matches(self, rule: str) -> bool:
        return not self.rules or any(glob(p)(rule) for p in self.rules)

    def labels_match(self, labels: Labels) -> bool:
        have = dict(labels)
        for key, pattern in self.labels:
            value = have.get(key)
            if value is None or not glob(pattern)(value):
                return False
        return True

    def describe(self) -> str:
        """``rule=disk-*|root-full, mount=/srv*`` (``*`` when it selects everything)."""
        parts = []
        if self.rules:
            parts.append("rule=" + "|".join(self.rules))
        parts += [f"{k}={v}" for k, v in self.labels]
        return ", ".join(parts) or "*"
