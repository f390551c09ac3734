"""The file probe on files this test makes."""

from __future__ import annotations

import os
from typing import Any

from pharosd.model import Sample
from pharosd.probes.config import FileProbeConfig
from pharosd.probes.factory import build_probe
from pharosd.probes.file import FileProbe
from pharosd.types import Duration, Size

NOW = 1_700_000_000.0


def probe(path: str, **kw: Any) -> FileProbe:
    cfg = FileProbeConfig(name="backup", kind="file", path=path, **kw)
    assert cfg.check() == []
    p = build_probe(cfg, 60.0)
    assert isinstance(p, FileProbe)
    return p


def run(p: FileProbe, now: float = NOW) -> dict[str, Sample]:
    return {s.metric.removeprefix("probe.backup."): s for s in p.collect(now)}


def make(path: Any, size: int, age: float) -> None:
    path.write_bytes(b"x" * size)
    os.utime(path, (NOW - age, NOW - age))


def test_one_file(tmp_path):
    f = tmp_path / "db.dump"
    make(f, 1500, age=100)
    s = run(probe(str(f)))
    assert {k: v.value for k, v in s.items()} == {
        "status": 0, "state": 0, "exists": 1, "count": 1, "age_seconds": 100,
        "size_bytes": 1500}
    assert s["status"].note == f"{f}: 1.5KiB, modified 1m40s ago"


def test_missing_file_fails():
    s = run(probe("/nonexistent/pharos/file"))
    assert s["status"].value == 2
    assert s["status"].note == "/nonexistent/pharos/file: no such file"
    assert s["exists"].value == 0 and s["count"].value == 0 and "age_seconds" not in s


def test_glob_takes_the_newest(tmp_path):
    make(tmp_path / "a.tar", 10, age=300)
    make(tmp_path / "b.tar", 20, age=30)
    make(tmp_path / "c.tar", 30, age=3000)
    make(tmp_path / "d.log", 40, age=1)
    s = run(probe(str(tmp_path / "*.tar")))
    assert s["count"].value == 3 and s["age_seconds"].value == 30 and s["size_bytes"].value == 20
    assert (s["status"].note or "").startswith(f"{tmp_path / 'b.tar'} (3 files): ")
    s = run(probe(str(tmp_path / "*.none")))
    assert s["status"].value == 2 and (s["status"].note or "").endswith(": no file matches")


def test_stale_and_small_files_fail(tmp_path):
    f = tmp_path / "app.log"
    make(f, 100, age=7200)
    s = run(probe(str(f), max_age=Duration(3600)))
    assert s["status"].value == 2
    assert s["status"].note == f"{f}: modified 2h ago, more than 1h"
    s = run(probe(str(f), max_age=Duration(3600), level="warning"), now=NOW - 7000)
    assert s["status"].value == 0 and s["age_seconds"].value == 200
    s = run(probe(str(f), min_size=Size(1024), level="warning"))
    assert s["status"].value == 1 and s["status"].note == f"{f}: 100B, less than 1KiB"


def test_future_mtime_gives_a_negative_age(tmp_path):
    f = tmp_path / "future"
    make(f, 1, age=-60)
    s = run(probe(str(f), max_age=Duration(10)))
    assert s["status"].value == 0 and s["age_seconds"].value == -60


def test_path_that_cannot_be_examined_is_unknown(tmp_path):
    f = tmp_path / "plain"
    f.write_text("x")
    s = run(probe(str(f / "below-a-file")))
    assert s["status"].value == 3
    assert (s["status"].note or "").startswith(f"check failed: {f / 'below-a-file'}: ")


def test_config_checks():
    bad = FileProbeConfig(name="f", kind="file", path="relative", max_age=Duration(0))
    assert sorted(f for f, _ in bad.check()) == ["max_age", "path"]
