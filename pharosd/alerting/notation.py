"""The expanding notation of rule-test input series (as in promtool's rule tests).

``expand("1 2+3x2 _ 7x1 _x2")`` -> ``[1, 2, 5, 8, None, 7, 7, None, None]``: values are
separated by blanks, and each is one of

* ``a``: one sample of value ``a`` (a number: ``-2``, ``0.5``, ``1e3``, ``NaN``, ``Inf``);
* ``a+bxn`` / ``a-bxn``: ``n + 1`` samples, from ``a`` in steps of ``b`` (``0+10x3`` is
  ``0 10 20 30``);
* ``axn``: ``n + 1`` samples of ``a`` (short for ``a+0xn``);
* ``_``: no sample at that step; ``_xn``: ``n`` steps without a sample.

A series is bounded (``MAX_SAMPLES`` steps); ``NotationError`` says which term is wrong.
"""

from __future__ import annotations

import re

MAX_SAMPLES = 100_000
_NUMBER = r"[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[Nn]a[Nn]|[Ii]nf)"
_TERM = re.compile(rf"(?P<a>{_NUMBER})(?:(?P<op>[-+])(?P<b>{_NUMBER}))?x(?P<n>[0-9]+)"
                   rf"|(?P<one>{_NUMBER})|_(?:x(?P<gap>[0-9]+))?")
EXPECTED = "a number, _, a+bxn, a-bxn, axn or _xn"


class NotationError(ValueError):
    """A series text that does not read; the message names the term."""


def expand(text: str) -> list[float | None]:
    """The samples a series text stands for, one per step (None: no sample)."""
    out: list[float | None] = []
    terms = text.split()
    if not terms:
        raise NotationError(f"expected at least one value ({EXPECTED}), got nothing")
    for i, term in enumerate(terms, 1):
        values: list[float | None]
        m = _TERM.fullmatch(term)
        if m is None:
            raise NotationError(f"expected {EXPECTED}, got {term!r} (value {i})")
        if m["one"] is not None:
            count, values = 1, [float(m["one"])]
        elif m["a"] is not None:
            count = int(m["n"]) + 1
            start = float(m["a"])
            step = 0.0 if m["b"] is None else float(m["b"]) * (-1 if m["op"] == "-" else 1)
            values = []
        else:
            count = 1 if m["gap"] is None else int(m["gap"])
            values = [None]
        if len(out) + count > MAX_SAMPLES:
            raise NotationError(f"expected at most {MAX_SAMPLES} values in a series, "
                                f"got more at {term!r} (value {i})")
        if m["a"] is not None:
            out.extend(start + k * step for k in range(count))
        else:
            out.extend(values * count)
    return out
