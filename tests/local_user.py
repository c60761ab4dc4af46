"""A second local user for the tests of issue-10 attacks: made with ``useradd`` (CI runs as root).

``attacker`` is a fixture: the user's (uid, gid) and ``run`` runs a command as that user with
``setpriv`` (no supplementary groups). Without root, the tests that need it skip (and CI's
KITPLAY_REQUIRE_ALL=1 turns such a skip into a failure).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest

__all__ = ["ATTACKER", "Attacker", "attacker_fixture", "ensure_user", "needs_local_users"]

ATTACKER = "kpattacker"


@dataclass
class Attacker:
    name: str
    uid: int
    gid: int

    def argv(self, *argv: str) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                "--reset-env", "--", *argv]

    def run(self, *argv: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        return subprocess.run(self.argv(*argv), **kw)

    def popen(self, *argv: str, **kw: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv(*argv), **kw)


def ensure_user(name: str = ATTACKER, primary_group: str | None = None) -> Attacker:
    """The user ``name``, made if missing: with a group of its own, or with ``primary_group``
    as its primary group (and no group of its own)."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        group = ["--gid", primary_group, "--no-user-group"] if primary_group else \
            ["--user-group"]
        r = subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
                            *group, name], capture_output=True, text=True)
        if r.returncode not in (0, 9):  # 9: made meanwhile by another test run
            raise AssertionError(f"useradd failed: {r.stderr}") from None
        pw = pwd.getpwnam(name)
    return Attacker(name, pw.pw_uid, pw.pw_gid)


@pytest.fixture(name="attacker")
def attacker_fixture() -> Attacker:
    needs_local_users()
    return ensure_user()


def needs_local_users() -> None:
    """Skip unless this test can make real users (root, useradd, setpriv)."""
    if os.getuid() != 0:
        pytest.skip("needs root to create a second local user (CI runs as root)")
    for tool in ("useradd", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Debian passwd / util-linux)")

