"""Python statistics for the tests: one of each behaviour a plugin can have.

``FileValue`` reads a number from the file named by ``options["path"]`` so a
test decides what it reports; the others raise, hang, or return junk.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any


class FileValue:
    def __init__(self, options: dict[str, Any]) -> None:
        self.path = Path(options["path"])
        self.labels = dict(options.get("labels") or {})
        self.calls = 0

    def collect(self):
        self.calls += 1
        text = self.path.read_text().strip() if self.path.exists() else "0"
        yield "demo.value", self.labels, float(text)
        yield "demo.calls", None, self.calls


class Raising:
    def __init__(self, options: dict[str, Any]) -> None:
        self.message = options.get("message", "plugin exploded")

    def collect(self):
        raise RuntimeError(self.message)


class Hanging:
    def __init__(self, options: dict[str, Any]) -> None:
        self.forever = threading.Event()

    def collect(self):
        self.forever.wait()
        return []


class Junk:
    def __init__(self, options: dict[str, Any]) -> None:
        pass

    def collect(self):
        return [
            ("junk.ok", {"kind": "good"}, 1),
            ("nodots", None, 1.0),
            ("junk.text", None, "many"),
            ("junk.nan", None, float("nan")),
            ("junk.labels", {"n": 3}, 1.0),
            "not a tuple",
        ]


class BadOptions:
    def __init__(self, options: dict[str, Any]) -> None:
        raise ValueError(f"unknown option(s): {sorted(options)}")

    def collect(self):
        return []
