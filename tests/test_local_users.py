"""Another local user attacks (issue 10): each attack is refused, by the real daemon and bridge.

The attacker is a real second user made by ``useradd`` (tests/local_user.py); their code runs
under ``setpriv`` with their uid and gid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.helpers import Daemon, short_tmpdir, write_app
from tests.local_user import Attacker, attacker_fixture  # noqa: F401

MARKER_CODE = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text('ran')"


def _marker_app(workspace: Path, name: str, marker: Path) -> Path:
    return write_app(workspace, name, launch=["{python}", "-c", MARKER_CODE, str(marker)])


def _refused(d: Daemon, params: dict[str, Any], method: str = "launch") -> dict[str, Any]:
    from daemon.protocol.errors import KitplayError

    with pytest.raises(KitplayError) as e:
        d.call(method, params)
    assert e.value.code == -32602, e.value.message
    assert e.value.data["reason"] == "untrusted"
    return {"message": e.value.message, **e.value.data}


def test_workspace_of_another_user_is_refused_everywhere(daemon: Daemon, attacker: Attacker,
                                                         bridge: Bridge) -> None:
    base = short_tmpdir("kpws")
    try:
        evil = base / "evil"
        marker = base / "ran"
        _marker_app(evil, "evil.app", marker)
        os.chmod(base, 0o755)
        shutil.chown(evil, attacker.name, attacker.name)
        for p in evil.rglob("*"):
            shutil.chown(p, attacker.name, attacker.name)
        ws = str(evil)
        err = _refused(daemon, {"app": "evil.app", "workspace": ws})
        assert "another user" in err["message"] and attacker.name in err["message"]
        for method, params in (("build", {"app": "evil.app"}), ("apps.list", {}),
                               ("templates.list", {}),
                               ("templates.create", {"template": "console_app",
                                                     "name": "a.b"})):
            _refused(daemon, {**params, "workspace": ws}, method)
        r = bridge.post("/api/launch", {"app": "evil.app", "workspace": ws})
        assert r.status_code == 400 and r.json()["error"]["data"]["reason"] == "untrusted"
        assert not marker.exists()
        assert not (evil / "source" / "apps" / "a.b").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_workspace_writable_by_others_is_refused_until_fixed(daemon: Daemon,
                                                             attacker: Attacker) -> None:
    marker = daemon.base / "ran"
    app = _marker_app(daemon.workspace, "loose.app", marker)
    ws = daemon.workspace
    for path, mode in ((ws, 0o777), (ws, 0o775), (app, 0o757), (app / "kitapp.toml", 0o666),
                       (ws / "source", 0o770)):
        before = path.stat().st_mode
        os.chmod(path, mode)
        if mode & 0o020:  # group-writable: refused only when the group is not private
            os.chown(path, -1, attacker.gid)
        try:
            err = _refused(daemon, {"app": "loose.app"})
            assert str(path) in err["message"] and "chmod go-w" in err["message"]
        finally:
            os.chmod(path, before)
            os.chown(path, -1, os.getgid())
    # A file planted by the other user inside the user's own workspace is refused too.
    shutil.chown(app / "kitapp.toml", attacker.name)
    _refused(daemon, {"app": "loose.app"})
    shutil.chown(app / "kitapp.toml", "root")
    job = daemon.call("launch", {"app": "loose.app"})["job"]
    assert daemon.wait_job(job["id"])["status"] == "succeeded"
    assert marker.read_text() == "ran"


def test_symlinked_kitapp_toml_to_a_foreign_file_is_refused(daemon: Daemon,
                                                          attacker: Attacker) -> None:
    base = short_tmpdir("kpln")
    try:
        os.chmod(base, 0o755)
        foreign = _marker_app(base / "w", "x.y", daemon.base / "ran") / "kitapp.toml"
        for p in [base / "w", *(base / "w").rglob("*")]:
            shutil.chown(p, attacker.name, attacker.name)
        app = write_app(daemon.workspace, "linked.app")
        (app / "kitapp.toml").unlink()
        (app / "kitapp.toml").symlink_to(foreign)
        _refused(daemon, {"app": "linked.app"})
        assert not (daemon.base / "ran").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_anonymous_flood_of_another_user_leaves_the_user_served(make_bridge: Any,
                                                                daemon: Daemon,
                                                                attacker: Attacker) -> None:
    b = make_bridge(daemon, "--anon-rate", "1", "--anon-burst", "5",
                    "--rate-limit", "1", "--rate-burst", "30")
    flood = (
        "import sys, urllib.request, urllib.error\n"
        "codes = []\n"
        "for _ in range(60):\n"
        "    try:\n"
        "        urllib.request.urlopen(sys.argv[1], timeout=30); codes.append(200)\n"
        "    except urllib.error.HTTPError as e:\n"
        "        codes.append(e.code)\n"
        "print(sorted(set(codes)))\n")
    r = attacker.run(sys.executable, "-c", flood, f"{b.url}/api/v1/jobs")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [401, 429]
    assert [b.get("/api/jobs").status_code for _ in range(20)] == [200] * 20
    # The flood lasts: the token holder is still served while it goes on.
    proc = attacker.popen(sys.executable, "-c", flood, f"{b.url}/api/v1/jobs",
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert b.get("/api/jobs").status_code == 200
    finally:
        proc.kill()
        proc.wait()
