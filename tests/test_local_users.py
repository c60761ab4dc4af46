"""Another local user attacks (issue 10): each attack is refused, by the real daemon and bridge.

The attacker is a real second user made by ``useradd`` (tests/local_user.py); their code runs
under ``setpriv`` with their uid and gid.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
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
    from kitplay.daemon.protocol.errors import KitplayError

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
    r = attacker.run("/usr/bin/python3", "-c", flood, f"{b.url}/api/v1/jobs")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [401, 429]
    assert [b.get("/api/jobs").status_code for _ in range(20)] == [200] * 20
    # The flood lasts: the token holder is still served while it goes on.
    proc = attacker.popen("/usr/bin/python3", "-c", flood, f"{b.url}/api/v1/jobs",
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert b.get("/api/jobs").status_code == 200
    finally:
        proc.kill()
        proc.wait()


def _in_private_tmp(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (Python, as root) with a fresh tmpfs as /tmp in a mount namespace of its
    own, so the fallback runtime directory /tmp/kitplay-<uid> is not the machine's.

    The test tree and the interpreter's prefix stay reachable when they live in /tmp (CI may
    clone there): the new tmpfs is mounted on a staging directory, they are bound into it,
    and then it is moved over /tmp.
    """
    from tests.helpers import ROOT

    if shutil.which("unshare") is None:
        pytest.skip("needs unshare (util-linux)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_RUNTIME_DIR", "KITPLAY_SOCKET", "KITPLAY_STATE_DIR")}
    env["PYTHONPATH"] = str(ROOT)
    stage = tempfile.mkdtemp(prefix="kpns", dir="/tmp")
    keep: list[str] = []
    for p in sorted({str(ROOT), sys.prefix}):
        if p.startswith("/tmp/") and not any(p.startswith(k + "/") for k in keep):
            keep.append(p)
    script = f"mount -t tmpfs -o mode=1777,size=16m tmpfs {shlex.quote(stage)}"
    for p in keep:
        inner = shlex.quote(stage + p[len("/tmp"):])
        script += f" && mkdir -p {inner} && mount --bind {shlex.quote(p)} {inner}"
    script += f' && mount --move {shlex.quote(stage)} /tmp && exec "$0" "$@"'
    try:
        return subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
             sys.executable, "-c", code, *args],
            env=env, capture_output=True, text=True, timeout=120)
    finally:
        os.rmdir(stage)


HIJACK = """
import json, os, subprocess, sys
attacker = sys.argv[1:3]
setpriv = ["setpriv", f"--reuid={attacker[0]}", f"--regid={attacker[1]}", "--clear-groups"]
rundir = f"/tmp/kitplay-{os.getuid()}"
out = {}
daemon = [sys.executable, "-m", "kitplay.daemon",
          "--state-dir", "/tmp/state", "--workspace", "/tmp/ws"]
# 1. made first by the attacker: sticky and world-writable, as /tmp is
subprocess.run([*setpriv, "mkdir", "-m", "1777", rundir], check=True)
r = subprocess.run(daemon, capture_output=True, text=True, timeout=60)
out["foreign"] = [r.returncode, r.stderr, os.listdir(rundir)]
subprocess.run([*setpriv, "rmdir", rundir], check=True)
# 2. a symlink to a directory of the attacker's
subprocess.run([*setpriv, "mkdir", "-m", "777", "/tmp/evil"], check=True)
subprocess.run([*setpriv, "ln", "-s", "/tmp/evil", rundir], check=True)
r = subprocess.run(daemon, capture_output=True, text=True, timeout=60)
out["symlink"] = [r.returncode, r.stderr, os.listdir("/tmp/evil")]
print(json.dumps(out))
"""


def test_fallback_runtime_dir_made_by_another_user_is_refused(attacker: Attacker) -> None:
    r = _in_private_tmp(HIJACK, str(attacker.uid), str(attacker.gid))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    code, err, left = out["foreign"]
    assert code == 2 and f"another user (uid {attacker.uid})" in err, err
    assert left == []  # no socket, nothing of ours went there
    code, err, left = out["symlink"]
    assert code == 2 and "symlink" in err, err
    assert left == []


def test_client_checks_who_serves_the_socket_before_sending(attacker: Attacker) -> None:
    trap_dir = short_tmpdir("kptr")
    os.chmod(trap_dir, 0o777)
    trap = trap_dir / "kitplayd.sock"
    server = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()\n"
        "print('ready', flush=True)\n"
        "c, _ = s.accept(); c.settimeout(5)\n"
        "try:\n    data = c.recv(4096)\nexcept OSError:\n    data = b''\n"
        "print(len(data), flush=True)\n")
    proc = attacker.popen("/usr/bin/python3", "-c", server, str(trap), stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        from tests.helpers import ROOT

        r = subprocess.run([sys.executable, "-m", "kitplay.cli_client",
                            "--socket", str(trap), "daemon",
                            "status"], env={**os.environ, "PYTHONPATH": str(ROOT)},
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0 and f"uid {attacker.uid}" in r.stderr, r.stderr
        out, _ = proc.communicate(timeout=30)
        assert out.strip() == b"0"  # the trap got not one byte
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(trap_dir, ignore_errors=True)


def test_state_dir_is_tightened_or_refused(make_daemon: Any, attacker: Attacker) -> None:
    base = short_tmpdir("kpst")
    try:
        state = base / "state"
        state.mkdir(mode=0o755)
        os.chmod(state, 0o755)
        d = make_daemon(base=base).start()
        assert (state.stat().st_mode & 0o777) == 0o700
        assert (state / "kitplay.db").stat().st_mode & 0o077 == 0
        d.stop()
        shutil.chown(state, attacker.name, attacker.name)
        r = subprocess.run(d.argv(), env=d.env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and f"another user (uid {attacker.uid})" in r.stderr, r.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_kitplay_open_checks_bridge_json(make_bridge: Any, daemon: Daemon,
                                         attacker: Attacker) -> None:
    from tests.helpers import ROOT

    b = make_bridge(daemon)

    def kitplay_open() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "kitplay.cli_client", "--socket",
                               str(daemon.socket), "open"],
                              env={**os.environ, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=30)

    r = kitplay_open()
    assert r.returncode == 0 and r.stdout.startswith(f"{b.page_url}/#code=")
    assert b.token not in r.stdout + r.stderr
    os.chmod(b.info_path, 0o644)
    r = kitplay_open()
    assert r.returncode == 3 and "chmod 600" in r.stderr, r.stderr
    os.chmod(b.info_path, 0o600)
    os.chown(b.info_path, attacker.uid, attacker.gid)  # as if another user had put it there
    r = kitplay_open()
    assert r.returncode == 3 and f"belongs to uid {attacker.uid}" in r.stderr, r.stderr
    assert "#code=" not in r.stdout
