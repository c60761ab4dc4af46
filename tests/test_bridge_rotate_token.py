"""``kitplay-bridge --rotate-token`` never does nothing silently.

With ``KITPLAY_BRIDGE_TOKEN`` set, the master token is that variable's, and the token file is not
read or written: a rotation asked for then cannot happen, and the user, who believes the old
token is dead, must hear so.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from tests.helpers import ROOT, short_tmpdir


def test_rotate_token_with_the_token_in_the_environment_is_refused() -> None:
    base = short_tmpdir()
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT),
               "KITPLAY_BRIDGE_TOKEN": secrets.token_urlsafe(32)}
        r = subprocess.run([sys.executable, "-m", "kitplay.bridge", "--rotate-token", "--socket",
                            str(base / "run" / "kitplayd.sock"), "--bind", "127.0.0.1:0"],
                           env=env, capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 2, (r.returncode, r.stderr)
        assert "--rotate-token" in r.stderr and "KITPLAY_BRIDGE_TOKEN" in r.stderr, r.stderr
        assert not (base / "run" / "bridge.token").exists()
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)
