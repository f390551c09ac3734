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
