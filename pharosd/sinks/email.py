"""The email sink: one plain-text mail per alert event, over SMTP (stdlib ``smtplib``).

``compose`` is pure: the event becomes an ``EmailMessage`` with ``From``,
``To``, ``Subject`` (the ``subject`` template), ``Date`` (the event's time),
a ``Message-ID`` made of the event id (the same on every retry, so a
receiver can de-duplicate), ``Auto-Submitted: auto-generated`` (RFC 3834:
no vacation replies) and ``X-Pharos-*`` headers to filter on; the body lists
the summary, status, rule, level, host, metric, labels, value, limit and
times.

``EmailSink.deliver`` opens one connection per event: SMTPS when ``ssl``,
else plain SMTP upgraded with STARTTLS per ``starttls`` (``auto``: when the
server offers it; ``always``: or fail; ``never``), the certificate verified
against ``ca_file`` or the system CAs unless ``insecure``; then AUTH when a
username is set. How a failure is classified (``classify_smtp_error``):

* an SMTP reply 4xx (and a refused STARTTLS, a missing extension, a TLS or
  connection error, a timeout): ``DeliveryError``, the outbox retries;
* an SMTP reply 5xx (a refused sender, every recipient refused, the message
  refused, bad credentials): ``PermanentDeliveryError``.

When only some recipients are refused the mail went to the others: the event
counts as delivered (a retry would mail them twice) and the refused ones are
logged (``email_recipients_refused``). Messages never contain the password.
"""

from __future__ import annotations

import email.utils
import math
import smtplib
import socket
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage

import structlog

from pharosd.errors import DeliveryError, PermanentDeliveryError, describe_error
from pharosd.model import AlertEvent, Labels, rfc3339
from pharosd.redact import scrub

log = structlog.get_logger(__name__)

DEFAULT_SUBJECT = "[{level}] {rule} {status} on {host}"
SUBJECT_MAX = 200
REPLY_EXCERPT = 200
PLACEHOLDERS = ("status", "rule", "level", "previous_level", "host", "metric", "labels",
                "value", "limit", "op", "summary", "fingerprint", "id", "started_at", "at")
"""Subject placeholders besides the event's label names (which lose to these)."""

_OPS = {"above": ">", "below": "<"}


def format_number(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "-" if v is None else str(v)
    return f"{v:.6g}"


def format_labels(labels: Labels) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in labels) or "(none)"


def _fields(event: AlertEvent) -> dict[str, str]:
    values = {k: v for k, v in event.labels}
    values.update(
        status=event.status, rule=event.rule, level=event.level,
        previous_level=event.previous_level or "", host=event.host, metric=event.metric,
        labels=format_labels(event.labels), value=format_number(event.value),
        limit=format_number(event.limit), op=event.op, summary=event.summary,
        fingerprint=event.fingerprint, id=event.id, started_at=rfc3339(event.started_at),
        at=rfc3339(event.at))
    return values


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_subject(template: str, event: AlertEvent) -> str:
    """The subject on one line, at most ``SUBJECT_MAX`` characters; a template that
    fails (a label this event lacks) falls back to the default subject."""
    values = _fields(event)
    try:
        text = template.format_map(values)
    except (KeyError, ValueError, IndexError, AttributeError):
        text = DEFAULT_SUBJECT.format_map(values)
    text = _one_line(text) or _one_line(DEFAULT_SUBJECT.format_map(values))
    if len(text) > SUBJECT_MAX:
        text = text[:SUBJECT_MAX - 3] + "..."
    return text


def render_body(event: AlertEvent) -> str:
    level: str = event.level
    if event.previous_level:
        level = f"{event.level} (was {event.previous_level})"
    limit = format_number(event.limit)
    if event.limit is not None:
        limit = f"{_OPS.get(event.op, event.op)} {limit} ({event.op})"
    rows = [
        ("status", event.status), ("rule", event.rule), ("level", level),
        ("host", event.host), ("metric", event.metric),
        ("labels", format_labels(event.labels)), ("value", format_number(event.value)),
        ("limit", limit), ("started_at", rfc3339(event.started_at)),
        ("at", rfc3339(event.at)), ("fingerprint", event.fingerprint), ("event id", event.id),
    ]
    lines = [event.summary, ""] + [f"{k + ':':<13}{v}" for k, v in rows]
    lines += ["", "-- ", f"pharosd on {event.host}"]
    return "\n".join(lines) + "\n"


def compose(event: AlertEvent, sender: str, to: Sequence[str],
            subject: str = DEFAULT_SUBJECT) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = render_subject(subject, event)
    msg["Date"] = email.utils.formatdate(event.at, usegmt=True)
    domain = event.host if event.host.replace("-", "").replace(".", "").isalnum() else "pharosd"
    msg["Message-ID"] = f"<{event.id}@{domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Pharos-Event-Id"] = event.id
    msg["X-Pharos-Fingerprint"] = event.fingerprint
    msg["X-Pharos-Status"] = event.status
    msg["X-Pharos-Level"] = event.level
    msg["X-Pharos-Rule"] = _one_line(event.rule)
    msg.set_content(render_body(event), charset="utf-8")
    return msg


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {_one_line(text)[:REPLY_EXCERPT]}"


def classify_smtp_error(e: BaseException, where: str) -> DeliveryError:
    """The ``DeliveryError`` (retry) or ``PermanentDeliveryError`` for ``e``."""
    if isinstance(e, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in e.recipients.values()]
        detail = "; ".join(f"{rcpt}: {_reply(code, text)}"
                           for rcpt, (code, text) in sorted(e.recipients.items()))
        message = f"{where}: every recipient refused: {detail}"
        if any(400 <= c < 500 for c in codes):
            return DeliveryError(message)
        return PermanentDeliveryError(message)
    if isinstance(e, smtplib.SMTPResponseException):
        message = f"{where}: {type(e).__name__}: {_reply(e.smtp_code, e.smtp_error)}"
        if 500 <= e.smtp_code < 600:
            return PermanentDeliveryError(message)
        return DeliveryError(message)
    if isinstance(e, ssl.SSLCertVerificationError):
        return DeliveryError(f"{where}: TLS certificate not accepted: {e.verify_message}")
    if isinstance(e, socket.timeout | TimeoutError):
        return DeliveryError(f"{where}: timed out")
    if isinstance(e, OSError):
        reason = e.strerror or str(e) or type(e).__name__
        return DeliveryError(f"{where}: {type(e).__name__}: {reason}")
    return DeliveryError(f"{where}: {describe_error(e)}")


class EmailSink:
    def __init__(self, name: str, *, sender: str, to: Sequence[str], host: str = "localhost",
                 port: int = 25, starttls: str = "auto", use_ssl: bool = False,
                 username: str | None = None, password: str | None = None,
                 subject: str = DEFAULT_SUBJECT, ca_file: str | None = None,
                 insecure: bool = False, timeout: float = 30.0,
                 local_hostname: str | None = None) -> None:
        self.name = name
        self.sender = sender
        self.to = tuple(to)
        self.host = host
        self.port = port
        self.starttls = starttls
        self.use_ssl = use_ssl
        self.username = username
        self.subject = subject
        self.timeout = timeout
        # connect, EHLO, STARTTLS, EHLO, AUTH, MAIL, RCPT..., DATA, QUIT: each bounded
        self.blocking_timeout = timeout * (8 + len(self.to)) + 1.0
        self._password = password
        self._local_hostname = local_hostname
        self._ca_file = ca_file
        self._insecure = insecure
        self._where = f"SMTP {host}:{port}"

    def _tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self._ca_file)
        if self._insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _connect(self) -> smtplib.SMTP:
        if self.use_ssl:
            return smtplib.SMTP_SSL(self.host, self.port, local_hostname=self._local_hostname,
                                    timeout=self.timeout, context=self._tls_context())
        return smtplib.SMTP(self.host, self.port, local_hostname=self._local_hostname,
                            timeout=self.timeout)

    def _session(self, smtp: smtplib.SMTP, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
        smtp.ehlo()
        if not self.use_ssl and self.starttls != "never":
            if smtp.has_extn("starttls"):
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
            elif self.starttls == "always":
                raise DeliveryError(f"{self._where}: the server does not offer STARTTLS "
                                    "(starttls: always)")
        if self.username is not None:
            smtp.login(self.username, self._password or "")
        return smtp.send_message(msg, from_addr=self.sender, to_addrs=list(self.to))

    def deliver(self, event: AlertEvent) -> None:
        msg = compose(event, self.sender, self.to, self.subject)
        secrets = [self._password or ""]
        try:
            smtp = self._connect()
        except (OSError, smtplib.SMTPException) as e:
            raise _scrubbed(classify_smtp_error(e, self._where), secrets) from None
        try:
            refused = self._session(smtp, msg)
        except DeliveryError:
            raise
        except (OSError, smtplib.SMTPException) as e:
            raise _scrubbed(classify_smtp_error(e, self._where), secrets) from None
        finally:
            _quit(smtp)
        if refused:
            log.error("email_recipients_refused", sink=self.name, event_id=event.id,
                      refused={r: _reply(c, t) for r, (c, t) in _sorted(refused)})

    def reopen(self) -> None:
        pass

    def close(self) -> None:
        pass


def _sorted(refused: Mapping[str, tuple[int, bytes]]) -> list[tuple[str, tuple[int, bytes]]]:
    return sorted(refused.items())


def _scrubbed(e: DeliveryError, secrets: list[str]) -> DeliveryError:
    return type(e)(scrub(str(e), secrets), retry_after=e.retry_after)


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()
