"""Group-writable means writable by anyone else in the group, however they belong to it.

/etc/group lists a group's supplementary members only: a user whose *primary* group is the
user's private group is in it too, and can write whatever is group-writable there. Two real
users: ``kpowner`` (the user, with a private group of its own) and ``kpmate``, whose primary
group is ``kpowner``'s. The daemon runs as ``kpowner``; ``kpmate`` replaces the code of a
group-writable app, and the launch must be refused.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from kitplay.daemon.trust import group_others

from tests.helpers import ROOT, short_tmpdir
from tests.local_user import Attacker, ensure_user, needs_local_users

OWNER, MATE = "kpowner", "kpmate"

# Runs as the owner: "setup" makes a workspace with a group-writable app; "launch" starts a
# daemon on it, launches the app and prints what happened as JSON.
DRIVER = """
import json, os, sys
from pathlib import Path
from tests.helpers import Daemon, write_app
base, mode = Path(sys.argv[1]), sys.argv[2]
ws = base / "ws"
if mode == "setup":
    app = write_app(ws, "grp.app", launch=[sys.executable, "app.py"],
                    files={"app.py": "print('the owner wrote this')"})
    for p in (base, ws, ws / "source", ws / "source" / "apps"):
        os.chmod(p, 0o755)
    os.chmod(app, 0o775)
    os.chmod(app / "app.py", 0o664)
    sys.exit(0)
(base / "d").mkdir()
d = Daemon(base=base / "d", workspace=ws).start()
try:
    try:
        job = d.call("launch", {"app": "grp.app", "display": "headless"})["job"]
        out = {"job": d.wait_job(job["id"])["status"], "log": d.job_log(job["id"])}
    except Exception as e:
        out = {"error": getattr(e, "message", str(e)), "data": getattr(e, "data", None)}
finally:
    d.cleanup()
print(json.dumps(out))
"""


def _as(user: Attacker, *argv: str) -> tuple[int, str, str]:
    r = user.run("env", f"PYTHONPATH={ROOT}", *argv, cwd="/")
    return r.returncode, r.stdout, r.stderr


def test_a_user_whose_primary_group_is_the_users_cannot_slip_code_in() -> None:
    needs_local_users()
    owner = ensure_user(OWNER)
    mate = ensure_user(MATE, primary_group=OWNER)
    assert mate.gid == owner.gid  # primary group: /etc/group does not list kpmate
    assert MATE in group_others(owner.gid, owner.uid)
    base = short_tmpdir("kpgw")
    try:
        shutil.chown(base, OWNER, OWNER)
        code, out, err = _as(owner, sys.executable, "-c", DRIVER, str(base), "setup")
        assert code == 0, err
        app_py = base / "ws" / "source" / "apps" / "grp.app" / "app.py"
        # The mate can write there: the group's write bit is theirs too.
        code, _, err = _as(mate, "sh", "-c", f"echo \"print('EVIL')\" > {app_py}")
        assert code == 0, err
        assert "EVIL" in app_py.read_text()
        code, out, err = _as(owner, sys.executable, "-c", DRIVER, str(base), "launch")
        assert code == 0, err
        result = json.loads(out)
        assert "job" not in result, result  # nothing ran
        assert result["data"]["reason"] == "untrusted", result
        assert f"members of group {OWNER} ({MATE}) can write to it" in result["error"], result
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_private_group_has_no_other_user() -> None:
    needs_local_users()
    owner = ensure_user(OWNER)
    ensure_user(MATE, primary_group=OWNER)
    from kitplay.daemon.trust import private_group

    assert not private_group(owner.gid, owner.uid)
    attacker = ensure_user()  # kpattacker: a group of its own, nobody else in it
    assert private_group(attacker.gid, attacker.uid)
    assert group_others(attacker.gid, attacker.uid) == ()
    assert os.getuid() == 0
