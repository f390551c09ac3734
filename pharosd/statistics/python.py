"""A statistic written in Python: the plugin protocol and its isolation.

The protocol (stable; docs/plugins.md)::

    class Queue:
        def __init__(self, options: dict[str, Any]) -> None: ...
        def collect(self) -> Iterable[tuple[str, Mapping[str, str] | None, float]]: ...
        def close(self) -> None: ...        # optional

``PythonStatistic`` is the ``Source`` the collector polls. It is blocking, so
it runs on the collector's pool, and it never runs plugin code there: each
plugin gets its own thread (``_Runner``) that builds the instance with the
``options`` dict on its first call, runs every ``collect()`` and, on stop,
``close()`` — all on that one thread, so a plugin may keep thread-bound
resources (an SQLite connection). The pool thread waits for a call at most
the statistic's ``timeout``:

* a call that raises (the constructor included) fails the run: the collector
  logs the plugin's exception once per distinct message, with its traceback,
  and counts it; the instance is kept (a failed constructor is retried);
* a call still running after ``timeout`` fails the run as hung; until it
  returns, every poll fails the same way without calling the plugin again
  (the late result is discarded);
* each item is checked (``samples_from``): an item that is not a
  ``(metric, labels, value)`` triple with a dotted metric name, string labels
  and a finite number is skipped, logged once per distinct problem and
  counted; a run whose every item was junk fails. At most ``MAX_SAMPLES``
  items are taken from one call; the rest are dropped and counted.

No plugin failure reaches the collector's loop.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any, Protocol

import structlog

from pharosd.errors import ProbeError, describe_error
from pharosd.model import Labels, Sample, labels_of
from pharosd.statistics.config import StatisticConfig
from pharosd.types import thaw

log = structlog.get_logger(__name__)

MAX_SAMPLES = 10_000      # items taken from one collect(); the rest are dropped and counted
METRIC_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class StatisticPlugin(Protocol):
    """What a Python statistic's instance offers (``close`` is optional)."""

    def collect(self) -> Any: ...


Factory = Callable[[dict[str, Any]], StatisticPlugin]


class Junk(ValueError):
    """One item of a collect() that is not a valid (metric, labels, value)."""


def _labels(raw: Any) -> Labels:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise Junk(f"labels: expected a mapping of strings or None, got {type(raw).__name__}")
    for k, v in raw.items():
        if not isinstance(k, str) or not LABEL_NAME.fullmatch(k):
            raise Junk(f"labels: expected label names like 'queue', got {k!r}")
        if not isinstance(v, str):
            raise Junk(f"labels: expected a string value for {k!r}, got {type(v).__name__}")
    return labels_of(raw)


def sample_from(item: Any, now: float) -> Sample:
    """One ``(metric, labels, value)`` item as a ``Sample``; raises ``Junk``."""
    if not isinstance(item, tuple | list) or len(item) != 3:
        raise Junk(f"expected a (metric, labels, value) tuple, got {type(item).__name__}"
                   + (f" of {len(item)}" if isinstance(item, tuple | list) else ""))
    metric, raw_labels, value = item
    if not isinstance(metric, str) or not METRIC_NAME.fullmatch(metric):
        raise Junk(f"metric: expected a dotted name like 'queue.depth', got {metric!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Junk(f"{metric}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise Junk(f"{metric}: expected a finite number, got {value!r}")
    return Sample(metric, _labels(raw_labels), float(value), now)


def samples_from(items: list[Any], now: float) -> tuple[list[Sample], list[str]]:
    """The valid samples among ``items`` and a problem per invalid one."""
    samples: list[Sample] = []
    problems: list[str] = []
    for item in items:
        try:
            samples.append(sample_from(item, now))
        except Junk as e:
            problems.append(str(e))
    return samples, problems


class _Runner:
    """One plugin instance on its own thread, one call at a time."""

    def __init__(self, name: str, build: Callable[[], StatisticPlugin]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._request = threading.Event()
        self._done = threading.Event()
        self._busy = False
        self._closed = False
        self._result: tuple[list[Any], BaseException | None] = ([], None)
        self._thread = threading.Thread(target=self._loop, name=f"pharos-plugin-{name}",
                                        daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._busy

    def call(self, timeout: float) -> list[Any] | None:
        """The items of one collect(), or None if it did not return within ``timeout``
        (or the previous call has not returned yet); raises what the plugin raised."""
        with self._lock:
            if self._busy or self._closed:
                return None
            self._busy = True
            self._done.clear()
            self._request.set()
        if not self._done.wait(timeout):
            return None
        with self._lock:
            items, error = self._result
            self._result = ([], None)
        if error is not None:
            raise error
        return items

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._request.set()

    def _loop(self) -> None:
        instance: StatisticPlugin | None = None
        while True:
            self._request.wait()
            with self._lock:
                self._request.clear()
                if self._closed:
                    break
            result: tuple[list[Any], BaseException | None]
            try:
                if instance is None:
                    instance = self._build()
                result = (list(itertools.islice(instance.collect(), MAX_SAMPLES + 1)), None)
            except BaseException as e:    # isolated: handed to the caller, never raised here
                result = ([], e)
            with self._lock:
                self._result = result
                self._busy = False
                self._done.set()
        close = getattr(instance, "close", None)
        if callable(close):
            try:
                close()
            except Exception as e:
                log.warning("statistic_close_failed", error=describe_error(e))


class PythonStatistic:
    """The ``Source`` of one ``python:`` statistic; see the module docstring."""

    blocking = True

    def __init__(self, cfg: StatisticConfig, every: float, factory: Factory) -> None:
        self.cfg = cfg
        self.name: str = cfg.name
        self.every: float = float(every)
        self.timeout = cfg.resolved_timeout
        self.key: Hashable = ("python", cfg.name, cfg.python, self.every, cfg.options,
                              self.timeout)
        self._factory = factory
        self._lock = threading.Lock()
        self._runner: _Runner | None = None
        self._logged_problem: str | None = None
        self._counts = {"samples_invalid": 0, "samples_dropped": 0, "hung_runs": 0}

    def _build(self) -> StatisticPlugin:
        try:
            return self._factory(thaw(self.cfg.options))
        except BaseException as e:
            e.add_note(f"while building {self.cfg.python}(options) for statistic {self.name}")
            raise

    def collect(self, now: float) -> list[Sample]:
        with self._lock:
            if self._runner is None:
                self._runner = _Runner(self.name, self._build)
            runner = self._runner
        try:
            items = runner.call(self.timeout)
        except BaseException as e:
            if isinstance(e, Exception):
                raise           # the plugin's own exception, with its traceback
            raise ProbeError(f"collect() raised {describe_error(e)}") from e   # SystemExit...
        if items is None:
            self._count("hung_runs", 1)
            raise ProbeError(f"collect() did not return within {self.timeout:g}s; "
                             "not called again until it returns")
        if len(items) > MAX_SAMPLES:
            del items[MAX_SAMPLES:]
            if self._count("samples_dropped", 1) == 1:
                log.warning("statistic_samples_dropped", statistic=self.name,
                            reason=f"more than {MAX_SAMPLES} items from one collect()",
                            note="logged once; counted in status")
        samples, problems = samples_from(items, now)
        self._report(problems, len(items))
        if problems and not samples:
            raise ProbeError(f"every item was invalid ({len(problems)}): {problems[0]}")
        return samples

    def _report(self, problems: list[str], total: int) -> None:
        if problems:
            self._count("samples_invalid", len(problems))
            if problems[0] != self._logged_problem:
                log.warning("statistic_samples_invalid", statistic=self.name,
                            invalid=len(problems), items=total, first=problems[0])
        self._logged_problem = problems[0] if problems else None

    def _count(self, key: str, n: int) -> int:
        with self._lock:
            self._counts[key] += n
            return self._counts[key]

    def counters(self) -> dict[str, int]:
        """What the collector's status shows beside its own counters."""
        with self._lock:
            return dict(self._counts)

    def close(self) -> None:
        """Stop the plugin's thread (after its current call) and close the instance."""
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is not None:
            runner.close()

    def __repr__(self) -> str:
        return f"<PythonStatistic {self.name} {self.cfg.python} every={self.every:g}s>"
