"""The Neovim plugin (editors/nvim/), run headless against a real daemon.

``editors/nvim/test/follow.lua`` drives the plugin's own commands in ``nvim --headless``:
``:Kitplay launch`` an app, ``:Kitplay logs`` follows its log into a buffer, this test restarts
the daemon in the middle, and the buffer resumes from its byte offset (the app writes bytes
that are not UTF-8, and characters split across writes: the buffer gets them exactly);
``:Kitplay jobs`` lists the job and ``:Kitplay cancel`` stops a second one.  The buffer must
hold exactly the job's log file: nothing lost, nothing repeated across the restart.

Needs Debian's ``neovim`` (0.7.2 on bookworm); without it the test skips, except in CI (env
``CI`` or ``KITPLAY_REQUIRE_ALL`` set), where it fails saying what to install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, Daemon, terminate, wait_for, write_app
from tests.require_all import REQUIRE_ALL

NVIM_DIR = ROOT / "editors" / "nvim"
# Each tick holds bytes that are not UTF-8, and a character split across two writes.
TICKER = ("import pathlib, sys, time\n"
          "stop = pathlib.Path(sys.argv[1])\n"
          "out = sys.stdout.buffer\n"
          "i = 0\n"
          "while not stop.exists():\n"
          "    i += 1\n"
          "    out.write(b'tick %d caf\\xe9 \\xe2\\x82' % i)\n"
          "    out.flush()\n"
          "    time.sleep(0.02)\n"
          "    out.write(b'\\xac \\xff\\xfe\\n')\n"
          "    out.flush()\n"
          "    time.sleep(0.03)\n"
          "print('end', flush=True)\n")


def need(tool: str, package: str) -> str:
    """The tool's path; skip without it, but fail in CI (env ``CI`` or KITPLAY_REQUIRE_ALL)."""
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") or REQUIRE_ALL:
            pytest.fail(f"{tool} is missing: install Debian's {package} (CI must run this test)")
        pytest.skip(f"needs {tool} (Debian package {package})")
    return path


def test_plugin_follows_a_log_across_a_daemon_restart(daemon: Daemon, tmp_path: Path) -> None:
    nvim = need("nvim", "neovim")
    write_app(daemon.workspace, "t.ticker", launch=["{python}", "-c", TICKER])
    # A create job: its app is the new app's name (params.name, no params.app).
    created = daemon.call("templates.create", {"template": "console_app",
                                               "name": "my_company.nvim_row"})["job"]
    daemon.wait_job(created["id"])
    phase, result = tmp_path / "phase", tmp_path / "result.json"
    stop = tmp_path / "stop"
    env = {**os.environ, "KITPLAY_SOCKET": str(daemon.socket), "KP_APP": "t.ticker",
           "KP_STOP": str(stop), "KP_NEVER": str(tmp_path / "never"),
           "KP_PHASE": str(phase), "KP_RESULT": str(result), "HOME": str(tmp_path),
           "KP_BYTES": str(tmp_path / "buffer.bytes"),
           "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_STATE_HOME": str(tmp_path / "state")}
    with open(tmp_path / "nvim.out", "wb") as out:
        proc = subprocess.Popen(
            [nvim, "--headless", "--clean", "--cmd", f"set rtp^={NVIM_DIR}",
             "-c", f"luafile {NVIM_DIR / 'test' / 'follow.lua'}"],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=tmp_path)
    try:
        def nvim_says(what: str) -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"nvim exited early:\n{(tmp_path / 'nvim.out').read_text()}")
            return phase.exists() and phase.read_text() == what

        wait_for(lambda: nvim_says("following"), 60, "the plugin to follow the log")
        daemon.stop()  # the launched app keeps running; the plugin loses its connection
        daemon.start()
        wait_for(lambda: nvim_says("resumed"), 60, "the plugin to resubscribe")
        stop.touch()
        code = proc.wait(120)
    finally:
        terminate(proc)
    output = (tmp_path / "nvim.out").read_text()
    assert code == 0, output
    res = json.loads(result.read_text())
    log = (daemon.state / "logs" / f"{res['job']}.log").read_bytes()
    assert log.endswith(b"end\n[kitplay] job succeeded\n") and b"tick 3 caf\xe9" in log
    # The buffer holds the log's bytes exactly, those that are not UTF-8 included.
    assert (tmp_path / "buffer.bytes").read_bytes() == log, \
        "the buffer is not exactly the log (lost, repeated or altered output)"
    assert res["offset"] == len(log)
    assert res["reconnects"] >= 1
    assert res["job"] in res["jobs"] and "succeeded" in res["jobs"]
    # Every row names its app (a create job's too) and the local time it was created.
    row = next(ln for ln in res["jobs"].splitlines() if ln.startswith(created["id"]))
    assert row.split() == [created["id"], "create", "succeeded", "my_company.nvim_row",
                           *time.strftime("%Y-%m-%d %H:%M:%S",
                                          time.localtime(created["created_at"])).split()]
    launch_row = next(ln for ln in res["jobs"].splitlines() if ln.startswith(res["job"]))
    assert launch_row.split()[3] == "t.ticker"
    assert daemon.call("jobs.get", [res["job2"]])["job"]["status"] == "cancelled"
    assert res["complete"] == ["jobs", "logs", "launch", "cancel"]
    assert res["job2"] in res["complete_jobs"] and res["job"] in res["complete_jobs"]
    assert res["complete_apps"] == ["t.ticker"]
    assert res["errmsg"] == "", res["errmsg"]  # no Lua error in any callback
    assert res["usage"]["msg"].startswith("kitplay: usage: :Kitplay jobs | logs JOB")
    assert res["usage"]["level"] == 4  # vim.log.levels.ERROR
