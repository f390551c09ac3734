"""The one exception tree of pharosd.

::

    PharosError                  every error pharosd raises on purpose
    ├── ConfigError              a config file or value is invalid (exit 1)
    │                            .issues holds every ConfigIssue found
    ├── DeliveryError            a sink could not deliver an alert event
    │   └── PermanentDeliveryError   retrying cannot help (a 4xx, a bad payload)
    ├── ProbeError               a probe or statistic could not be collected
    ├── PluginError              a Python statistic's class cannot be imported or used
    ├── UplinkError              the remote_write receiver refused or is unreachable
    ├── SilenceError             a silence cannot be added or expired as asked
    └── SupervisorGaveUp         workers crashed too often (exit 70)

``describe_error(e)`` is how an exception reads in a log line or a status field.

Messages state the constraint and the value that broke it.
"""

from __future__ import annotations

from dataclasses import dataclass


class PharosError(Exception):
    """Base of every error pharosd raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file, with its position.

    ``str()`` gives ``FILE:LINE:COL: key.path: message``; line and column are
    1-based, and 0 when the position is unknown (for example an error in an
    environment variable or a missing file).
    """

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where = f"{where}:{self.line}:{self.column}"
        if self.path:
            return f"{where}: {self.path}: {self.message}"
        return f"{where}: {self.message}"


class ConfigError(PharosError):
    """A config is invalid; ``issues`` lists every problem found, in file order."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


class DeliveryError(PharosError):
    """A sink failed to deliver; the outbox retries it.

    ``retry_after`` (seconds) is a receiver's hint such as ``Retry-After``.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """A sink failed in a way that retrying cannot fix; the event is given up."""


class ProbeError(PharosError):
    """A statistic or probe could not be collected."""


class PluginError(PharosError):
    """A Python statistic's class cannot be imported, or is not a class with collect()."""


class UplinkError(PharosError):
    """The remote_write receiver refused a batch or could not be reached."""


class SilenceError(PharosError):
    """A silence request is invalid (no matcher, an end in the past, an unknown id)."""


class SupervisorGaveUp(PharosError):
    """Workers crashed more than ``max_restarts`` times in ``period``."""


def describe_error(e: BaseException) -> str:
    """An exception for a log line or a status field: ``ConnectionRefusedError: [Errno
    111] Connection refused``, or the bare type name when the message is empty."""
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
