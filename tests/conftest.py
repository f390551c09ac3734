"""Shared test helpers: free loopback ports, real peer programs, the ``daemons`` fixture.

``require_binary`` finds a peer program from Debian; without it a test is
skipped on a developer's machine, but with ``CI=true`` a missing peer is a
failure, never a silent skip.

The suite runs in parallel (pytest-xdist, ``make test``), and ``make test``
runs its two suite runs at the same time, so everything here is safe across
processes: ``free_port`` hands out ports below the kernel's ephemeral range
(no outgoing connection can take one between the hand-out and the bind, and
no client can connect to itself), from a slice of that range of its own for
each xdist worker. Tests marked ``slow`` (they wait out a real outage) are
collected first so that a worker starts them at once instead of last, and
xdist hands out tests one at a time, except the files in ``ONE_WORKER``,
which run whole and in order on one worker. The
``pharos`` Hypothesis profile drops the per-example deadline: on a loaded
machine a deadline measures the machine, not the code.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from tests.support.daemon import PharosProcess

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


PORTS_FROM = 10000                  # the low end of the ports free_port hands out
_given: set[int] = set()             # never hand the same port out twice in one process
_rng = random.Random()


def _port_slice() -> range:
    """This process's ports: below the ephemeral range, one slice per xdist worker."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
    size = (ephemeral - PORTS_FROM) // count
    if size < 100:
        return range(0)
    start = PORTS_FROM + (index % count) * size
    return range(start, start + size)


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1, free for TCP and UDP a moment ago, not handed out before."""
    ports = _port_slice()
    for _ in range(200):
        if not ports:
            break
        port = _rng.choice(ports)
        if port not in _given and _bindable(port):
            _given.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:   # the kernel's choice
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


settings.register_profile("pharos", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "pharos"))


# Files whose tests share state that must not be split: test_packaging.py installs the .deb
# once for the module and its last test purges it; test_systemd_real.py's tests are the
# steps of one story in one booted container.
ONE_WORKER = ("tests/test_packaging.py", "tests/test_systemd_real.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """With ``-n N`` (``--dist load``): one test per work unit, ``ONE_WORKER`` files whole.

    xdist's own ``loadgroup`` would do this with marks, but it renames items through a
    pytest attribute that pytest 9 no longer has, so the grouping is done here on node
    ids. Units go out in collection order (the bigger units first), slow tests first.
    """
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduler(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in ONE_WORKER else nodeid

    return Scheduler(config, log)  # type: ignore[arg-type]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests first (stable otherwise): parallel workers start them at once."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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
