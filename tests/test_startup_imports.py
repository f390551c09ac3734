"""What the running daemon imports: no asyncio, no OpenSSL, unless the config needs them.

structlog imports asyncio (which imports ssl), http.client imports ssl, and hashlib
maps OpenSSL's libcrypto; together about 10 MiB of resident memory that the embedded
default and a plain-HTTP uplink never use. ``pharosd.lazyimport`` defers asyncio and
ssl to their first use, ``pharosd.digest`` is SHA-256 without OpenSSL. Proven on a
real ``pharosd run`` (``-X importtime`` lists every module whose code ran, and
``/proc/PID/maps`` every shared library mapped), and in a plain interpreter that code
which does use the deferred modules afterwards still works.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pharosd.digest import sha256
from tests.conftest import free_port
from tests.support.daemon import NotifySocket, wait_until

REPO = Path(__file__).resolve().parent.parent
DEFAULT = REPO / "pharosd" / "config" / "default.yaml"


def executed_modules(importtime: str) -> set[str]:
    """Module names from ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    return {line.rsplit("|", 1)[1].strip() for line in importtime.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


def scrape(port: int) -> None:
    """Two requests on one kept-alive connection, then one that ends with a reset."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for path in ("/metrics", "/-/healthy"):
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(65536)
            assert head.startswith(b"HTTP/1.1 200"), head[:80]
            fields, body = head.split(b"\r\n\r\n", 1)
            length = int(fields.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            while len(body) < length:
                body += s.recv(65536)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")     # unfinished, then a reset


@pytest.mark.parametrize("extra", ["", "uplink", "listener"],
                         ids=["embedded-default", "http-uplink", "plain-http-listener"])
def test_running_daemon_executes_neither_asyncio_nor_openssl(tmp_path: Path, extra: str):
    config = DEFAULT.read_text()
    uplink = extra == "uplink"
    port = free_port()
    if uplink:   # nothing listens there: the uplink retries and spills, over plain HTTP
        config += (f"uplink:\n  remote_write: [{{url: 'http://127.0.0.1:{port}"
                   "/api/v1/write'}]\n")
    if extra == "listener":   # /metrics and the page over plain HTTP: no OpenSSL either
        config += f"http:\n  listen: 127.0.0.1:{port}\n"
    path = tmp_path / "pharos.yaml"
    path.write_text(config)
    notify = NotifySocket(tmp_path / "notify.sock")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHAROS")}
    env.update({"NOTIFY_SOCKET": str(notify.path), "STATE_DIRECTORY": str(tmp_path),
                "RUNTIME_DIRECTORY": str(tmp_path / "run")})
    with open(tmp_path / "stderr", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "pharosd", "run", "-c", str(path),
             "--log-format", "logfmt"], env=env, cwd=tmp_path, stdout=err, stderr=err)
    try:
        assert notify.wait_for(lambda m: "READY=1" in m), (tmp_path / "stderr").read_text()
        log = tmp_path / "stderr"
        # structlog logs (the daemon's own lines, after the import lines)
        assert wait_until(lambda: "event=daemon_ready" in log.read_text())
        if extra == "listener":
            scrape(port)
            scrape(port)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
    finally:
        proc.terminate()
        proc.wait(15)
        notify.close()
    assert proc.returncode == 0
    text = log.read_text()
    assert "event=daemon_started" in text and "event=daemon_stopped" in text
    ran = executed_modules(text)
    assert {"structlog", "structlog.stdlib", "pharosd.daemon", "sqlite3"} <= ran
    assert ("pharosd.pipeline.connection" in ran) == uplink
    assert {m for m in ran if m == "asyncio" or m.startswith("asyncio.")} == set()
    assert {"ssl", "_ssl", "hashlib", "_hashlib"} & ran == set()
    # nor what only a config error, a maintenance window or a compressed archive needs
    assert {"difflib", "zoneinfo", "bz2", "lzma", "_bz2", "_lzma"} & ran == set()
    assert "libcrypto" not in maps and "libssl" not in maps


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, cwd=REPO)


def test_deferred_modules_run_on_first_use_and_work():
    r = run_python("""
        import logging, sys, types
        from pharosd.lazyimport import defer

        assert defer("asyncio") and defer("ssl")
        assert not any(map(defer, ["asyncio", "os", "os.path", "no_such_module_x"]))
        stand_in = sys.modules["asyncio"]
        import structlog
        import http.client
        import asyncio, ssl
        assert asyncio is stand_in and asyncio.__name__ == "asyncio"
        ran = {m for m in sys.modules if m.startswith("asyncio.")} | ({"_ssl"} & sys.modules.keys())
        assert ran == set(), ran
        structlog.get_logger("t").info("plain_logged", k=1)

        async def main():
            wrapper = structlog.make_filtering_bound_logger(logging.INFO)
            await structlog.wrap_logger(None, wrapper_class=wrapper).ainfo("async_logged")
            await asyncio.sleep(0)
            return 42

        assert asyncio.run(main()) == 42
        assert type(stand_in) is types.ModuleType and sys.modules["asyncio"] is stand_in
        from asyncio import events
        assert events is sys.modules["asyncio.events"]
        ctx = ssl.create_default_context()
        assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED
        assert http.client.HTTPSConnection("127.0.0.1", 1, context=ctx).port == 1
        print("done")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "done"
    assert "plain_logged" in r.stdout and "k=1" in r.stdout and "async_logged" in r.stdout


def test_a_deferred_module_that_fails_fails_at_first_use_and_again_on_import(tmp_path: Path):
    (tmp_path / "broken_mod_x.py").write_text("VALUE = 1\nraise RuntimeError('boom')\n")
    r = run_python(f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from pharosd.lazyimport import defer

        assert defer("broken_mod_x")
        import broken_mod_x            # the stand-in: nothing ran yet
        try:
            broken_mod_x.VALUE
        except RuntimeError as e:
            assert str(e) == "boom"
        else:
            raise AssertionError("no error")
        assert "broken_mod_x" not in sys.modules
        try:
            import broken_mod_x
        except RuntimeError as e:
            print("again", e)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "again boom"


@pytest.mark.parametrize("data", [b"", b"abc", bytes(range(256)) * 300])
def test_digest_is_hashlibs_sha256(data: bytes):
    assert sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    h = sha256()
    for i in range(0, len(data), 1000):
        h.update(data[i:i + 1000])
    assert h.hexdigest() == hashlib.sha256(data).hexdigest()
