"""The small shared leaves: URL redaction, secret files, describe_error, the SQLite opener."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from pharosd.errors import ConfigError, PharosError, describe_error
from pharosd.redact import redact_url, scrub
from pharosd.secretfile import read_secret_file
from pharosd.sqlitedb import open_sqlite


@pytest.mark.parametrize(("url", "safe"), [
    ("https://metrics.example/api/v1/write", "https://metrics.example/api/v1/write"),
    ("https://user:s3cret@metrics.example:8443/w", "https://***@metrics.example:8443/w"),
    ("https://ghp_tok3n@metrics.example/w", "https://***@metrics.example/w"),
    ("http://h/w?token=s3cret", "http://h/w?token=***"),
    ("http://h/w?a=1&api_key=s3cret&flag", "http://h/w?a=***&api_key=***&flag=***"),
    ("http://h/w?s3cret", "http://h/w?s3cret=***"),
    ("http://[::1]:9090/w#frag", "http://[::1]:9090/w"),
    ("http://h:notaport/w?token=s3cret", "***"),
])
def test_redact_url_keeps_where_and_masks_credentials(url: str, safe: str) -> None:
    assert redact_url(url) == safe


def test_no_query_value_or_password_survives_redaction() -> None:
    url = "https://alice:pa55word@h.example/p/x?token=t0ken&sig=s1g%3D&x=v4lue"
    out = redact_url(url)
    for secret in ("pa55word", "alice", "t0ken", "s1g", "v4lue"):
        assert secret not in out
    assert out.startswith("https://***@h.example/p/x?")


def test_scrub_replaces_known_secrets_of_three_characters_or_more() -> None:
    assert scrub("Bearer abcdef failed, ab", ["abcdef", "ab", ""]) == "Bearer *** failed, ab"


def test_a_secret_file_is_read_and_stripped(tmp_path: Path) -> None:
    f = tmp_path / "pw"
    f.write_bytes(b" s3cret \r\n")
    assert read_secret_file(str(f), "x.password_file") == "s3cret"


def test_an_unreadable_or_undecodable_secret_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read_secret_file(str(tmp_path / "missing"), "sinks[w].token_file")
    assert isinstance(info.value, PharosError)
    text = str(info.value)
    assert "sinks[w].token_file" in text and "No such file" in text
    bad = tmp_path / "bin"
    bad.write_bytes(b"s3cret\xff\xfe")
    with pytest.raises(ConfigError) as info:
        read_secret_file(str(bad), "k")
    assert "not UTF-8" in str(info.value) and "s3cret" not in str(info.value)


def test_describe_error_is_never_empty() -> None:
    assert describe_error(ValueError("bad")) == "ValueError: bad"
    assert describe_error(TimeoutError()) == "TimeoutError"


def test_open_sqlite_sets_wal_sync_timeout_and_modes(tmp_path: Path) -> None:
    path = tmp_path / "d" / "x.db"
    db = open_sqlite(str(path), busy_timeout=7.0, synchronous="NORMAL")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1        # NORMAL
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 7000
        db.execute("CREATE TABLE t (x)")
    finally:
        db.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(path.parent).st_mode) & 0o007 == 0


def test_open_sqlite_tightens_an_existing_file_and_runs_first_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    path.touch(mode=0o666)
    os.chmod(path, 0o666)
    db = open_sqlite(str(path), first=("PRAGMA auto_vacuum=INCREMENTAL",))
    try:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2        # FULL
    finally:
        db.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_open_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(b"this is not a database file at all, not even close" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        open_sqlite(str(path))
