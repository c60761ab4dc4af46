"""Hostile input to every surface: refused with -32602 naming the parameter; nothing is lost,
nothing is left behind, and the daemon keeps serving."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.helpers import Daemon, raw_exchange
from tests.tmpfs import small_tmpfs

HOSTILE = [
    ("templates.create", {"template": "console_app", "name": "a.b",
                          "display_name": "\\ud800"}, "display_name", "lone surrogate"),
    ("templates.create", {"template": "console_app", "name": "a.b",
                          "display_name": "x\\u007fy"}, "display_name", "control character"),
    ("templates.create", {"template": "console_app", "name": "a.b",
                          "version": "1\\u0000"}, "version", "control character"),
    ("templates.create", {"template": "console_app", "name": "a.b",
                          "display_name": "new\\nline"}, "display_name", "control character"),
    ("templates.create", {"template": "console_\\udfffapp", "name": "a.b"}, "template",
     "lone surrogate"),
    ("launch", {"app": "a.b", "args": ["ok", "\\u009b"]}, "args", "control character"),
    ("jobs.get", {"job_id": "\\udc80"}, "job_id", "lone surrogate"),
    ("build", {"workspace": "/" + "w" * 100_000}, "workspace", "too long"),
    ("build", {"workspace": "/tmp/" + "w" * 300}, "workspace", "too long"),
]


def _raw_request(method: str, params_json: str) -> bytes:
    # Written by hand: json.dumps cannot produce a lone surrogate escape from a str we mean.
    return (f'{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params_json}}}\n'
            ).encode()


@pytest.mark.parametrize(("method", "params", "param", "why"), HOSTILE,
                         ids=[f"{m}-{p}-{w}" for m, _, p, w in HOSTILE])
def test_hostile_strings_are_refused_naming_the_param(daemon: Daemon, method: str,
                                                      params: dict[str, Any], param: str,
                                                      why: str) -> None:
    text = json.dumps(params).replace("\\\\u", "\\u").replace("\\\\n", "\\n")
    [reply] = raw_exchange(daemon.socket, _raw_request(method, text))
    err = reply["error"]
    assert err["code"] == -32602, err
    assert err["data"]["param"] == param and why in err["message"], err
    # Nothing left behind; the daemon serves on.
    apps = daemon.workspace / "source" / "apps"
    assert not apps.exists() or [p.name for p in apps.iterdir()] == []
    assert daemon.call("daemon.status")["pid"] > 0


def test_hostile_strings_over_rest(bridge: Bridge) -> None:
    body = b'{"template": "console_app", "name": "a.b", "display_name": "\\ud800"}'
    r = bridge.http.post("/api/templates/create", content=body,
                         headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["data"]["param"] == "display_name"
    r = bridge.get("/api/jobs/x%7Fy")
    assert r.status_code == 400 and r.json()["error"]["data"]["param"] == "job_id"


def test_a_create_that_fails_midway_leaves_nothing_behind(make_daemon: Any) -> None:
    """The workspace's disk fills while the files are written: no half app, no staging dir."""
    d = make_daemon()
    ws = d.base / "small"
    with small_tmpfs(ws, "12k"):
        d.workspace = ws
        d.start()
        job = d.call("templates.create", {"template": "console_app", "name": "my.full",
                                          "workspace": str(ws)})["job"]
        done = d.wait_job(job["id"])
        assert done["status"] == "failed", done
        apps = ws / "source" / "apps"
        assert [p.name for p in apps.iterdir()] == []  # no my.full, no .my.full.creating
        assert d.call("daemon.status")["pid"] > 0
        d.stop()
