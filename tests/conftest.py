"""Shared test helpers: free loopback ports, real peer programs, the ``daemons`` fixture.

``require_binary`` finds a peer program from Debian; without it a test is
skipped on a developer's machine, but with ``CI=true`` a missing peer is a
failure, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.daemon import PharosProcess

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(name: str, *candidates: str) -> str:
    """Path of a peer program (``name`` on PATH or one of ``candidates``)."""
    for c in (name, *candidates):
        path = shutil.which(c) if "/" not in c else (c if os.access(c, os.X_OK) else None)
        if path:
            return path
    msg = f"peer program {name!r} is not installed (.ci/run installs it)"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)
    raise AssertionError("unreachable")


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def daemons() -> Iterator[list[PharosProcess]]:
    """A list for the ``pharosd run`` processes a test starts; each is stopped at the end."""
    started: list[PharosProcess] = []
    yield started
    for d in started:
        d.stop()
