"""The Debian package: build it, check its contents and metadata, lintian it,
then install it on this machine, run the daemon from it as user pharos, and
purge it.

Building needs dpkg-deb and etc/pharos.yaml (the reference config, shipped as
the conffile). Installing needs root, apt-get and Debian 12's own python3
libraries; it runs on Debian's python3, not the venv's. ``PHAROS_TEST_DEB``
may name an already built .deb to test instead of building one. With
``CI=true`` anything missing is a failure, not a skip.

The package is never left installed: the ``installed`` fixture purges it in
its ``finally`` whatever happened, and refuses to touch a pharosd that was
installed before the test started.
"""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import NotifySocket, read_events, wait_until
from tests.support.machine import PACKAGE, machine_lock

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "packaging" / "build-deb"
CI = os.environ.get("CI") == "true"

DEPENDS = ["python3 (>= 3.11)", "python3-psutil", "python3-yaml", "python3-structlog",
           "python3-requests", "python3-sdnotify", "python3-snappy", "tzdata", "adduser",
           "procps"]

pytestmark = pytest.mark.timeout(600)


def upstream_version() -> str:
    text = (ROOT / "pharosd" / "__init__.py").read_text()
    m = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    assert m, "no __version__ in pharosd/__init__.py"
    return m.group(1)


VERSION = upstream_version() + "-1"


def missing(message: str) -> None:
    if CI:
        pytest.fail(message)
    pytest.skip(message)


def require_tool(name: str, package: str) -> str:
    """Like conftest.require_binary: skip when missing, fail under CI=true."""
    path = shutil.which(name)
    if not path:
        missing(f"{name} not found (Debian package: {package})")
    assert path
    return path


def run(*cmd: str | Path, check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check:
        assert proc.returncode == 0, (
            f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def build(out: Path, tree: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return run(tree / "packaging" / "build-deb", out, check=False,
               env={**os.environ, "LC_ALL": "C.UTF-8"})


def copy_tree(dest: Path) -> Path:
    """The parts of the source tree build-deb reads, for tests that break them."""
    for part in ("pharosd", "systemd", "packaging", "docs", "etc"):
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "etc").mkdir(exist_ok=True)
    return dest


# -- building -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prebuilt = os.environ.get("PHAROS_TEST_DEB")
    if prebuilt:
        return Path(prebuilt).resolve()
    require_tool("dpkg-deb", "dpkg")
    if not (ROOT / "etc" / "pharos.yaml").exists():
        missing("etc/pharos.yaml does not exist yet: the package cannot be built")
    out = tmp_path_factory.mktemp("dist")
    proc = build(out)
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip())
    assert path.parent == out and path.is_file(), proc.stdout
    return path


@pytest.fixture(scope="module")
def unpacked(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("unpacked")
    run("dpkg-deb", "-x", deb, root)
    run("dpkg-deb", "-e", deb, root / "DEBIAN")
    return root


def test_build_refuses_without_the_reference_config(tmp_path):
    require_tool("dpkg-deb", "dpkg")
    tree = copy_tree(tmp_path / "src")
    (tree / "etc" / "pharos.yaml").unlink(missing_ok=True)
    proc = build(tmp_path / "out", tree)
    assert proc.returncode != 0
    assert "etc/pharos.yaml is missing" in proc.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_build_refuses_a_version_without_changelog_entry(tmp_path):
    require_tool("dpkg-deb", "dpkg")
    tree = copy_tree(tmp_path / "src")
    if not (tree / "etc" / "pharos.yaml").exists():
        (tree / "etc" / "pharos.yaml").write_text("interval: 10s\n")
    init = tree / "pharosd" / "__init__.py"
    init.write_text(init.read_text().replace(f'"{upstream_version()}"', '"99.0.0"'))
    proc = build(tmp_path / "out", tree)
    assert proc.returncode != 0
    assert "99.0.0-1" in proc.stderr and "changelog" in proc.stderr


def test_file_name_and_metadata(deb):
    assert deb.name == f"pharosd_{VERSION}_all.deb"
    fields = {}
    for name in ("Package", "Version", "Architecture", "Maintainer", "Section", "Priority",
                 "Depends", "Description", "Installed-Size"):
        fields[name] = run("dpkg-deb", "-f", deb, name).stdout.strip()
    assert fields["Package"] == "pharosd"
    assert fields["Version"] == VERSION
    assert fields["Architecture"] == "all"
    assert fields["Section"] == "admin" and fields["Priority"] == "optional"
    assert re.fullmatch(r".+ <[^@\s]+@[^@\s]+>", fields["Maintainer"])
    assert [d.strip() for d in fields["Depends"].split(",")] == DEPENDS
    assert int(fields["Installed-Size"]) > 0
    assert fields["Description"].startswith("monitoring daemon for Linux hosts")


def test_every_program_the_unit_runs_comes_from_a_dependency(unpacked):
    """ExecStart=/ExecReload= name programs: each must be shipped by this package
    or by one it depends on (a minimal Debian has no /bin/kill without procps)."""
    require_tool("dpkg-query", "dpkg")
    unit = (unpacked / "lib/systemd/system/pharosd.service").read_text()
    programs = re.findall(r"^Exec\w+=[-@:+!]*(/\S+)", unit, re.M)
    assert "/bin/kill" in programs and "/usr/bin/pharosd" in programs, programs
    depends = {d.split()[0] for d in
               (unpacked / "DEBIAN/control").read_text().split("Depends:", 1)[1]
               .splitlines()[0].split(",")}
    for program in programs:
        if (unpacked / program.lstrip("/")).exists():
            continue
        owner = run("dpkg-query", "-S", program, check=False)
        if owner.returncode != 0:
            missing(f"{program} is not installed on this host: cannot tell its package")
        packages = {p.strip() for p in owner.stdout.split(":", 1)[0].split(",")}
        assert packages & depends, f"{program} comes from {packages}, not a dependency"


def test_contents(deb):
    listing = run("dpkg-deb", "-c", deb).stdout.splitlines()
    entries = {}
    for line in listing:
        mode, owner, _size, _date, _time, name = line.split(None, 5)
        entries[name.removeprefix("./").split(" -> ")[0]] = (mode, owner)
    assert {owner for _, owner in entries.values()} == {"root/root"}
    expect = {
        "usr/bin/pharosd": "-rwxr-xr-x",
        "lib/systemd/system/pharosd.service": "-rw-r--r--",
        "etc/pharos.yaml": "-rw-r--r--",
        "etc/pharos.d/README": "-rw-r--r--",
        "usr/share/doc/pharosd/examples/pharos.tests.yaml": "-rw-r--r--",
        "usr/share/man/man8/pharosd.8.gz": "-rw-r--r--",
        "usr/share/man/man8/pharosd-test-rules.8.gz": "-rw-r--r--",
        "usr/share/man/man5/pharos.yaml.5.gz": "-rw-r--r--",
        "usr/share/doc/pharosd/copyright": "-rw-r--r--",
        "usr/share/doc/pharosd/changelog.Debian.gz": "-rw-r--r--",
    }
    for path, mode in expect.items():
        assert path in entries, f"{path} not in the package"
        assert entries[path][0] == mode, f"{path}: {entries[path][0]}"
    # Every module of the tree, as it is (no pip, no build step), and nothing compiled.
    tree = {str(p.relative_to(ROOT)) for p in (ROOT / "pharosd").rglob("*.py")
            if "__pycache__" not in p.parts}
    shipped = {p.removeprefix("usr/lib/python3/dist-packages/") for p in entries
               if p.startswith("usr/lib/python3/dist-packages/") and p.endswith(".py")}
    assert shipped == tree
    assert not [p for p in entries if "__pycache__" in p or p.endswith((".pyc", ".pyo"))]
    assert not [p for p in entries if ".egg-info" in p or "dist-info" in p]


def test_files_are_the_tree_s_files(unpacked):
    assert (unpacked / "lib/systemd/system/pharosd.service").read_bytes() == \
        (ROOT / "systemd/pharosd.service").read_bytes()
    assert (unpacked / "etc/pharos.yaml").read_bytes() == \
        (ROOT / "etc/pharos.yaml").read_bytes()
    assert (unpacked / "usr/bin/pharosd").read_bytes() == \
        (ROOT / "packaging/pharosd.launcher").read_bytes()
    first = (unpacked / "usr/bin/pharosd").read_text().splitlines()[0]
    assert first.startswith("#!/usr/bin/python3")   # Debian's python, not a venv's


def test_control_area(unpacked):
    ctl = unpacked / "DEBIAN"
    assert (ctl / "conffiles").read_text().split() == [
        "/etc/pharos.yaml", "/etc/pharos.d/README"]
    for script in ("postinst", "prerm", "postrm"):
        path = ctl / script
        assert stat.S_IMODE(path.stat().st_mode) == 0o755, script
        assert path.read_text().startswith("#!/bin/sh"), script
        run("sh", "-n", path)
    postinst = (ctl / "postinst").read_text()
    assert "deb-systemd-helper" in postinst and "deb-systemd-invoke" in postinst
    assert "adduser --system" in postinst
    postrm = (ctl / "postrm").read_text()
    assert "deluser" in postrm and "/var/lib/pharos" in postrm and "/var/log/pharos" in postrm
    # md5sums covers every shipped file and matches it.
    sums = dict(reversed(line.split(None, 1)) for line in
                (ctl / "md5sums").read_text().splitlines())
    files = [p for p in unpacked.rglob("*") if p.is_file() and "DEBIAN" not in p.parts]
    assert len(sums) == len(files)
    for path in files:
        rel = str(path.relative_to(unpacked))
        assert sums[rel] == hashlib.md5(path.read_bytes()).hexdigest(), rel


def test_changelog_and_copyright(unpacked):
    doc = unpacked / "usr/share/doc/pharosd"
    changelog = run("zcat", doc / "changelog.Debian.gz").stdout
    assert changelog.startswith(f"pharosd ({VERSION}) ")
    copyright_ = (doc / "copyright").read_text()
    assert copyright_.startswith("Format: https://www.debian.org/doc/packaging-manuals/"
                                 "copyright-format/1.0/")
    assert "License: Apache-2.0" in copyright_


def test_man_pages_render_without_warnings(unpacked):
    require_tool("groff", "groff-base")
    man = unpacked / "usr/share/man"
    for page, must in (("man8/pharosd.8.gz", ("SIGHUP", "EXIT STATUS", "/etc/pharos.yaml",
                                              "70", "check-config", "status",
                                              "test-rules", "--dump", "/etc/pharos.d/")),
                       ("man8/pharosd-test-rules.8.gz", ("expect", "a+bxn", "EXIT STATUS",
                                                         "pharos.tests.yaml")),
                       ("man5/pharos.yaml.5.gz", ("thresholds", "soak", "REFERENCE"))):
        source = run("zcat", man / page).stdout
        assert VERSION in source and "@" + "VERSION@" not in source, page
        proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=source,
                              capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stderr == "", f"{page}: {proc.stderr}"
        text = subprocess.run(["groff", "-man", "-Tutf8", "-P-c"], input=source,
                              capture_output=True, text=True).stdout
        text = re.sub(r".\x08", "", text)
        for word in must:
            assert word in text, f"{page} does not mention {word}"
    # pharos.yaml(5) quotes the reference config: its first key line is there.
    reference = (ROOT / "etc/pharos.yaml").read_text().splitlines()
    key_line = next(line for line in reference if re.match(r"^[a-z_]+:", line))
    rendered = run("zcat", man / "man5/pharos.yaml.5.gz").stdout
    assert key_line.split(":")[0] in rendered


def test_build_is_reproducible(deb, tmp_path):
    if os.environ.get("PHAROS_TEST_DEB"):
        pytest.skip("testing a prebuilt package")
    proc = build(tmp_path)
    assert proc.returncode == 0, proc.stderr
    again = Path(proc.stdout.strip())
    assert again.read_bytes() == deb.read_bytes()


def test_lintian_reports_no_errors(deb):
    lintian = require_tool("lintian", "lintian")
    proc = run(lintian, "--no-tag-display-limit", deb, check=False)
    tags = [line for line in (proc.stdout + proc.stderr).splitlines()
            if re.match(r"^[EWIXP]: ", line)]
    errors = [t for t in tags if t.startswith("E: ")]
    assert errors == [], "\n".join(tags)
    assert proc.returncode in (0, 2), proc.stderr   # 2: warnings only (lintian >= 2.90)


# -- installing ----------------------------------------------------------------------------


def dpkg_status(package: str = "pharosd") -> str:
    proc = run("dpkg-query", "-W", "-f=${db:Status-Abbrev}", package, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}
APT_OPTS = ("-o", "DPkg::Lock::Timeout=300", "-o", "Dpkg::Use-Pty=0")


def purge() -> subprocess.CompletedProcess[str]:
    return run("apt-get", "purge", "-y", *APT_OPTS, "pharosd", check=False, env=APT_ENV)


@pytest.fixture(scope="module")
def installed(deb: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        missing("installing the package needs root (CI runs as root)")
    for tool, package in (("apt-get", "apt"), ("dpkg-query", "dpkg"), ("setpriv", "util-linux"),
                          ("systemd-analyze", "systemd")):
        require_tool(tool, package)
    with machine_lock(PACKAGE):                 # one suite run at a time has it installed
        yield from _installed(deb)


def _installed(deb: Path) -> Iterator[Path]:
    if dpkg_status():
        pytest.skip(f"pharosd is already known to dpkg here ({dpkg_status()!r}): not touching it")
    try:
        proc = run("apt-get", "install", "-y", *APT_OPTS, deb, check=False, env=APT_ENV)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield deb
    finally:
        if dpkg_status():
            purge()
        assert not dpkg_status(), "pharosd is still installed after the test"


def test_installed_layout(installed):
    assert dpkg_status() == "ii"
    user = pwd.getpwnam("pharos")
    assert user.pw_uid < 1000, "a system user"
    assert user.pw_shell in ("/usr/sbin/nologin", "/bin/false")
    group = grp.getgrnam("pharos")
    assert user.pw_gid == group.gr_gid
    cfg = os.stat("/etc/pharos.yaml")
    assert (cfg.st_uid, cfg.st_gid, stat.S_IMODE(cfg.st_mode)) == (0, group.gr_gid, 0o640)
    for d in ("/var/lib/pharos", "/var/log/pharos"):
        st = os.stat(d)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.pw_uid, 0o750), d
    conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", "pharosd").stdout
    assert "/etc/pharos.yaml" in conffiles
    # Enabled through deb-systemd-helper (it works without systemd running).
    wants = Path("/etc/systemd/system/multi-user.target.wants/pharosd.service")
    assert wants.is_symlink()
    # Byte-compiled by py3compile for Debian's python3.
    assert list(Path("/usr/lib/python3/dist-packages/pharosd/__pycache__").glob("*.pyc"))
    assert run("pharosd", "--version").stdout.strip() == f"pharosd {upstream_version()}"


def man_pages_excluded() -> bool:
    """Slim images tell dpkg not to install man pages (path-exclude)."""
    conf = Path("/etc/dpkg/dpkg.cfg.d")
    return conf.is_dir() and any(
        re.search(r"^path-exclude\s*=?\s*/usr/share/man/", f.read_text(errors="replace"), re.M)
        for f in conf.iterdir() if f.is_file())


def test_installed_unit_verifies_clean(installed):
    proc = run("systemd-analyze", "verify", "--man=no", "/lib/systemd/system/pharosd.service",
               check=False)
    assert proc.stderr == ""
    assert proc.returncode == 0


def test_installed_man_pages(installed):
    if man_pages_excluded():
        pytest.skip("dpkg is configured not to install man pages here (path-exclude)")
    require_tool("man", "man-db")
    # With the man pages installed, the unit's Documentation= links resolve too.
    proc = run("systemd-analyze", "verify", "/lib/systemd/system/pharosd.service", check=False)
    assert proc.stderr == ""
    for page in (["8", "pharosd"], ["5", "pharos.yaml"]):
        proc = run("man", "-P", "cat", *page, env={**os.environ, "MANWIDTH": "80"})
        assert "NAME" in proc.stdout


def test_config_edits_survive_reinstall(installed):
    cfg = Path("/etc/pharos.yaml")
    original = cfg.read_text()
    try:
        cfg.write_text(original + "# local edit by test_packaging\n")
        proc = run("apt-get", "install", "-y", "--reinstall", *APT_OPTS, installed,
                   check=False, env=APT_ENV)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert cfg.read_text().endswith("# local edit by test_packaging\n")
        st = cfg.stat()
        assert (st.st_gid, stat.S_IMODE(st.st_mode)) == (grp.getgrnam("pharos").gr_gid, 0o640)
    finally:
        cfg.write_text(original)


def test_installed_config_checks(installed):
    proc = run("pharosd", "check-config", "/etc/pharos.yaml", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok" in proc.stdout


DAEMON_CONFIG = """\
interval: 250ms
soak: 1s
cool: 1s
state_dir: {tmp}/state
statistics: [uptime, memory]
thresholds:
  - {{name: uptime-high, metric: uptime.seconds, above: 1}}
sinks:
  - {{name: file, kind: file, path: {tmp}/alerts/alerts.jsonl}}
"""


@pytest.fixture
def pharos_tmp() -> Iterator[Path]:
    """A short directory the pharos user can use (unix socket paths are short)."""
    d = Path(tempfile.mkdtemp(prefix="phpkg", dir="/tmp"))
    try:
        os.chmod(d, 0o755)
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def as_pharos(*cmd: str) -> list[str]:
    return ["setpriv", "--reuid=pharos", "--regid=pharos", "--init-groups",
            "--inh-caps=-all", *cmd]


def test_daemon_runs_from_the_package_as_pharos(installed, pharos_tmp):
    """What systemd would do, by hand: user pharos, a NOTIFY_SOCKET, a runtime
    directory; READY=1 arrives, `pharosd status` answers, an alert is written."""
    user = pwd.getpwnam("pharos")
    tmp = pharos_tmp
    for sub in ("state", "alerts", "run"):
        (tmp / sub).mkdir(mode=0o750)
        os.chown(tmp / sub, user.pw_uid, user.pw_gid)
    config = tmp / "pharos.yaml"
    config.write_text(DAEMON_CONFIG.format(tmp=tmp))
    os.chmod(config, 0o644)
    notify = NotifySocket(tmp / "notify.sock")
    os.chmod(tmp / "notify.sock", 0o666)
    log = tmp / "daemon.log"
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": user.pw_dir,
           "NOTIFY_SOCKET": str(tmp / "notify.sock"), "WATCHDOG_USEC": "30000000",
           "RUNTIME_DIRECTORY": str(tmp / "run")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(as_pharos("/usr/bin/pharosd", "run", "-c", str(config),
                                          "--log-format", "logfmt"),
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        assert notify.wait_for(lambda m: "READY=1" in m, 60), log.read_text()
        sock = tmp / "run" / "control.sock"
        # The control worker binds on its own thread, READY=1 does not wait for it.
        assert wait_until(sock.exists, 10), log.read_text()
        st = os.stat(sock)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
        assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid)

        status = run("pharosd", "status", "--socket", sock)
        assert f"pharosd {upstream_version()}" in status.stdout
        state = json.loads(run("pharosd", "status", "--json", "--socket", sock).stdout)
        assert state["pid"] == proc.pid
        assert {w["name"] for w in state["workers"]} >= {"control"}
        # A member of group pharos may ask; a stranger may not (mode 0660).
        member = subprocess.run(as_pharos("/usr/bin/pharosd", "status", "--socket", str(sock)),
                                capture_output=True, text=True, env=env)
        assert member.returncode == 0, member.stderr
        stranger = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
             "/usr/bin/pharosd", "status", "--socket", str(sock)],
            capture_output=True, text=True, env=env)
        assert stranger.returncode == 1 and "permission denied" in stranger.stderr

        alerts = tmp / "alerts" / "alerts.jsonl"
        assert wait_until(lambda: read_events(alerts), 30), log.read_text()
        event = read_events(alerts)[0]
        assert event["status"] == "firing" and event["rule"] == "uptime-high"
        assert os.stat(alerts).st_uid == user.pw_uid

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, log.read_text()
        assert "STOPPING=1" in notify.lines()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        notify.close()
    # Stopped: `pharosd status` says so with exit 3.
    gone = run("pharosd", "status", "--socket", tmp / "run" / "control.sock", check=False)
    assert gone.returncode == 3, gone.stdout + gone.stderr
    assert "not running" in gone.stderr


def test_purge_removes_everything(installed):
    """Runs last in this file: purge, and nothing of pharosd is left."""
    proc = purge()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert dpkg_status() == ""
    with pytest.raises(KeyError):
        pwd.getpwnam("pharos")
    with pytest.raises(KeyError):
        grp.getgrnam("pharos")
    for path in ("/etc/pharos.yaml", "/var/lib/pharos", "/var/log/pharos", "/run/pharos",
                 "/usr/bin/pharosd", "/lib/systemd/system/pharosd.service",
                 "/usr/lib/python3/dist-packages/pharosd",
                 "/etc/systemd/system/multi-user.target.wants/pharosd.service",
                 "/var/lib/systemd/deb-systemd-helper-enabled/pharosd.service.dsh-also"):
        assert not os.path.lexists(path), f"{path} survived the purge"
    overrides = run("dpkg-statoverride", "--list", "/etc/pharos.yaml", check=False)
    assert overrides.stdout.strip() == ""
