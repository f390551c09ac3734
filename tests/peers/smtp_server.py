"""A recording SMTP server on 127.0.0.1 over Debian's aiosmtpd (run with /usr/bin/python3).

Not imported by the tests: ``peers.smtp.Smtpd`` runs it as a subprocess. Every
accepted message is written to ``DIR/NNNN.json`` (envelope sender and
recipients, whether the session used TLS, the AUTH login, the raw message)
after it is complete, through a rename, so a reader never sees half a file.

Options: ``--tls CERT KEY`` offers STARTTLS (``--smtps``: TLS from the first
byte instead), ``--auth LOGIN PASSWORD`` requires AUTH (only over TLS),
``--rcpt-reply 'CODE TEXT' ADDR`` refuses one recipient with that reply,
``--data-reply 'CODE TEXT'`` answers the end of DATA with that reply for the
first ``--data-fail N`` messages (default: all). Prints ``READY PORT`` when
it serves.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Recorder:
    def __init__(self, out: str, rcpt_reply: tuple[str, str] | None,
                 data_reply: str | None, data_fail: int) -> None:
        self.out = out
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.data_fail = data_fail
        self.count = 0
        self.refused_data = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply is not None and address == self.rcpt_reply[1]:
            return self.rcpt_reply[0]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply is not None and (self.data_fail < 0
                                            or self.refused_data < self.data_fail):
            self.refused_data += 1
            return self.data_reply
        self.count += 1
        login = session.auth_data.login.decode() if session.authenticated else None
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "tls": (session.ssl is not None
                    or server.transport.get_extra_info("ssl_object") is not None),
            "login": login,
            "content": envelope.original_content.decode("utf-8", "replace"),
        }
        path = os.path.join(self.out, f"{self.count:04d}.json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 Message accepted for delivery"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--smtps", action="store_true")
    p.add_argument("--auth", nargs=2, metavar=("LOGIN", "PASSWORD"))
    p.add_argument("--rcpt-reply", nargs=2, metavar=("REPLY", "ADDRESS"))
    p.add_argument("--data-reply")
    p.add_argument("--data-fail", type=int, default=-1)
    a = p.parse_args()

    kwargs = {}
    if a.tls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.tls[0], a.tls[1])
        kwargs["ssl_context" if a.smtps else "tls_context"] = ctx
    if a.auth:
        login, password = a.auth[0].encode(), a.auth[1].encode()

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == login and auth_data.password == password
            # handled=False: aiosmtpd answers a failure with 535 itself
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        kwargs["authenticator"] = authenticator
        kwargs["auth_required"] = True
        # with --smtps the whole connection is TLS, which aiosmtpd does not see
        kwargs["auth_require_tls"] = not a.smtps
    handler = Recorder(a.dir, tuple(a.rcpt_reply) if a.rcpt_reply else None, a.data_reply,
                       a.data_fail)
    controller = Controller(handler, hostname="127.0.0.1", port=a.port,
                            server_hostname="smtp.test", **kwargs)
    controller.start()
    print(f"READY {a.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
