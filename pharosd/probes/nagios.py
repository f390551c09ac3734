"""The Nagios plugin output format, parsed: pure functions, no I/O.

Owns the three grammars of the monitoring-plugins development guidelines:

* **Plugin output** (``parse_output``): the first line is ``TEXT | PERFDATA``;
  further lines are long text until a line holding ``|``, after which the rest
  of that line and every following line are more performance data.
* **Performance data** (``parse_perfdata``): space-separated items
  ``'label'=value[UOM];[warn];[crit];[min];[max]``. A label is quoted with
  ``'`` when it holds spaces, ``=`` or ``'`` (a quote inside is written
  ``''``). Trailing empty fields may be dropped. ``value`` may be ``U``
  (undetermined). UOMs are ``s ms us % B KB MB GB TB c`` or none; other
  UOMs are kept as written, their values unconverted.
* **Ranges** (``parse_range``): ``[@]start:end``; ``start`` and the colon may
  be left out when ``start`` is 0; an empty ``end`` is +infinity; ``~`` as
  ``start`` is -infinity; ``start <= end``. A value *outside* the range
  (endpoints inclusive) alerts; with ``@`` a value *inside* it alerts.

Parsing is liberal where it can be and never raises on plugin output: an item
whose label or value cannot be read is skipped and counted in ``errors``; a
warn/crit/min/max field that cannot be read is dropped (the item is kept) and
counted too. ``to_base_unit`` converts to seconds and bytes (1024-based:
``KB`` = 1024 B, as the plugins compute it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

# -- ranges -------------------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER_RE = re.compile(_NUMBER)


class RangeError(ValueError):
    """A range string does not follow ``[@]start:end``."""


@dataclass(frozen=True, slots=True)
class Range:
    """``start..end`` (inclusive; may be infinite); ``inside`` is the ``@`` form."""

    start: float = 0.0
    end: float = math.inf
    inside: bool = False

    def alerts(self, value: float) -> bool:
        """True if ``value`` raises the alert this range defines (NaN never does)."""
        if math.isnan(value):
            return False
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def scaled(self, factor: float) -> Range:
        return Range(self.start * factor, self.end * factor, self.inside)

    def __str__(self) -> str:
        """The canonical range text (``parse_range(str(r)) == r``)."""
        at = "@" if self.inside else ""
        end = "" if self.end == math.inf else _fmt(self.end)
        if self.start == 0.0 and self.end != math.inf:
            return f"{at}{end}"
        start = "~" if self.start == -math.inf else _fmt(self.start)
        return f"{at}{start}:{end}"


def evaluate(value: float, warn: Range | None, crit: Range | None) -> int:
    """The Nagios status of ``value``: 2 if ``crit`` alerts, else 1 if ``warn``
    alerts, else 0 (as the plugins' ``get_status`` decides)."""
    if crit is not None and crit.alerts(value):
        return 2
    if warn is not None and warn.alerts(value):
        return 1
    return 0


def _fmt(x: float) -> str:
    return repr(float(x))


def parse_range(text: str) -> Range:
    """``"10"``, ``"10:"``, ``"~:10"``, ``"10:20"``, ``"@10:20"`` -> ``Range``.

    Raises ``RangeError`` for anything else (including ``start > end``).
    """
    s = text.strip()
    inside = s.startswith("@")
    if inside:
        s = s[1:]
    if ":" in s:
        start_text, _, end_text = s.partition(":")
        if start_text == "~":
            start = -math.inf
        elif start_text == "":
            start = 0.0
        else:
            start = _number(start_text, text)
        end = math.inf if end_text == "" else _number(end_text, text)
    else:
        if s == "":
            raise RangeError(f"expected a range like 10, 10:, ~:10, 10:20 or @10:20, got {text!r}")
        start, end = 0.0, _number(s, text)
    if start > end:
        raise RangeError(f"expected start <= end in range {text!r}")
    return Range(start, end, inside)


def _number(part: str, whole: str) -> float:
    if not _NUMBER_RE.fullmatch(part):
        raise RangeError(f"expected a number in range {whole!r}, got {part!r}")
    return float(part)


# -- units ----------------------------------------------------------------------

UNIT_FACTORS: dict[str, tuple[float, str]] = {
    # UOM -> (factor to the base unit, base unit)
    "s": (1.0, "s"), "ms": (1e-3, "s"), "us": (1e-6, "s"), "ns": (1e-9, "s"),
    "B": (1.0, "B"),
    "KB": (1024.0, "B"), "kB": (1024.0, "B"), "KiB": (1024.0, "B"),
    "MB": (1024.0**2, "B"), "MiB": (1024.0**2, "B"),
    "GB": (1024.0**3, "B"), "GiB": (1024.0**3, "B"),
    "TB": (1024.0**4, "B"), "TiB": (1024.0**4, "B"),
    "PB": (1024.0**5, "B"), "PiB": (1024.0**5, "B"),
}


def to_base_unit(uom: str) -> tuple[float, str]:
    """The factor that turns a value in ``uom`` into base units, and that unit.

    Seconds and bytes are base units; ``%``, ``c``, no unit and any unit the
    guidelines do not name are kept as they are (factor 1).
    """
    return UNIT_FACTORS.get(uom, (1.0, uom))


# -- performance data ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PerfData:
    """One performance data item, as written (no unit conversion).

    ``value`` is None for ``U``; ``warn``/``crit`` None when empty or unreadable.
    """

    label: str
    value: float | None
    uom: str = ""
    warn: Range | None = None
    crit: Range | None = None
    min: float | None = None
    max: float | None = None

    def in_base_units(self) -> PerfData:
        """The same item with value, ranges, min and max in seconds or bytes."""
        factor, unit = to_base_unit(self.uom)
        if factor == 1.0:
            return PerfData(self.label, self.value, unit, self.warn, self.crit,
                            self.min, self.max)

        def mul(x: float | None) -> float | None:
            return None if x is None else x * factor

        return PerfData(self.label, mul(self.value), unit,
                        None if self.warn is None else self.warn.scaled(factor),
                        None if self.crit is None else self.crit.scaled(factor),
                        mul(self.min), mul(self.max))

    def __str__(self) -> str:
        """The item in plugin syntax (``parse_perfdata(str(p))`` gives it back)."""
        fields = ["U" if self.value is None else _fmt(self.value) + self.uom,
                  "" if self.warn is None else str(self.warn),
                  "" if self.crit is None else str(self.crit),
                  "" if self.min is None else _fmt(self.min),
                  "" if self.max is None else _fmt(self.max)]
        while len(fields) > 1 and fields[-1] == "":
            fields.pop()
        return f"{quote_label(self.label)}={';'.join(fields)}"


def quote_label(label: str) -> str:
    """A label as a plugin writes it: quoted when it needs to be."""
    if label and not any(c.isspace() or c in "='" for c in label):
        return label
    return "'" + label.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class PerfDataResult:
    """The items read from a performance data string and the count skipped."""

    items: tuple[PerfData, ...]
    errors: int = 0
    problems: tuple[str, ...] = ()   # one line per error, for logs
    truncated: int = 0               # items past ``limit``, counted but not read


_Problem = Callable[[str], None]

_VALUE_RE = re.compile(rf"({_NUMBER})([^\d;]*)")
_UOM_RE = re.compile(r"[^\d\s;=.+\-]*")
MAX_PROBLEMS = 10
MAX_ITEMS = 1000       # perfdata items read from one output; the rest are counted


def parse_perfdata(text: str, limit: int = MAX_ITEMS) -> PerfDataResult:
    """The first ``limit`` items in ``text``; never raises (see the module docstring).

    Items past ``limit`` are delimited as usual but not read: only counted in
    ``truncated``. Time and memory are linear in ``len(text)``.
    """
    items: list[PerfData] = []
    problems: list[str] = []
    errors = 0
    truncated = 0

    def problem(message: str) -> None:
        nonlocal errors
        errors += 1
        if len(problems) < MAX_PROBLEMS:
            problems.append(message)

    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        if text[i] == "'":
            label_chars: list[str] = []
            i += 1
            closed = False
            while i < n:
                c = text[i]
                if c == "'":
                    if i + 1 < n and text[i + 1] == "'":
                        label_chars.append("'")
                        i += 2
                        continue
                    i += 1
                    closed = True
                    break
                label_chars.append(c)
                i += 1
            if not closed:
                problem(f"unterminated quoted label: {text[start:start + 60]!r}")
                break
            label = "".join(label_chars)
            if i >= n or text[i] != "=":
                j = _token_end(text, i)
                problem(f"expected '=' after the label: {text[start:j]!r}")
                i = j
                continue
            i += 1
        else:
            j = _token_end(text, i)
            token = text[i:j]
            eq = token.find("=")
            if eq <= 0:
                problem(f"expected label=value: {token!r}")
                i = j
                continue
            label = token[:eq]
            i += eq + 1
        j = _token_end(text, i)
        data = text[i:j]
        i = j
        if len(items) >= limit:
            truncated += 1
            continue
        item = _item(label, data, problem)
        if item is not None:
            items.append(item)
    return PerfDataResult(tuple(items), errors, tuple(problems), truncated)


def _token_end(text: str, i: int) -> int:
    n = len(text)
    while i < n and not text[i].isspace():
        i += 1
    return i


def _item(label: str, data: str, problem: _Problem) -> PerfData | None:
    if not label:
        problem(f"empty label: ''={data}")
        return None
    fields = data.split(";")
    if len(fields) > 5 and any(f for f in fields[5:]):
        problem(f"expected at most 5 fields: {quote_label(label)}={data}")
        return None
    raw_value = fields[0]
    value: float | None
    if raw_value == "U":
        value, uom = None, ""
    else:
        m = _VALUE_RE.fullmatch(raw_value)
        if m is None or not _UOM_RE.fullmatch(m.group(2)):
            problem(f"expected a number and a unit: {quote_label(label)}={raw_value!r}")
            return None
        value, uom = float(m.group(1)), m.group(2)
        if not math.isfinite(value):
            problem(f"expected a finite number: {quote_label(label)}={raw_value!r}")
            return None
    fields += [""] * (5 - len(fields))
    warn = _range_field(fields[1], label, "warn", problem)
    crit = _range_field(fields[2], label, "crit", problem)
    lo = _number_field(fields[3], uom, label, "min", problem)
    hi = _number_field(fields[4], uom, label, "max", problem)
    return PerfData(label, value, uom, warn, crit, lo, hi)


def _range_field(text: str, label: str, what: str, problem: _Problem) -> Range | None:
    if text == "":
        return None
    try:
        return parse_range(text)
    except RangeError as e:
        problem(f"{quote_label(label)}: {what}: {e}")
        return None


def _number_field(text: str, uom: str, label: str, what: str,
                  problem: _Problem) -> float | None:
    if text == "" or text == "U":
        return None
    m = _VALUE_RE.fullmatch(text)
    # min and max should carry no unit, but some plugins repeat the value's.
    if m is None or m.group(2) not in ("", uom):
        problem(f"{quote_label(label)}: {what}: expected a number, got {text!r}")
        return None
    number = float(m.group(1))
    if not math.isfinite(number):
        problem(f"{quote_label(label)}: {what}: expected a finite number, got {text!r}")
        return None
    return number


# -- plugin output -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PluginOutput:
    """A plugin's stdout, split: first-line text, long text, performance data."""

    text: str
    long_text: str = ""
    perfdata: tuple[PerfData, ...] = ()
    errors: int = 0
    problems: tuple[str, ...] = ()
    truncated: int = 0               # perfdata items past the limit, not read


def parse_output(output: str, limit: int = MAX_ITEMS) -> PluginOutput:
    """Split ``output`` per the plugin API and parse the perfdata (at most ``limit``
    items; see ``parse_perfdata``)."""
    lines = output.replace("\r\n", "\n").split("\n")
    first, _, perf = lines[0].partition("|")
    perf_parts = [perf]
    long_lines: list[str] = []
    rest = lines[1:]
    for k, line in enumerate(rest):
        if "|" in line:
            before, _, after = line.partition("|")
            long_lines.append(before.rstrip())
            perf_parts.append(after)
            perf_parts.extend(rest[k + 1:])
            break
        long_lines.append(line.rstrip())
    while long_lines and not long_lines[-1]:
        long_lines.pop()
    parsed = parse_perfdata(" ".join(perf_parts), limit)
    return PluginOutput(first.strip(), "\n".join(long_lines), parsed.items,
                        parsed.errors, parsed.problems, parsed.truncated)


# -- metric names -----------------------------------------------------------------

_UNSAFE = re.compile(r"[^a-z0-9_]+")


def safe_label(label: str) -> str:
    """A perfdata label as a metric name part: lower case, and every run of
    characters other than ``a-z 0-9 _`` replaced by one ``_``
    (``/`` -> ``_``, ``/var/log`` -> ``_var_log``, ``Time Taken`` -> ``time_taken``)."""
    return _UNSAFE.sub("_", label.lower())


def perfdata_values(items: Sequence[PerfData],
                    reserved: Collection[str] = ()) -> list[tuple[str, float]]:
    """Metric suffixes and values of perfdata ``items``, in base units.

    Each item ``L`` gives ``safe_label(L)`` (its value; none for ``U``) and
    companions ``.warn``/``.crit`` (the range's upper end, when finite),
    ``.warn_low``/``.crit_low`` (its lower end, when finite and not 0) and
    ``.min``/``.max``. A name in ``reserved`` becomes ``perf_<name>``; a name
    already taken gets ``_2``, ``_3``, ... in order of appearance.
    """
    used = set(reserved)
    next_suffix: dict[str, int] = {}    # per name: the first _k not yet tried
    out: list[tuple[str, float]] = []
    for item in items:
        base = item.in_base_units()
        name = safe_label(item.label)
        if name in reserved:
            name = "perf_" + name
        unique = name
        if unique in used:
            # Each name's counter only goes up, so the whole loop stays linear
            # even when every item has the same label.
            k = next_suffix.get(name, 2)
            unique = f"{name}_{k}"
            while unique in used:
                k += 1
                unique = f"{name}_{k}"
            next_suffix[name] = k + 1
        used.add(unique)
        if base.value is not None:
            out.append((unique, base.value))
        for what, rng in (("warn", base.warn), ("crit", base.crit)):
            if rng is None:
                continue
            if math.isfinite(rng.end):
                out.append((f"{unique}.{what}", rng.end))
            if math.isfinite(rng.start) and rng.start != 0:
                out.append((f"{unique}.{what}_low", rng.start))
        if base.min is not None:
            out.append((f"{unique}.min", base.min))
        if base.max is not None:
            out.append((f"{unique}.max", base.max))
    return out
