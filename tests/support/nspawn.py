"""A minimal Debian 12 booted under its own systemd, for tests/test_systemd_real.py.

``cached_tree`` builds (once) and returns a ``debootstrap --variant=minbase``
tree of bookworm with systemd and dbus, its apt lists fetched and the
package's dependencies downloaded (not installed) so that an install in the
container resolves them as on a user's machine without fetching them again.
The tree is cached between runs: ``$PHAROS_SYSTEMD_TREE`` names it, else it
lives under ``$XDG_CACHE_HOME`` or ``/var/cache`` in ``pharosd-tests/``,
named after a digest of the recipe below (change the recipe, get a new tree).

The Debian mirror is never written down: it is read at run time from this
host's own apt sources (``/etc/apt/sources.list`` and
``/etc/apt/sources.list.d/*``), and only the entries for bookworm's suites are
copied into the tree.

``Container`` boots the cached tree under an overlay (the cache stays clean)
with ``systemd-nspawn -b --register=no --keep-unit`` (no system bus or
systemd is needed on the host), and runs commands inside with
``nsenter -t <container's PID 1> -a`` in a clean environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUITE = "bookworm"
# What the tree holds: systemd as PID 1, dbus (systemctl, logind), nothing else
# beyond minbase. Dependencies of the package are only downloaded.
INCLUDE = ("systemd", "systemd-sysv", "dbus")
RECIPE_VERSION = "1"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HOST_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


class TreeError(RuntimeError):
    """The tree could not be built or the container could not be booted."""


# -- the host's apt sources -----------------------------------------------------------


@dataclass(frozen=True)
class AptSource:
    uri: str
    suite: str
    components: tuple[str, ...]


def _one_line_sources(text: str) -> list[AptSource]:
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        line = re.sub(r"\[[^\]]*\]", " ", line)          # [signed-by=... arch=...]
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "deb":
            out.append(AptSource(parts[1], parts[2], tuple(parts[3:])))
    return out


def _deb822_sources(text: str) -> list[AptSource]:
    out = []
    for para in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for raw in para.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1] in (" ", "\t") and key:
                fields[key] += " " + raw.strip()
                continue
            key, _, value = raw.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in fields.get("types", "").split():
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                out.append(AptSource(uri, suite, tuple(fields.get("components", "").split())))
    return out


def host_sources(places: Iterable[Path] = HOST_SOURCES) -> list[AptSource]:
    """Every enabled ``deb`` entry of the host's apt sources, in apt's order."""
    files: list[Path] = []
    for place in places:
        if place.is_file():
            files.append(place)
        elif place.is_dir():
            files += sorted(p for p in place.iterdir() if p.suffix in (".list", ".sources"))
    out: list[AptSource] = []
    for f in files:
        text = f.read_text(errors="replace")
        out += _deb822_sources(text) if f.suffix == ".sources" else _one_line_sources(text)
    return out


def bookworm_sources(sources: Sequence[AptSource]) -> list[AptSource]:
    """The entries of the release itself and its -updates / -security suites."""
    return [s for s in sources if s.suite == SUITE or s.suite.startswith(SUITE + "-")
            or s.suite.startswith(SUITE + "/")]


def deb822(sources: Sequence[AptSource]) -> str:
    """A sources file for the tree (Debian's keyring is in every Debian tree)."""
    paras = []
    for s in sources:
        paras.append(f"Types: deb\nURIs: {s.uri}\nSuites: {s.suite}\n"
                     f"Components: {' '.join(s.components) or 'main'}\n"
                     "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    return "\n".join(paras)


# -- the cached tree -----------------------------------------------------------------


def cache_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or ("/var/cache" if os.geteuid() == 0
                                         else str(Path.home() / ".cache"))
    return Path(base) / "pharosd-tests"


def recipe_key(warm: Sequence[str]) -> str:
    text = "\n".join([RECIPE_VERSION, SUITE, *INCLUDE, "--", *sorted(warm)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _run(cmd: Sequence[str | Path], log: Path, timeout: float) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(map(str, cmd))}\n".encode())
        out.flush()
        proc = subprocess.run([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT,
                              timeout=timeout, env=_clean_env())
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise TreeError(f"{cmd[0]} exited {proc.returncode} (log {log}):\n{tail}")


def _clean_env() -> dict[str, str]:
    return {"PATH": CONTAINER_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "DEBIAN_FRONTEND": "noninteractive"}


def cached_tree(warm: Sequence[str], *, log: Callable[[str], None] = print) -> Path:
    """The tree, built first if missing; ``warm``: packages to download into it."""
    override = os.environ.get("PHAROS_SYSTEMD_TREE")
    tree = Path(override) if override else cache_dir() / f"{SUITE}-{recipe_key(warm)}"
    stamp = tree / ".pharosd-tree-complete"
    if stamp.exists():
        return tree
    tree.parent.mkdir(parents=True, exist_ok=True)
    with open(tree.parent / f".{tree.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)           # another session may be building it
        if stamp.exists():
            return tree
        sources = bookworm_sources(host_sources())
        if not sources:
            raise TreeError(f"no {SUITE} entry in this host's apt sources "
                            "(/etc/apt/sources.list, /etc/apt/sources.list.d/)")
        mirror = next((s.uri for s in sources if s.suite == SUITE), sources[0].uri)
        partial = tree.with_name(tree.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        build_log = tree.with_name(tree.name + ".log")
        build_log.write_text("")
        started = time.monotonic()
        log(f"building the {SUITE} tree in {tree} (log {build_log})")
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}",
              SUITE, partial, mirror], build_log, timeout=1200)
        (partial / "etc/apt/sources.list").unlink(missing_ok=True)
        (partial / "etc/apt/sources.list.d/debian.sources").write_text(deb822(sources))
        nspawn = ["systemd-nspawn", "-q", "-D", partial, "--register=no", "--keep-unit",
                  "--pipe", "--setenv=DEBIAN_FRONTEND=noninteractive"]
        _run([*nspawn, "apt-get", "update", "-qq"], build_log, timeout=600)
        _run([*nspawn, "apt-get", "install", "-y", "-qq", "--download-only", *warm],
             build_log, timeout=1200)
        if tree.exists():
            shutil.rmtree(tree)
        partial.rename(tree)
        stamp.write_text(f"{SUITE} {' '.join(INCLUDE)}; warm: {' '.join(warm)}\n")
        log(f"built the {SUITE} tree in {time.monotonic() - started:.0f} s")
    return tree


# -- the booted container ------------------------------------------------------------


class Container:
    """A booted copy-on-write instance of ``tree``; ``stop()`` throws it away."""

    def __init__(self, tree: Path, workdir: Path, name: str) -> None:
        self.tree = tree
        self.workdir = workdir
        self.name = name
        self.root = workdir / "root"
        self.console = workdir / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0
        self._mounted = False

    def start(self, timeout: float = 60.0) -> None:
        for d in ("upper", "work", "root"):
            (self.workdir / d).mkdir(parents=True, exist_ok=True)
        opts = (f"lowerdir={self.tree},upperdir={self.workdir / 'upper'},"
                f"workdir={self.workdir / 'work'}")
        mount = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(self.root)],
                               capture_output=True, text=True)
        if mount.returncode != 0:
            raise TreeError(f"cannot mount an overlay over the cached tree: {mount.stderr}")
        self._mounted = True
        with open(self.console, "wb") as out:
            self.proc = subprocess.Popen(
                ["systemd-nspawn", "-q", "-D", str(self.root), "-b", "--console=pipe",
                 "--register=no", "--keep-unit", "-M", self.name],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=_clean_env(), start_new_session=True)
        self.pid = self._wait(self._init_pid, timeout, "the container's systemd to start")
        state = self._wait(self._booted, timeout, "systemctl is-system-running to settle")
        if state not in ("running", "degraded"):
            raise TreeError(f"the container booted {state!r}")

    def _wait(self, pred: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise TreeError(f"systemd-nspawn exited {self.proc.returncode} waiting for "
                                f"{what}:\n{self.console.read_text(errors='replace')[-3000:]}")
            value = pred()
            if value:
                return value
            time.sleep(0.1)
        raise TreeError(f"timed out waiting for {what}")

    def _init_pid(self) -> int:
        assert self.proc is not None
        children: list[str] = []
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                children += task.read_text().split()
        for child in children:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{child}/comm").read_text().strip() == "systemd":
                    return int(child)
        return 0

    def _booted(self) -> str:
        out = self.run("systemctl", "is-system-running", check=False).stdout.strip()
        # "offline": systemctl did not reach the manager yet (its socket is not up)
        return "" if out in ("initializing", "starting", "offline", "") else out

    def command(self, *cmd: str | Path, user: str | None = None) -> list[str]:
        env = [f"{k}={v}" for k, v in _clean_env().items()] + ["SYSTEMD_COLORS=0",
                                                              "SYSTEMD_PAGER=cat"]
        who = ["runuser", "-u", user, "--"] if user else []
        return ["nsenter", "-t", str(self.pid), "-a", "/usr/bin/env", "-i", *env, *who,
                *map(str, cmd)]

    def run(self, *cmd: str | Path, user: str | None = None, check: bool = True,
            input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.command(*cmd, user=user), capture_output=True, text=True,
                              input=input, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"in the container: {' '.join(map(str, cmd))} exited "
                                 f"{proc.returncode}\n--- stdout\n{proc.stdout}\n"
                                 f"--- stderr\n{proc.stderr}")
        return proc

    def write(self, path: str, text: str) -> None:
        """Write a file inside (keeps owner and mode of an existing file)."""
        self.run("sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"', "sh", path,
                 input=text)

    def read(self, path: str) -> str:
        return self.run("cat", path).stdout

    def copy_in(self, src: Path, dest: str) -> None:
        """Put a host file at ``dest`` (a path on the tree's disk, not a tmpfs)."""
        target = self.root / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # nspawn turns SIGTERM into an orderly shutdown of the container.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self._mounted:
            subprocess.run(["umount", str(self.root)], capture_output=True)
            if subprocess.run(["mountpoint", "-q", str(self.root)]).returncode == 0:
                subprocess.run(["umount", "-l", str(self.root)], capture_output=True)
            self._mounted = False
        shutil.rmtree(self.workdir, ignore_errors=True)
