"""The operator's whole workflow under a real systemd: a minimal Debian 12 booted in
systemd-nspawn, the .deb installed with apt, and every step an operator takes.

The tests below are steps of one story and run in file order against one booted
container (module scope): install, ask for status, edit and reload, alerts and
a Nagios plugin under the hardened unit, journald priorities, a broken reload,
the watchdog, a crash loop, a bad config at start, an upgrade, remove, purge.
A step that fails leaves the next ones to fail too; read the first failure.

Needs root, debootstrap, systemd-nspawn (systemd-container), nsenter and an
overlay mount, and the Debian mirror of this host's apt sources (tests/support/
nspawn.py builds and caches the tree; about 2 minutes the first time). Skipped
with the reason printed without them, failed with ``CI=true``. The Makefile's
second (Debian libraries) run sets ``PHAROS_SKIP_REAL_SYSTEMD``: the container
runs Debian's own python3 either way, so one run proves everything.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, free_port, require_binary
from tests.support.daemon import wait_until
from tests.support.nspawn import Container, TreeError, cached_tree

ROOT = Path(__file__).resolve().parents[1]
UNIT = "pharosd"
DROPINS = "/etc/systemd/system/pharosd.service.d"
APT = ("apt-get", "-y", "-qq", "-o", "Dpkg::Use-Pty=0")

pytestmark = pytest.mark.timeout(900)

BROKEN = "interval: fast\nthresholds: 3\n"
PRIORITY = {"debug": "7", "info": "6", "warning": "4", "error": "3", "critical": "2"}


def operator_config(hook_port: int) -> str:
    """The operator's edit of /etc/pharos.yaml: fast intervals, an alert that
    fires at once, two Nagios plugins, two file sinks and a webhook that fails."""
    plugins = "/usr/lib/nagios/plugins"
    return f"""\
# edited by the operator (tests/test_systemd_real.py)
interval: 1s
soak: 1s
cool: 1s
statistics:
  - uptime
  - memory
  - load
  - disk
  - {{name: services, every: 1s, match: ["doomed*.service"]}}
probes:
  - {{name: rootdisk, kind: exec, command: [{plugins}/check_disk, -w, "1%", -c, "1%", -p, /]}}
  - name: dbus        # CRITICAL while it sees the message bus of user messagebus
    kind: exec
    command: [{plugins}/check_procs, -c, "0:0", -u, messagebus, -C, dbus-daemon]
thresholds:
  - {{name: uptime-high, metric: uptime.seconds, above: 1}}
  - {{name: unit-failed, metric: services.active_state, below: 0}}
sinks:
  - {{name: file, kind: file}}
  - {{name: logs, kind: file, path: /var/log/pharos/alerts.jsonl}}
  - {{name: hook, kind: webhook, url: "http://127.0.0.1:{hook_port}/hook"}}
supervisor: {{max_restarts: 2, period: 60s}}
"""


# -- the session: two builds of the package, one booted container -----------------------


def missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def debian_depends() -> list[str]:
    text = (ROOT / "packaging/debian/control.in").read_text()
    m = re.search(r"^Depends: (.*)$", text, re.M)
    assert m, "no Depends: in packaging/debian/control.in"
    return [d.strip().split()[0] for d in m.group(1).split(",")]


def build_deb(tree: Path, out: Path, revision: int) -> Path:
    proc = subprocess.run([str(tree / "packaging/build-deb"), str(out)], capture_output=True,
                          text=True, env={**os.environ, "LC_ALL": "C.UTF-8",
                                          "DEB_REVISION": str(revision)})
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip())


def next_revision_tree(dest: Path) -> Path:
    """A copy of the sources with a changelog entry for Debian revision 2."""
    for part in ("pharosd", "systemd", "packaging", "docs", "etc", "README.md"):
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.is_file():
            shutil.copy2(src, dest / part)
    changelog = dest / "packaging/debian/changelog"
    text = changelog.read_text()
    head = re.match(r"pharosd \(([^)]+)-1\) (.*)\n", text)
    trailer = re.search(r"^ -- .*$", text, re.M)
    assert head and trailer, "unexpected packaging/debian/changelog"
    entry = (f"pharosd ({head.group(1)}-2) {head.group(2)}\n\n"
             "  * Rebuild, to test an upgrade under systemd.\n\n"
             f"{trailer.group(0)}\n\n")
    changelog.write_text(entry + text)
    return dest


@pytest.fixture(scope="module")
def host_ready() -> None:
    """Skip (fail under CI=true) before any work when this host cannot do it."""
    reason = os.environ.get("PHAROS_SKIP_REAL_SYSTEMD")
    if reason:
        pytest.skip(f"PHAROS_SKIP_REAL_SYSTEMD: {reason}")
    if os.geteuid() != 0:
        missing("booting a container under systemd-nspawn needs root (CI runs as root)")
    for tool in ("debootstrap", "systemd-nspawn", "nsenter", "mount", "dpkg-deb"):
        require_binary(tool)


@pytest.fixture(scope="module")
def debs(host_ready: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("debs")
    first = build_deb(ROOT, out, 1)
    second = build_deb(next_revision_tree(tmp_path_factory.mktemp("src")), out, 2)
    return first, second


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory,
        debs: tuple[Path, Path]) -> Iterator[Container]:
    try:
        tree = cached_tree([*debian_depends(), "monitoring-plugins-basic", "polkitd"])
    except TreeError as exc:
        pytest.fail(f"cannot build the Debian 12 tree: {exc}")
    box = Container(tree, tmp_path_factory.mktemp("nspawn"), f"pharosd-test-{os.getpid()}")
    try:
        box.start()
        for deb in debs:
            box.copy_in(deb, f"/root/{deb.name}")
        box.run(*APT, "update")
        yield box
    finally:
        box.stop()


# -- reading the container -------------------------------------------------------------


def prop(box: Container, name: str, unit: str = UNIT) -> str:
    return box.run("systemctl", "show", "-P", name, unit).stdout.strip()


def cursor(box: Container) -> int:
    """The journal's sequence number now; entries after it are newer."""
    out = box.run("journalctl", "-n", "0", "--show-cursor", "--no-pager").stdout
    m = re.search(r"-- cursor: \S*\bi=([0-9a-f]+)", out)
    assert m, out
    return int(m.group(1), 16)


def seqnum(entry: dict[str, Any]) -> int:
    m = re.search(r"\bi=([0-9a-f]+)", str(entry.get("__CURSOR", "")))
    return int(m.group(1), 16) if m else 0


def journal(box: Container, after: int = 0, priority: str | None = None
            ) -> list[dict[str, Any]]:
    """The unit's journal entries (systemd's and pharosd's) as JSON objects, those
    after ``after`` (a ``cursor``) at ``priority`` or more urgent. Filtered here:
    journalctl 252 with --after-cursor and a match skips the first entry that matches."""
    out = box.run("journalctl", "-u", UNIT, "-o", "json", "--no-pager").stdout
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    most = int(PRIORITY[priority]) if priority else 7
    return [e for e in entries
            if seqnum(e) > after and int(e.get("PRIORITY", 6)) <= most]


def messages(box: Container, after: int = 0, priority: str | None = None) -> str:
    return "\n".join(str(e.get("MESSAGE", "")) for e in journal(box, after, priority))


def status(box: Container, user: str | None = None) -> dict[str, Any]:
    return dict(json.loads(box.run("pharosd", "status", "--json", user=user).stdout))


def alerts_now(box: Container) -> list[dict[str, Any]]:
    """The daemon's alerts, or [] while it does not answer yet (just started, loaded machine)."""
    proc = box.run("pharosd", "status", "--json", check=False)
    return list(json.loads(proc.stdout)["alerts"]) if proc.returncode == 0 else []


def events(box: Container, path: str = "/var/lib/pharos/alerts.jsonl") -> list[dict[str, Any]]:
    proc = box.run("cat", path, check=False)
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def firing(box: Container, rule: str, path: str = "/var/lib/pharos/alerts.jsonl"
           ) -> list[dict[str, Any]]:
    return [e for e in events(box, path) if e["rule"] == rule and e["status"] == "firing"]


def active_with_new_pid(box: Container, old: str) -> bool:
    pid = prop(box, "MainPID")
    return pid not in ("0", old) and prop(box, "ActiveState") == "active"


def dropin(box: Container, name: str, text: str | None) -> None:
    if text is None:
        box.run("rm", "-f", f"{DROPINS}/{name}")
    else:
        box.write(f"{DROPINS}/{name}", text)
    box.run("systemctl", "daemon-reload")


def usec(value: str) -> float:
    """Seconds of a systemd time span as `systemctl show` prints it (5s, 100ms, 1min 30s)."""
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in re.findall(r"([\d.]+)(us|ms|min|s|h)", value))


# -- the workflow --------------------------------------------------------------------


def test_01_install_enables_and_starts_the_service(box, debs):
    deb = f"/root/{debs[0].name}"
    proc = box.run(*APT, "install", deb, check=False, timeout=600)
    assert proc.returncode == 0, f"apt-get install {deb} failed:\n{proc.stdout}{proc.stderr}"
    assert box.run("systemctl", "is-enabled", UNIT, check=False).stdout.strip() == "enabled"
    assert wait_until(lambda: prop(box, "ActiveState") == "active", 30), messages(box)
    out = box.run("systemctl", "status", "--no-pager", "-l", UNIT).stdout
    assert re.search(r'^\s+Status: "ok: \d+ workers, 0 alerts firing, config /etc/pharos.yaml"',
                     out, re.M), f"no pharosd Status= line in systemctl status:\n{out}"
    # The dependency that ExecReload= needs came with the package.
    assert box.run("dpkg-query", "-S", "/bin/kill").stdout.startswith("procps:")
    # docs/operations.md names the Debian and systemd this ran on.
    # docs/operations.md names the Debian and systemd this ran on (major versions:
    # a point release of Debian 12 does not make the note wrong).
    debian = box.read("/etc/debian_version").strip().split(".")[0]
    systemd = box.run("systemctl", "--version").stdout.split()[1]
    note = (ROOT / "docs/operations.md").read_text()
    assert re.search(rf"Debian {debian}\.\d+ with systemd {systemd}\s", note), \
        f"docs/operations.md 'Tested under systemd' should name Debian {debian}, systemd {systemd}"


def test_02_status_for_root_and_group_pharos_not_for_others(box):
    box.run("useradd", "--groups", "pharos", "alice")
    box.run("useradd", "bob")
    root = box.run("pharosd", "status")
    assert root.stdout.startswith("pharosd "), root.stdout
    assert status(box)["pid"] == int(prop(box, "MainPID"))
    alice = box.run("pharosd", "status", user="alice", check=False)
    assert alice.returncode == 0, f"a member of group pharos was refused: {alice.stderr}"
    bob = box.run("pharosd", "status", user="bob", check=False)
    assert bob.returncode == 1, f"a stranger got an answer:\n{bob.stdout}"
    assert "permission denied" in bob.stderr


def test_03_an_edited_config_applies_on_reload(box):
    # The package suggests the Nagios plugins; the operator's config uses two.
    box.run(*APT, "install", "monitoring-plugins-basic", timeout=300)
    before = status(box)
    pid = prop(box, "MainPID")
    box.write("/etc/pharos.yaml", operator_config(free_port()))
    assert box.run("pharosd", "check-config", "/etc/pharos.yaml").returncode == 0
    reload = box.run("systemctl", "reload", UNIT, check=False)
    assert reload.returncode == 0, f"systemctl reload failed:\n{reload.stderr}\n{messages(box)}"
    applied = wait_until(lambda: status(box)["config"]["digest"] != before["config"]["digest"],
                         20)
    assert applied, f"the new config was not applied:\n{messages(box)}"
    assert prop(box, "MainPID") == pid, "a reload must not restart the daemon"
    assert "reload:  ok" in box.run("pharosd", "status").stdout
    workers = len(status(box)["workers"])     # the new config's sinks are running
    assert wait_until(lambda: prop(box, "StatusText").startswith(f"ok: {workers} workers"), 10), \
        (workers, prop(box, "StatusText"))
    out = box.run("systemctl", "status", "--no-pager", "-l", UNIT).stdout
    assert "ExecReload=/bin/kill -HUP $MAINPID (code=exited, status=0/SUCCESS)" in out, out


def test_04_an_alert_fires_into_the_file_sinks_under_the_hardened_unit(box):
    for path in ("/var/lib/pharos/alerts.jsonl", "/var/log/pharos/alerts.jsonl"):
        assert wait_until(lambda p=path: firing(box, "uptime-high", p), 20), \
            f"no firing uptime-high in {path}:\n{messages(box)}"
        owner = box.run("stat", "-c", "%U:%G %a", path).stdout.split()
        assert owner == ["pharos:pharos", "640"], f"{path}: {owner} (UMask=0027, user pharos)"
    # ... written by a process in the sandbox the unit describes.
    proc = box.run("cat", f"/proc/{prop(box, 'MainPID')}/status").stdout
    fields = dict(re.findall(r"^(\w+):\s+(.*)$", proc, re.M))
    assert fields["NoNewPrivs"] == "1" and fields["Seccomp"] == "2", fields
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0, fields
    uid = box.run("id", "-u", "pharos").stdout.strip()
    assert fields["Uid"].split()[0] == uid


def test_05_nagios_plugins_run_in_the_sandbox(box):
    # check_procs sees a process of another user (the message bus) and says CRITICAL.
    found = wait_until(lambda: [e for e in firing(box, "probe:dbus")
                                if e["level"] == "critical"], 20)
    assert found, f"the dbus probe did not fire critical:\n{firing(box, 'probe:dbus')}"
    assert "PROCS CRITICAL: 1 process" in found[0]["summary"], found[0]
    # check_disk ran (statvfs of /) and said OK: no alert, a status line in the journal.
    assert wait_until(lambda: 'probe=rootdisk kind=exec status=OK note="DISK OK' in
                      messages(box), 10), messages(box)
    rootdisk = status(box)["collector"]["rootdisk"]
    assert rootdisk["runs"] > 0 and rootdisk["last_error"] is None, rootdisk
    assert not firing(box, "probe:rootdisk")


def test_05b_a_failed_unit_fires_through_the_services_statistic(box):
    # `systemctl show` from inside the hardened unit, as user pharos, over D-Bus.
    box.run("systemd-run", "--unit=doomed", "/bin/false", check=False)
    assert wait_until(lambda: prop(box, "ActiveState", "doomed.service") == "failed", 20)
    found = wait_until(lambda: [e for e in firing(box, "unit-failed")
                                if e["labels"].get("unit") == "doomed.service"], 30)
    assert found, f"no unit-failed alert for doomed.service:\n{messages(box)}"
    assert found[0]["value"] == -1, found[0]


def docs_block(lang: str, after: str) -> str:
    """The first ``lang`` code block after the text ``after`` in docs/sinks.md."""
    text = (ROOT / "docs/sinks.md").read_text()
    start = text.index(f"```{lang}\n", text.index(after)) + len(lang) + 4
    return text[start:text.index("```", start)]


def test_05c_the_documented_remediation_restarts_a_unit_through_polkit(box):
    """docs/sinks.md's remediation, as written there: an exec sink restarts a unit from
    inside the hardened unit (NoNewPrivileges: no sudo) because a polkit rule lets user
    pharos do that one thing. A second unit without a rule is refused."""
    box.run(*APT, "install", "polkitd", timeout=300)
    units = {"allowed": "nginx.service", "refused": "refused.service"}
    for unit in units.values():
        box.write(f"/etc/systemd/system/{unit}", "[Service]\nExecStart=/bin/sleep infinity\n")
    box.run("systemctl", "daemon-reload")
    box.run("systemctl", "start", *units.values())
    before = {k: prop(box, "MainPID", u) for k, u in units.items()}
    script = docs_block("sh", "/usr/local/lib/pharos/restart-unit")
    box.write("/usr/local/lib/pharos/restart-unit", script)
    box.run("chmod", "0755", "/usr/local/lib/pharos/restart-unit")
    box.write("/etc/polkit-1/rules.d/60-pharos-nginx.rules",
              docs_block("js", "/etc/polkit-1/rules.d/60-pharos-nginx.rules"))
    # two probes that fail at once (nothing of that name runs), a sink for each unit
    config = box.read("/etc/pharos.yaml").replace("probes:\n", """probes:
  - {name: nginx, kind: process, process: no-such-nginx}
  - {name: other, kind: process, process: no-such-other}
""").replace("sinks:\n", """sinks:
  - name: restart-nginx
    kind: exec
    command: [/usr/local/lib/pharos/restart-unit, nginx.service]
    env: {REMEDIATE_RULE: "probe:nginx"}
  - name: restart-other
    kind: exec
    command: [/usr/local/lib/pharos/restart-unit, refused.service]
    env: {REMEDIATE_RULE: "probe:other"}
""")
    mark = cursor(box)
    box.write("/etc/pharos.yaml", config)
    box.run("systemctl", "reload", UNIT)
    restarted = wait_until(lambda: prop(box, "MainPID", units["allowed"])
                           not in ("0", before["allowed"]), 60)
    assert restarted, f"nginx.service was not restarted:\n{messages(box, mark)}"
    assert prop(box, "ActiveState", units["allowed"]) == "active"
    refused = wait_until(lambda: [line for line in messages(box, mark).splitlines()
                                  if "event=alert_delivery_failed_permanently" in line
                                  and "sink=restart-other" in line
                                  and "Interactive authentication required" in line], 60)
    assert refused, f"no refusal of refused.service logged:\n{messages(box, mark)}"
    assert prop(box, "MainPID", units["refused"]) == before["refused"]
    box.run("systemctl", "stop", *units.values())


def test_06_journal_priorities_follow_the_log_levels(box):
    # The webhook's receiver is not there: delivery warnings.
    assert wait_until(lambda: "alert_delivery_failed" in messages(box, priority="warning"),
                      20), messages(box)
    # What the operator types, and the same by the PRIORITY field of every entry.
    warnings = box.run("journalctl", "-u", UNIT, "-p", "warning", "-o", "cat").stdout
    assert "event=alert_delivery_failed" in warnings
    assert "event=daemon_ready" not in warnings and "event=reload_done" not in warnings
    checked = 0
    for entry in journal(box):
        if entry.get("SYSLOG_IDENTIFIER") != "pharosd":
            continue
        m = re.search(r"\blevel=(\w+)", str(entry.get("MESSAGE", "")))
        if m:
            assert entry["PRIORITY"] == PRIORITY[m.group(1)], entry["MESSAGE"]
            checked += 1
    assert checked > 5


def test_07_a_broken_reload_keeps_the_service_running_and_says_why(box):
    good = box.read("/etc/pharos.yaml")
    pid = prop(box, "MainPID")
    mark = cursor(box)
    box.write("/etc/pharos.yaml", BROKEN)
    box.run("systemctl", "reload", UNIT)
    assert wait_until(lambda: prop(box, "StatusText").startswith("reload failed (2 errors)"),
                      10), prop(box, "StatusText")
    assert "/etc/pharos.yaml:1:11: interval: expected a duration" in prop(box, "StatusText")
    assert prop(box, "ActiveState") == "active" and prop(box, "MainPID") == pid
    errors = messages(box, mark, priority="error")
    assert "event=reload_failed" in errors and "/etc/pharos.yaml:2:13: thresholds" in errors, \
        errors
    assert "reload:  FAILED" in box.run("pharosd", "status").stdout
    box.write("/etc/pharos.yaml", good)
    box.run("systemctl", "reload", UNIT)
    assert wait_until(lambda: prop(box, "StatusText").startswith("ok:"), 10), \
        prop(box, "StatusText")


def test_08_the_watchdog_restarts_a_hung_daemon(box):
    dropin(box, "50-test-watchdog.conf", "[Service]\nWatchdogSec=3s\n")
    box.run("systemctl", "restart", UNIT)           # WATCHDOG_USEC is given at start
    pid = prop(box, "MainPID")
    mark = cursor(box)
    box.run("kill", "-STOP", pid)
    assert wait_until(lambda: active_with_new_pid(box, pid), 60), messages(box, mark)
    log = messages(box, mark)
    assert "Watchdog timeout (limit 3s)!" in log and "Failed with result 'watchdog'" in log, log
    assert prop(box, "NRestarts") == "1"
    dropin(box, "50-test-watchdog.conf", None)


def test_09_a_crash_loop_ending_in_70_is_restarted_after_RestartSec(box):
    restart_sec = usec(prop(box, "RestartUSec"))
    assert restart_sec > 0
    dropin(box, "50-test-faults.conf",
           "[Service]\nEnvironment=PHAROSD_TEST_FAULTS=evaluator:crash-always\n")
    mark = cursor(box)
    box.run("systemctl", "restart", "--no-block", UNIT)
    assert wait_until(lambda: "Scheduled restart job" in messages(box, mark), 90), \
        messages(box, mark)
    assert int(prop(box, "NRestarts")) >= 1
    entries = journal(box, mark)
    exits = [e for e in entries if "status=70/SOFTWARE" in str(e.get("MESSAGE"))]
    scheduled = [e for e in entries if "Scheduled restart job" in str(e.get("MESSAGE"))]
    assert exits and scheduled, "\n".join(str(e.get("MESSAGE")) for e in entries)
    gap = (int(scheduled[0]["__MONOTONIC_TIMESTAMP"])
           - int(exits[0]["__MONOTONIC_TIMESTAMP"])) / 1e6
    # (journald stamps a message when it receives it: the exit line may be a bit late)
    assert gap >= restart_sec - 0.25, \
        f"restarted {gap:.2f} s after exit 70, RestartSec={restart_sec}"
    # The daemon's own word on it is an error, as is the supervisor giving up.
    errors = messages(box, mark, priority="error")
    assert "event=daemon_stopped exit_code=70" in errors, errors
    assert "event=supervisor_gave_up" in errors, errors
    dropin(box, "50-test-faults.conf", None)
    box.run("systemctl", "restart", UNIT)
    assert prop(box, "ActiveState") == "active", messages(box, mark)


def test_10_a_bad_config_at_start_is_not_restarted_in_a_loop(box):
    good = box.read("/etc/pharos.yaml")
    mark = cursor(box)
    box.write("/etc/pharos.yaml", BROKEN)
    proc = box.run("systemctl", "restart", UNIT, check=False)
    assert proc.returncode != 0
    # RestartPreventExitStatus=1: failed at once, not "activating (auto-restart)".
    state = (prop(box, "ActiveState"), prop(box, "SubState"), prop(box, "ExecMainStatus"))
    assert state == ("failed", "failed", "1"), state
    assert prop(box, "NRestarts") == "0"
    errors = messages(box, mark, priority="error")
    assert "/etc/pharos.yaml:1:11: interval: expected a duration like 30s, got 'fast'" in errors,\
        f"journalctl -p err does not say why the start failed:\n{errors}"
    assert messages(box, mark).count("Starting pharosd.service") == 1
    # The operator's first look says why, too.
    last = box.run("journalctl", "-u", UNIT, "-p", "err", "-n", "4", "-o", "cat").stdout
    assert "/etc/pharos.yaml:2:13: thresholds: expected a list, got 3" in last, last
    box.write("/etc/pharos.yaml", good)
    box.run("systemctl", "start", UNIT)
    assert prop(box, "ActiveState") == "active"


def test_11_upgrade_keeps_the_edit_restarts_and_keeps_open_alerts(box, debs):
    config = box.read("/etc/pharos.yaml")
    assert wait_until(lambda: any(a["rule"] == "uptime-high" and a["status"] == "firing"
                                  for a in alerts_now(box)), 20)
    before = {a["rule"]: a for a in status(box)["alerts"]}
    fired = len(firing(box, "uptime-high"))
    pid = prop(box, "MainPID")
    proc = box.run(*APT, "install", f"/root/{debs[1].name}", check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    version = box.run("dpkg-query", "-W", "-f=${Version}", "pharosd").stdout
    assert version.endswith("-2"), version
    assert box.read("/etc/pharos.yaml") == config, "the conffile edit was lost"
    assert box.run("test", "-e", "/etc/pharos.yaml.dpkg-dist", check=False).returncode != 0
    assert wait_until(lambda: active_with_new_pid(box, pid), 30), "not restarted on upgrade"
    after = wait_until(lambda: {a["rule"]: a for a in alerts_now(box)}, 10)
    assert after["uptime-high"]["status"] == "firing"
    assert after["uptime-high"]["since"] == before["uptime-high"]["since"]
    assert len(firing(box, "uptime-high")) == fired, "the upgrade fired the open alert again"


def test_12_remove_keeps_config_and_state(box):
    config = box.read("/etc/pharos.yaml")
    box.run(*APT, "remove", "pharosd", timeout=300)
    assert box.run("dpkg-query", "-W", "-f=${db:Status-Abbrev}", "pharosd").stdout.strip() == "rc"
    assert prop(box, "ActiveState") != "active"
    assert box.run("pgrep", "-u", "pharos", check=False).returncode == 1, "still running"
    assert box.read("/etc/pharos.yaml") == config
    assert firing(box, "uptime-high"), "the state directory's alerts.jsonl is gone"
    assert firing(box, "uptime-high", "/var/log/pharos/alerts.jsonl")
    assert box.run("id", "pharos", check=False).returncode == 0, "the user was removed"


def test_13_purge_removes_config_state_and_the_user(box):
    box.run(*APT, "purge", "pharosd", timeout=300)
    assert box.run("dpkg-query", "-W", "pharosd", check=False).returncode != 0
    for path in ("/etc/pharos.yaml", "/var/lib/pharos", "/var/log/pharos",
                 "/etc/systemd/system/multi-user.target.wants/pharosd.service"):
        assert box.run("test", "-e", path, check=False).returncode != 0, f"{path} survived"
    assert box.run("getent", "passwd", "pharos", check=False).returncode == 2
    # The group stays while it has members the administrator added (alice).
    group = box.run("getent", "group", "pharos", check=False)
    assert group.returncode == 0 and group.stdout.strip().endswith(":alice"), group.stdout
