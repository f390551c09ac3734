"""Durations and sizes as people write them, both ways: pure functions, no I/O.

* ``parse_duration("1h30m") -> 5400.0`` (seconds). Units ``ms``, ``s``, ``m``,
  ``h``, ``d``; a number per unit may have decimals (``1.5s``); parts are
  written largest unit first, each unit once (``1h30m``, not ``30m1h``);
  a bare ``0`` is allowed, any other bare number is not (is ``30`` seconds
  or minutes?); negative durations are refused.
* ``parse_size("512MiB") -> 536870912`` (bytes). Binary units ``KiB``,
  ``MiB``, ``GiB``, ``TiB`` (1024); decimal ``kB``/``KB``, ``MB``, ``GB``,
  ``TB`` (1000); ``B``; a bare whole number is bytes.
* ``format_duration(90) -> "1m30s"``, ``format_duration(0.25) -> "250ms"``:
  the one duration formatter (config values, logs, probe texts); rounded to
  the millisecond, and read back by ``parse_duration`` to the same value for
  any whole number of ms. ``coarse=True`` (alert summaries, ``pharosd
  status``): whole seconds, the two largest units (``1h1m``).
* ``format_size(536870912) -> "512MiB"``: exact when a binary unit divides
  the value, else one decimal (``1.5GiB``), else bytes.

Both parsers raise ``UnitError`` (a ``ValueError``) whose ``expected`` names
the constraint, so the config loader can add the position and the value.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, localcontext

_DURATION_UNITS: dict[str, Decimal] = {
    "d": Decimal(86400), "h": Decimal(3600), "m": Decimal(60), "s": Decimal(1),
    "ms": Decimal("0.001"),
}
_DURATION_RANK = {unit: rank for rank, unit in enumerate(_DURATION_UNITS)}
_DURATION_PART = re.compile(r"\s*(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?")

_SIZE_UNITS: dict[str, int] = {
    "B": 1,
    "kB": 1000, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
    "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)?")

DURATION_EXPECTED = "a duration like 30s"
SIZE_EXPECTED = "a size like 512MiB"


class UnitError(ValueError):
    """``text`` is not a valid duration or size; ``expected`` says what is."""

    def __init__(self, expected: str, text: str) -> None:
        super().__init__(f"expected {expected}, got {text!r}")
        self.expected = expected
        self.text = text


def parse_duration(text: str) -> float:
    """``"1h30m"`` -> ``5400.0`` seconds; see the module docstring for the grammar."""
    s = text.strip()
    if s.startswith("-"):
        _parse_unsigned_duration(s[1:], text)  # raises if it is not a duration at all
        raise UnitError("a duration of 0 or more", text)
    return _parse_unsigned_duration(s, text)


def _parse_unsigned_duration(s: str, text: str) -> float:
    if _BARE_NUMBER.fullmatch(s):
        if Decimal(s) == 0:
            return 0.0
        raise UnitError(DURATION_EXPECTED, text)
    total = Decimal(0)
    pos, last_rank = 0, -1
    with localcontext() as ctx:
        ctx.prec = 60
        while pos < len(s):
            m = _DURATION_PART.match(s, pos)
            if m is None or _DURATION_RANK[m[2]] <= last_rank:
                raise UnitError(DURATION_EXPECTED, text)
            total += Decimal(m[1]) * _DURATION_UNITS[m[2]]
            pos, last_rank = m.end(), _DURATION_RANK[m[2]]
        seconds = float(total)
    if last_rank < 0 or not math.isfinite(seconds):
        raise UnitError(DURATION_EXPECTED, text)
    return seconds


def parse_size(text: str) -> int:
    """``"512MiB"`` -> ``536870912`` bytes; see the module docstring for the units."""
    s = text.strip()
    if s.startswith("-"):
        raise UnitError("a size of 0 or more" if _SIZE.fullmatch(s[1:]) else SIZE_EXPECTED, text)
    m = _SIZE.fullmatch(s)
    if m is None:
        raise UnitError(SIZE_EXPECTED, text)
    number, unit = m[1], m[2]
    if unit is None:
        if "." in number:
            raise UnitError("a whole number of bytes", text)
        return int(number)
    factor = _SIZE_UNITS.get(unit)
    if factor is None:
        raise UnitError(SIZE_EXPECTED, text)
    return int(Decimal(number) * factor)


def format_duration(seconds: float, *, coarse: bool = False) -> str:
    """Seconds for people: ``90`` -> ``1m30s``, ``0.25`` -> ``250ms``, ``1.5`` -> ``1.5s``.

    Rounded to the millisecond; ``0`` is ``0s``. ``parse_duration`` reads the
    result back to the same value whenever ``seconds`` is a whole number of ms.

    ``coarse=True`` is for a glance (alert summaries, ``pharosd status``): whole
    seconds from a second up, at most the two largest units (``3661`` ->
    ``1h1m``, ``59.6`` -> ``1m``), at least ``1ms`` above zero, and ``0s`` for
    anything not above zero or not finite (it never raises).
    """
    if coarse:
        if not math.isfinite(seconds) or seconds <= 0:
            return "0s"
        if seconds < 1:
            return f"{max(1, round(seconds * 1000))}ms"
        seconds = round(seconds)
    elif not math.isfinite(seconds):
        raise ValueError(f"expected a finite duration, got {seconds!r}")
    if seconds < 0:
        return "-" + format_duration(-seconds)
    ms = round(seconds * 1000)
    days, ms = divmod(ms, 86_400_000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if secs and ms:
        parts.append(f"{secs}.{ms:03d}".rstrip("0") + "s")
    elif secs:
        parts.append(f"{secs}s")
    elif ms:
        parts.append(f"{ms}ms")
    if coarse:
        parts = _leading(parts, (days, hours, minutes, secs))
    return "".join(parts) or "0s"


def _leading(parts: list[str], amounts: tuple[int, ...]) -> list[str]:
    """The two largest units of a coarse duration: from the first non-zero amount,
    the parts within the next unit (``1h`` and ``1m`` of ``1h1m1s``; ``1d`` of ``1d0h5m``)."""
    first = next(i for i, n in enumerate(amounts) if n)
    keep = {f"{n}{u}" for i, (n, u) in enumerate(zip(amounts, "dhms", strict=True))
            if first <= i <= first + 1 and n}
    return [p for p in parts if p in keep]


def format_size(size: int) -> str:
    """Bytes for people: ``536870912`` -> ``512MiB``, ``1536`` -> ``1.5KiB``, ``10`` -> ``10B``."""
    if size < 0:
        return "-" + format_size(-size)
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        factor = _SIZE_UNITS[unit]
        if size >= factor:
            if size % factor == 0:
                return f"{size // factor}{unit}"
            return f"{size / factor:.1f}{unit}"
    return f"{size}B"
