"""The fault suite: a real ``pharosd run`` against broken disks, broken files and kill -9.

* A state directory that cannot be used at start (not a directory; read-only), and a
  disk that fills up while the daemon runs: the daemon starts or stays up, alerts still
  reach a sink that needs no state, ``status`` names the problem, and it heals.
* Corrupted outbox, spill and alert-state files at start: set aside, fresh ones used.
* ``kill -9`` at random moments while events wait in an outbox and samples in the spill:
  whatever was stored (read from the files by the test just before the kill) is
  delivered after the restart.
* Secrets in an http probe's URL and in the uplink's URL appear in no output at all.

Read-only and full disks are small tmpfs mounts (the test runs as root). Where mounting
is not permitted (an unprivileged container), those two tests are skipped with that
reason; the not-a-directory test covers an unusable state directory there.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from peers.receiver import Receiver, Request
from peers.remote_write import decode_request, flat

from pharosd.control.client import query_status
from pharosd.control.protocol import SOCKET_NAME
from tests.support.daemon import PharosProcess, read_events, wait_until

pytestmark = pytest.mark.timeout(180)


def status(d: PharosProcess) -> dict[str, Any]:
    try:
        return query_status(str(d.tmp / "run" / SOCKET_NAME), timeout=3.0)
    except Exception:
        return {}


def firing_config(tmp: Path, state: Path | str, *, uplink: str | None = None,
                  extra_sinks: str = "", probes: str = "") -> str:
    up = f"uplink:\n  remote_write:\n    - {{url: '{uplink}', flush: 250ms}}\n" if uplink else ""
    return f"""
interval: 250ms
state_dir: {state}
statistics: [memory, uptime]
thresholds:
  - {{name: always, metric: uptime.seconds, above: 0, soak: 0s}}
sinks:
  - {{name: file, kind: file, path: {tmp}/alerts.jsonl}}
{extra_sinks}
{probes}
{up}"""


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                           str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}); "
                    "test_state_dir_that_is_not_a_directory covers an unusable state dir")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def closed_port() -> int:
    from conftest import free_port

    return free_port()


# -- an unusable state directory at start ------------------------------------------------


def test_state_dir_that_is_not_a_directory(tmp_path: Path, daemons: list) -> None:
    state = tmp_path / "state"
    state.write_text("a file where the state directory should be\n")
    up = f"http://127.0.0.1:{closed_port()}/api/v1/write"
    d = PharosProcess(tmp_path, firing_config(tmp_path, state, uplink=up))
    daemons.append(d)
    assert d.notify.wait_for(lambda m: any(x.startswith("READY=1") for x in m)), d.log()
    assert wait_until(lambda: read_events(tmp_path / "alerts.jsonl"), 20), d.log()
    problems = wait_until(lambda: len(status(d).get("problems") or []) >= 3 and
                          status(d)["problems"], 20)
    text = " | ".join(problems or [])
    assert "state_dir" in text and "spill" in text and "sink file: outbox" in text, text
    assert any("STATUS=degraded" in m for m in d.notify.lines())
    for event in ("state_dir_unavailable", "spill_unavailable"):
        assert event in d.log()
    # Fix it: the daemon notices by itself (each part retries every 5 s).
    state.unlink()
    assert wait_until(lambda: status(d).get("problems") == [], 40), status(d)
    assert "spill_recovered" in d.log() and "state_dir_recovered" in d.log()
    assert (state / "spill.db").exists() and (state / "outbox" / "file.db").exists()
    assert d.proc.poll() is None


def test_read_only_state_dir_at_start_then_writable(tmp_path: Path, daemons: list) -> None:
    with tmpfs(tmp_path / "ro", "4m") as state:
        remount(state, "ro")
        up = f"http://127.0.0.1:{closed_port()}/api/v1/write"
        d = PharosProcess(tmp_path, firing_config(tmp_path, state, uplink=up))
        daemons.append(d)
        assert d.notify.wait_for(lambda m: any(x.startswith("READY=1") for x in m)), d.log()
        assert wait_until(lambda: read_events(tmp_path / "alerts.jsonl"), 20), d.log()
        assert wait_until(lambda: any("spill" in p for p in status(d).get("problems", [])),
                          20), status(d)
        remount(state, "rw")
        d.signal(signal.SIGHUP)      # "fixed": every part retries now, not in 5 s
        assert wait_until(lambda: status(d).get("problems") == [], 10), status(d)
        assert d.proc.poll() is None
        d.stop()


def test_disk_full_at_runtime(tmp_path: Path, daemons: list) -> None:
    with tmpfs(tmp_path / "small", "1m") as state:
        receiver = Receiver(lambda r: (503, {}, b"down")).start()
        try:
            d = PharosProcess(tmp_path, firing_config(tmp_path, state,
                                                      uplink=receiver.url + "/api/v1/write"))
            daemons.append(d)
            assert wait_until(lambda: read_events(tmp_path / "alerts.jsonl"), 20), d.log()
            filler = state / "filler"
            with open(filler, "wb") as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 65536)
            # A new threshold while the disk is full: its event cannot be stored in the
            # outbox, is held in memory and still delivered.
            d.write_config(firing_config(tmp_path, state,
                                         uplink=receiver.url + "/api/v1/write").replace(
                "thresholds:\n", "thresholds:\n  - {name: full-disk-alert, "
                "metric: memory.used_percent, above: 0, soak: 0s}\n"))
            d.signal(signal.SIGHUP)
            assert d.wait_log("reload_done"), d.log()
            assert wait_until(lambda: any(e["rule"] == "full-disk-alert"
                                          for e in read_events(tmp_path / "alerts.jsonl")),
                              20), d.log()
            assert wait_until(lambda: "spill_write_failed" in d.log(), 30), d.log()
            assert d.proc.poll() is None
            st = status(d)
            assert st["pipeline"]["spill"]["errors"] > 0
            filler.unlink()
            assert d.stop() == 0
        finally:
            receiver.stop()


# -- corrupted files at start --------------------------------------------------------------


def test_corrupted_outbox_spill_and_alert_state_are_set_aside(tmp_path: Path,
                                                             daemons: list) -> None:
    state = tmp_path / "state"
    (state / "outbox").mkdir(parents=True)
    garbage = b"this is not a database\n" * 400
    (state / "outbox" / "file.db").write_bytes(garbage)
    (state / "spill.db").write_bytes(garbage)
    (state / "alert-state.json").write_bytes(b'{"version": 1, "rules": [[[')
    up = f"http://127.0.0.1:{closed_port()}/api/v1/write"
    d = PharosProcess(tmp_path, firing_config(tmp_path, state, uplink=up))
    daemons.append(d)
    assert wait_until(lambda: read_events(tmp_path / "alerts.jsonl"), 20), d.log()
    for event in ("outbox_corrupt", "spill_corrupt", "alert_state_unreadable"):
        assert event in d.log(), event
    assert [p.read_bytes() for p in (state / "outbox").glob("file.db.corrupt-*")] == [garbage]
    assert len(list(state.glob("spill.db.corrupt-*"))) == 1
    assert wait_until(lambda: status(d).get("problems") == [], 10), status(d)
    # the fresh outbox is a working, durable one
    with sqlite3.connect(state / "outbox" / "file.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert oct((state / "outbox" / "file.db").stat().st_mode & 0o777) == oct(0o640)
    assert wait_until(lambda: (state / "alert-state.json").exists(), 15)
    assert oct((state / "alert-state.json").stat().st_mode & 0o777) == oct(0o640)


# -- kill -9 while events and samples are stored -------------------------------------------


def stored_event_ids(state: Path) -> set[str]:
    path = state / "outbox" / "hook.db"
    if not path.exists():
        return set()
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                timeout=2)) as db:
            return {r[0] for r in db.execute("SELECT id FROM events")}
    except sqlite3.Error:
        return set()


def stored_samples(state: Path) -> set[tuple[str, int]]:
    from pharosd.pipeline import compression
    from pharosd.pipeline.batch import Batch

    path = state / "spill.db"
    if not path.exists():
        return set()
    out: set[tuple[str, int]] = set()
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                timeout=2)) as db:
            for (payload,) in db.execute("SELECT payload FROM batches"):
                batch = Batch.from_bytes(compression.decompress(payload))
                out |= {("pharos_" + metric.replace(".", "_"), ts)
                        for (metric, _), ts, _ in batch.rows()}
    except sqlite3.Error:
        return set()
    return out


def test_kill_9_during_delivery_and_spill_loses_nothing_stored(tmp_path: Path,
                                                               daemons: list) -> None:
    rng = random.Random(20261203)
    down = {"on": True}

    def hook(_: Request) -> tuple[int, dict[str, str], bytes]:
        return (503, {}, b"down") if down["on"] else (200, {}, b"")

    hook_rx = Receiver(hook).start()
    rw_rx = Receiver(hook).start()
    state = tmp_path / "state"
    sinks = f"  - {{name: hook, kind: webhook, url: '{hook_rx.url}/hook'," \
            " retry: {initial: 100ms, max: 200ms}}"
    text = firing_config(tmp_path, state, uplink=rw_rx.url + "/api/v1/write",
                         extra_sinks=sinks)
    # A threshold per round that fires at once, so each run stores new events.
    stored_ids: set[str] = set()
    stored_rows: set[tuple[str, int]] = set()
    try:
        for round_no in range(3):
            rounds = "".join(f"  - {{name: r{i}, metric: memory.used_percent, above: 0, "
                             f"soak: 0s}}\n" for i in range(round_no + 1))
            d = PharosProcess(tmp_path, text.replace("thresholds:\n", "thresholds:\n" + rounds))
            daemons.append(d)
            assert wait_until(lambda: stored_event_ids(state) and stored_samples(state),
                              30), d.log()
            # a random moment: mid-retry of the webhook, mid-spill of the uplink
            wait_until(lambda: False, rng.uniform(0.2, 1.5))
            ids, rows = stored_event_ids(state), stored_samples(state)
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait(5)
            d.stop()
            stored_ids |= ids
            stored_rows |= rows
        down["on"] = False
        d = PharosProcess(tmp_path, text)
        daemons.append(d)

        def delivered_ids() -> set[str]:
            got: set[str] = set()
            for r in list(hook_rx.requests):
                if r.status == 200:
                    with contextlib.suppress(ValueError):
                        got.add(r.json()["id"])
            return got

        def delivered_rows() -> set[tuple[str, int]]:
            got: set[tuple[str, int]] = set()
            for r in list(rw_rx.requests):
                if r.status == 200:
                    got |= {(name, ts) for name, _, ts, _ in flat(decode_request(r.body))}
            return got

        assert stored_ids and stored_rows
        assert wait_until(lambda: stored_ids <= delivered_ids(), 40), (
            stored_ids - delivered_ids(), d.log())
        assert wait_until(lambda: stored_rows <= delivered_rows(), 40), (
            len(stored_rows - delivered_rows()), d.log())
    finally:
        hook_rx.stop()
        rw_rx.stop()


# -- secrets in URLs ---------------------------------------------------------------------------


SECRETS = ("pa55word", "t0kenvalue", "upl1nksecret")


def test_secrets_in_urls_appear_in_no_output(tmp_path: Path, daemons: list) -> None:
    hook_rx = Receiver().start()
    state = tmp_path / "state"
    probe_url = f"http://probeuser:pa55word@127.0.0.1:{closed_port()}/health?token=t0kenvalue"
    up = f"http://127.0.0.1:{closed_port()}/api/v1/write?token=upl1nksecret"
    probes = (f"probes:\n  - {{name: web, kind: http, url: '{probe_url}', every: 250ms, "
              "soak: 0s}\n")
    sinks = f"  - {{name: hook, kind: webhook, url: '{hook_rx.url}/hook'}}"
    try:
        d = PharosProcess(tmp_path, firing_config(tmp_path, state, uplink=up,
                                                  extra_sinks=sinks, probes=probes))
        daemons.append(d)

        def probe_fired() -> bool:
            return any(e["rule"].startswith("probe") or "web" in e["rule"]
                       for e in read_events(tmp_path / "alerts.jsonl"))

        assert wait_until(probe_fired, 30), (read_events(tmp_path / "alerts.jsonl"), d.log())
        assert wait_until(lambda: any("web" in r.body.decode(errors="replace")
                                      for r in hook_rx.requests), 20)
        st = wait_until(lambda: (s := status(d)) and s.get("pipeline") and
                        s["pipeline"]["receivers"][0]["last_error"] and s, 30)
        assert st, d.log()
        d.stop()
        outputs = {
            "log": d.log(),
            "alerts.jsonl": (tmp_path / "alerts.jsonl").read_text(),
            "webhook bodies": "\n".join(r.body.decode(errors="replace")
                                        for r in hook_rx.requests),
            "status": json.dumps(st),
            "notify": "\n".join(d.notify.lines()),
        }
        for path in state.rglob("*"):
            if path.is_file():
                outputs[str(path)] = path.read_bytes().decode("latin-1")
        leaks = [(where, s) for where, text in outputs.items() for s in SECRETS if s in text]
        assert leaks == []
        # The redacted forms are what shows.
        assert "http://***@127.0.0.1" in outputs["alerts.jsonl"]
        assert "token=***" in outputs["status"]
    finally:
        hook_rx.stop()
