"""The email sink: the message it composes, its config errors, and delivery to a real
SMTP server (Debian's aiosmtpd on 127.0.0.1): plain, STARTTLS with AUTH, SMTPS, and
the SMTP replies that are retried (4xx, connection and TLS trouble) or permanent (5xx).
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
import trustme
from peers import free_port
from peers.smtp import Smtpd

from pharosd.config.loader import parse_config
from pharosd.errors import ConfigError, DeliveryError, PermanentDeliveryError
from pharosd.model import AlertEvent, fingerprint, labels_of
from pharosd.sinks.config import EmailSinkConfig
from pharosd.sinks.email import EmailSink, classify_smtp_error, compose, render_subject
from pharosd.sinks.factory import build_sink

pytestmark = pytest.mark.timeout(120)

PASSWORD = "s3cret-Pa55"
T0 = 1_700_000_000.0


def event(status: str = "firing", **kw: object) -> AlertEvent:
    labels = labels_of(mount="/srv", device="sda1")
    base: dict[str, object] = dict(
        status=status, rule="srv-full", level="critical", metric="disk.used_percent",
        labels=labels, value=93.25, limit=90.0, op="above", host="web-01",
        started_at=T0, at=T0 + 60, summary="disk /srv used 93.2% > 90%",
        fingerprint=fingerprint("srv-full", labels), id="e1d2c3")
    base.update(kw)
    return AlertEvent(**base)  # type: ignore[arg-type]


# -- composing (pure) ---------------------------------------------------------------


def test_compose_headers_and_body() -> None:
    msg = compose(event(previous_level="warning"), "pharos@web-01.example",
                  ["ops@example.org", "root"])
    assert msg["From"] == "pharos@web-01.example"
    assert msg["To"] == "ops@example.org, root"
    assert msg["Subject"] == "[critical] srv-full firing on web-01"
    assert msg["Message-ID"] == "<e1d2c3@web-01>"
    assert msg["Date"] == "Tue, 14 Nov 2023 22:14:20 +0000"     # the event's `at`
    assert msg["Auto-Submitted"] == "auto-generated"
    assert (msg["X-Pharos-Status"], msg["X-Pharos-Level"], msg["X-Pharos-Rule"]) == \
        ("firing", "critical", "srv-full")
    assert msg["X-Pharos-Fingerprint"] == event().fingerprint
    assert msg.get_content_type() == "text/plain"
    body = msg.get_content()
    assert body.startswith("disk /srv used 93.2% > 90%\n\n")
    for line in ("status:      firing", "level:       critical (was warning)",
                 "host:        web-01", "metric:      disk.used_percent",
                 'labels:      device="sda1", mount="/srv"', "value:       93.25",
                 "limit:       > 90 (above)", "started_at:  2023-11-14T22:13:20.000Z",
                 "at:          2023-11-14T22:14:20.000Z", "event id:    e1d2c3"):
        assert line in body.splitlines(), line


def test_subject_template_labels_fallback_and_one_line() -> None:
    ev = event(rule="a\r\nBcc: x@evil", summary="two\nlines")
    assert render_subject("{status}: {summary} ({mount})", ev) == "firing: two lines (/srv)"
    # a label the event lacks: the default subject, never an exception
    assert render_subject("{nope}", ev) == "[critical] a Bcc: x@evil firing on web-01"
    assert len(render_subject("{summary}" * 100, event(summary="x" * 50))) == 200
    # header injection is impossible: one line whatever the rule holds
    msg = compose(ev, "p@h", ["o@h"])
    assert "\n" not in msg["Subject"] and msg["Bcc"] is None


def test_classify_smtp_errors() -> None:
    w = "SMTP h:25"
    assert type(classify_smtp_error(smtplib.SMTPDataError(451, b"try later"), w)) \
        is DeliveryError
    e = classify_smtp_error(smtplib.SMTPDataError(554, b"5.7.1 spam"), w)
    assert isinstance(e, PermanentDeliveryError) and "554 5.7.1 spam" in str(e)
    assert isinstance(classify_smtp_error(smtplib.SMTPAuthenticationError(535, b"no"), w),
                      PermanentDeliveryError)
    mixed = smtplib.SMTPRecipientsRefused({"a@x": (550, b"no"), "b@x": (452, b"full")})
    assert type(classify_smtp_error(mixed, w)) is DeliveryError
    assert type(classify_smtp_error(ConnectionRefusedError(111, "Connection refused"), w)) \
        is DeliveryError
    assert type(classify_smtp_error(smtplib.SMTPServerDisconnected("gone"), w)) \
        is DeliveryError
    assert str(classify_smtp_error(TimeoutError(), w)) == "SMTP h:25: timed out"


# -- config ---------------------------------------------------------------------------


def sink_yaml(body: str) -> str:
    return f"sinks:\n  - name: mail\n    kind: email\n{body}"


def test_config_keys_and_defaults() -> None:
    cfg = parse_config(sink_yaml("    from: pharos@h.example\n    to: [ops@example.org]\n"),
                       "p.yaml", {})
    (mail,) = cfg.sinks
    assert isinstance(mail, EmailSinkConfig)
    assert (mail.sender, mail.to, mail.host, mail.resolved_port(), mail.starttls,
            mail.ssl) == ("pharos@h.example", ("ops@example.org",), "localhost", 25,
                          "auto", False)
    assert EmailSinkConfig(name="m", kind="email", sender="a", to=("b",),
                           ssl=True).resolved_port() == 465


@pytest.mark.parametrize(("body", "where", "message"), [
    ("    from: a@h\n    to: []\n", "p.yaml:5:9: sinks[0].to", "at least one recipient"),
    ("    from: a@h\n    to: [b@h]\n    starttls: maybe\n", "p.yaml:6:15: sinks[0].starttls",
     "'maybe'"),
    ("    from: a@h\n    to: [b@h]\n    ssl: true\n    starttls: always\n",
     "p.yaml:7:15: sinks[0].starttls", "with ssl: true"),
    ("    from: 'Ops <a@h>'\n    to: [b@h]\n", "p.yaml:4:11: sinks[0].from",
     "expected a mail address"),
    ("    from: a@h\n    to: [b@h, 'c@h, d@h']\n", "p.yaml:5:15: sinks[0].to[1]",
     "expected a mail address"),
    ("    from: a@h\n    to: [b@h]\n    password: x\n", "sinks[0].username",
     "expected a username"),
    ("    from: a@h\n    to: [b@h]\n    subject: '{rule.__class__}'\n",
     "p.yaml:6:14: sinks[0].subject", "plain {name} placeholders"),
    ("    from: a@h\n    to: [b@h]\n    subject: '{rule'\n", "sinks[0].subject",
     "expected a template"),
    ("    to: [b@h]\n", "sinks[0]", "missing required key 'from'"),
    ("    from: a@h\n    to: [b@h]\n    frm: x\n", "sinks[0]", "frm"),
])
def test_bad_config_is_positioned(body: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(sink_yaml(body), "p.yaml", {})
    text = str(e.value)
    assert where in text and message in text, text


# -- a real SMTP server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    return {"cert": str(d / "cert.pem"), "key": str(d / "key.pem"), "ca": str(d / "ca.pem")}


def _server(tmp_path_factory: pytest.TempPathFactory, name: str,
            *options: str) -> Iterator[Smtpd]:
    server = Smtpd(tmp_path_factory.mktemp(name), *options)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Smtpd]:
    """No TLS, no AUTH; bad@example.org is refused (550), busy@example.org deferred (450)."""
    yield from _server(tmp_path_factory, "plain",
                       "--rcpt-reply", "550 5.1.1 no such user", "bad@example.org")


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Smtpd]:
    yield from _server(tmp_path_factory, "busy",
                       "--rcpt-reply", "450 4.2.1 mailbox busy", "busy@example.org")


@pytest.fixture(scope="module")
def starttls(tmp_path_factory: pytest.TempPathFactory, certs: dict[str, str]) -> Iterator[Smtpd]:
    """STARTTLS offered, AUTH required (and offered only after STARTTLS)."""
    yield from _server(tmp_path_factory, "starttls", "--tls", certs["cert"], certs["key"],
                       "--auth", "pharos", PASSWORD)


def sink(server: Smtpd, **kw: object) -> EmailSink:
    args: dict[str, object] = dict(sender="pharos@web-01.example", to=["ops@example.org"],
                                   host="127.0.0.1", port=server.port, timeout=10.0)
    args.update(kw)
    return EmailSink("mail", **args)  # type: ignore[arg-type]


def test_plain_delivery_headers_and_body(plain: Smtpd) -> None:
    before = len(plain.records())
    ev = event()
    sink(plain, to=["ops@example.org", "root@example.org"], starttls="auto").deliver(ev)
    record = plain.records()[before]
    assert record["mail_from"] == "pharos@web-01.example"
    assert record["rcpt_tos"] == ["ops@example.org", "root@example.org"]
    assert record["tls"] is False and record["login"] is None
    msg = plain.messages()[before]
    assert msg["Subject"] == "[critical] srv-full firing on web-01"
    assert msg["Message-ID"] == "<e1d2c3@web-01>"
    assert msg["To"] == "ops@example.org, root@example.org"
    body = msg.get_content()
    assert body.startswith(ev.summary + "\n")
    assert "value:       93.25" in body and "limit:       > 90 (above)" in body


def test_refused_recipients(plain: Smtpd, busy: Smtpd) -> None:
    before = len(plain.records())
    with structlog.testing.capture_logs() as logs:
        sink(plain, to=["bad@example.org", "ops@example.org"]).deliver(event())
    # the mail went to ops; bad is logged, not retried (that would mail ops twice)
    assert plain.records()[before]["rcpt_tos"] == ["ops@example.org"]
    (entry,) = [e for e in logs if e["event"] == "email_recipients_refused"]
    assert entry["refused"] == {"bad@example.org": "550 5.1.1 no such user"}
    with pytest.raises(PermanentDeliveryError, match=r"550 5\.1\.1 no such user"):
        sink(plain, to=["bad@example.org"]).deliver(event())
    with pytest.raises(DeliveryError, match=r"450 4\.2\.1 mailbox busy") as e:
        sink(busy, to=["busy@example.org"]).deliver(event())
    assert type(e.value) is DeliveryError
    assert len(plain.records()) == before + 1


def test_starttls_always_without_tls_and_no_server_are_retried(plain: Smtpd) -> None:
    with pytest.raises(DeliveryError, match="does not offer STARTTLS") as e:
        sink(plain, starttls="always").deliver(event())
    assert type(e.value) is DeliveryError
    with pytest.raises(DeliveryError, match="Connection refused") as e:
        sink(plain, port=free_port()).deliver(event())
    assert type(e.value) is DeliveryError


def test_starttls_with_auth(starttls: Smtpd, certs: dict[str, str]) -> None:
    for mode in ("auto", "always"):
        sink(starttls, starttls=mode, ca_file=certs["ca"], username="pharos",
             password=PASSWORD).deliver(event(id=f"tls-{mode}"))
    records = starttls.records()
    assert [(r["tls"], r["login"]) for r in records[-2:]] == [(True, "pharos")] * 2
    assert [m["Message-ID"] for m in starttls.messages()[-2:]] == \
        ["<tls-auto@web-01>", "<tls-always@web-01>"]


def test_starttls_failures(starttls: Smtpd, certs: dict[str, str]) -> None:
    before = len(starttls.records())
    # wrong password: 535, permanent; the password never shows
    with pytest.raises(PermanentDeliveryError, match="535") as e:
        sink(starttls, ca_file=certs["ca"], username="pharos", password="wrong-pass").deliver(
            event())
    assert "wrong-pass" not in str(e.value)
    # a certificate the system CAs do not know: retried (the operator can fix it)
    with pytest.raises(DeliveryError, match="certificate") as e:
        sink(starttls, username="pharos", password=PASSWORD).deliver(event())
    assert type(e.value) is DeliveryError
    # insecure: accepted without verification
    sink(starttls, insecure=True, username="pharos", password=PASSWORD).deliver(event())
    # never: no TLS, and the server offers no AUTH in clear text: retried
    with pytest.raises(DeliveryError) as e:
        sink(starttls, starttls="never", username="pharos", password=PASSWORD).deliver(event())
    assert type(e.value) is DeliveryError and PASSWORD not in str(e.value)
    assert len(starttls.records()) == before + 1


def test_smtps_through_the_factory(tmp_path_factory: pytest.TempPathFactory,
                                   certs: dict[str, str], tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    for server in _server(tmp_path_factory, "smtps", "--smtps", "--tls", certs["cert"],
                          certs["key"], "--auth", "pharos", PASSWORD):
        cfg = parse_config(sink_yaml(
            f"    from: pharos@h.example\n    to: [ops@example.org]\n    host: 127.0.0.1\n"
            f"    port: {server.port}\n    ssl: true\n    username: pharos\n"
            f"    password_file: {secret}\n    ca_file: {certs['ca']}\n"
            f"    subject: '{{host}}: {{rule}} is {{status}} ({{mount}})'\n"), "p.yaml", {})
        built = build_sink(cfg.sinks[0], state_dir=str(tmp_path), host="h")
        built.deliver(event(status="resolved"))
        (record,) = server.records()
        assert (record["tls"], record["login"]) == (True, "pharos")
        assert server.messages()[0]["Subject"] == "web-01: srv-full is resolved (/srv)"


def test_data_rejection_4xx_then_5xx(tmp_path_factory: pytest.TempPathFactory) -> None:
    for server in _server(tmp_path_factory, "later", "--data-reply", "451 4.3.0 try later",
                          "--data-fail", "1"):
        with pytest.raises(DeliveryError, match=r"451 4\.3\.0 try later") as e:
            sink(server).deliver(event())
        assert type(e.value) is DeliveryError
        sink(server).deliver(event())          # the retry goes through
        assert len(server.records()) == 1
    for server in _server(tmp_path_factory, "spam", "--data-reply", "554 5.7.1 spam"):
        with pytest.raises(PermanentDeliveryError, match=r"554 5\.7\.1 spam"):
            sink(server).deliver(event())
        assert server.records() == []
