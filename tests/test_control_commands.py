"""Control commands beyond status: the peer check (SO_PEERCRED) and the answers."""

from __future__ import annotations

import json
import os

from pharosd.control.client import request
from pharosd.control.protocol import Command, Peer, answer, may_change
from pharosd.errors import SilenceError
from tests.test_control import serve, sockdir  # noqa: F401  (fixtures)

OWN = 1000


def line(obj) -> bytes:
    return json.dumps(obj).encode()


def commands(seen: list) -> dict[str, Command]:
    def change(req, peer):
        seen.append(peer)
        if req.get("fail"):
            raise SilenceError("no silence 'x'")
        return {"done": req.get("id")}

    return {"silence_expire": Command(change, changes=True),
            "silence_list": Command(lambda req, peer: {"silences": []})}


def test_changes_need_root_or_the_daemons_user_reads_do_not():
    seen: list = []
    cmds = commands(seen)
    req = line({"cmd": "silence_expire", "id": "abcd"})
    for uid in (0, OWN):
        assert answer(req, dict, cmds, Peer(1, uid, 1), OWN) == {"ok": True, "done": "abcd"}
    refused = answer(req, dict, cmds, Peer(77, 4242, 4242), OWN)
    assert refused == {"ok": False, "error": "permission denied: silence_expire needs root "
                                             "or the daemon's user (uid 1000); you are uid 4242"}
    assert "unknown peer" in answer(req, dict, cmds, None, OWN)["error"]
    assert [p.uid for p in seen] == [0, OWN]          # the refused never reached the handler
    listed = answer(line({"cmd": "silence_list"}), dict, cmds, Peer(77, 4242, 4242), OWN)
    assert listed == {"ok": True, "silences": []}
    assert not may_change(Peer(1, 4242, 0), OWN) and may_change(Peer(1, 0, 0), OWN)


def test_a_handlers_error_is_the_answer_and_unknown_commands_are_named():
    cmds = commands([])
    failed = answer(line({"cmd": "silence_expire", "fail": True}), dict, cmds,
                    Peer(1, 0, 0), OWN)
    assert failed == {"ok": False, "error": "no silence 'x'"}
    unknown = answer(line({"cmd": "silence_nuke"}), dict, cmds, Peer(1, 0, 0), OWN)
    assert unknown["error"] == ("unknown cmd 'silence_nuke': expected one of 'status', "
                                "'silence_expire', 'silence_list'")


def test_the_server_reads_the_peers_credentials(serve, sockdir):  # noqa: F811
    seen: list = []
    path = os.path.join(sockdir, "control.sock")
    serve(commands=commands(seen), path=path)
    assert request(path, {"cmd": "silence_expire", "id": "ab12"}) == {"ok": True,
                                                                     "done": "ab12"}
    (peer,) = seen
    assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.geteuid(), os.getegid())


def test_status_renders_silences_held_alerts_and_open_windows():
    from pharosd.control.render import render_silences, render_status

    now = 1_700_000_000.0
    sid = "3f2a9c0e1b7d4b1c9e0a5d6f7a8b9c0d"
    state = {
        "alerts": [
            {"rule": "disk-full", "labels": {"mount": "/"}, "level": "warning",
             "status": "firing", "since": now - 60,
             "silenced_by": {"kind": "silence", "id": sid, "comment": "disk swap",
                             "until": now + 3600}},
            {"rule": "x-held", "labels": {}, "level": "critical", "status": "firing",
             "since": now - 5, "silenced_by": {"kind": "maintenance", "id": "patching",
                                               "comment": "daily 01:30 for 2h",
                                               "until": now + 60}},
            {"rule": "load-high", "labels": {}, "level": "warning", "status": "pending",
             "since": now - 5}],
        "silences": [{"id": sid, "state": "active", "matchers": "rule=disk-*",
                      "ends_at": now + 3600, "created_by": 0, "comment": "disk swap"}],
        "maintenance": [{"name": "patching", "matchers": "rule=x-*",
                         "schedule": "daily 01:30 for 2h", "opened": now - 60,
                         "closes": now + 60}],
    }
    text = render_status(state, now)
    assert f"silence {sid[:12]}: disk swap" in text
    assert "maintenance patching" in text
    assert "Silences (1)" in text and "2023-11-14T23:13:20.000Z (in 1h)" in text
    assert "Maintenance windows in effect (1)" in text and "(in 1m)" in text
    load = next(line for line in text.splitlines() if "load-high" in line)
    assert load.rstrip().endswith("-")                       # not silenced
    assert sid in render_silences(state["silences"], now)
