"""Another local user's socket trap, against the editor clients (editors/vscode, editors/nvim).

Node and Neovim have no SO_PEERCRED, which the Python clients use to ask who serves the
socket (daemon/protocol/paths.py check_peer); the editor clients check with ``lstat`` instead,
before connecting: the socket's directory is a real directory that is ours and 0700, or root's
and sticky like /tmp, and the socket file is ours. Here a real second user (tests/local_user.py)
serves a fake daemon in a root-owned sticky directory (as /tmp is) at three places: in a
directory of theirs (the /tmp/kitplay-$UID hijack when XDG_RUNTIME_DIR is unset), through a
symlink to it, and directly in the sticky directory. The fake records every connection and byte;
each editor must refuse all three with a message naming the reason, and send nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import short_tmpdir
from tests.local_user import Attacker, attacker_fixture  # noqa: F401
from tests.test_editor_nvim import NVIM_DIR, need
from tests.test_editor_vscode import VSCODE_DIR, build_extension

# The attacker's fake daemon: listens on every path given, reads whatever a client sends, and
# on stdin's end prints how many connections and bytes it got (all it got before then).
FAKE = """\
import json, select, socket, sys
listeners = []
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX); s.bind(p); s.listen(); listeners.append(s)
print('ready', flush=True)
got = {'connections': 0, 'bytes': 0}
conns = []
stopping = False
while True:
    # After stdin's end, take in what is already there (the test's control byte), then stop.
    r, _, _ = select.select([*([] if stopping else [sys.stdin]), *listeners, *conns], [], [],
                            0 if stopping else None)
    if not r:
        break
    if sys.stdin in r and not sys.stdin.readline():
        stopping = True
    for s in r:
        if s in listeners:
            c, _ = s.accept(); conns.append(c); got['connections'] += 1
        elif s in conns:
            data = s.recv(65536)
            got['bytes'] += len(data)
            if not data:
                conns.remove(s); s.close()
print(json.dumps(got), flush=True)
"""


@dataclass
class Trap:
    paths: dict[str, Path]  # reason -> socket path the editor is pointed at
    attacker: Attacker
    proc: subprocess.Popen[bytes]

    def received(self) -> dict[str, int]:
        """Stop the fake daemon: what it got (a control byte from the test proves it counts)."""
        import socket

        with socket.socket(socket.AF_UNIX) as s:  # the control: one connection, one byte
            s.connect(str(self.paths["in the sticky directory"]))
            s.sendall(b"x")
        out, _ = self.proc.communicate(b"", timeout=30)
        got: dict[str, int] = json.loads(out.decode().splitlines()[-1])
        return got


@pytest.fixture
def trap(attacker: Attacker) -> Iterator[Trap]:
    base = short_tmpdir("kpes")
    os.chmod(base, 0o1777)  # ours, and we are root (attacker fixture): like /tmp
    evil = base / f"kitplay-{os.getuid()}"
    attacker.run("mkdir", "-m", "700", str(evil), check=True)
    attacker.run("ln", "-s", str(evil), str(base / "link"), check=True)
    paths = {"directory of another user": evil / "kitplayd.sock",
             "symlink": base / "link" / "kitplayd.sock",
             "in the sticky directory": base / "kitplayd.sock"}
    proc = attacker.popen("/usr/bin/python3", "-c", FAKE, str(paths["directory of another user"]),
                          str(paths["in the sticky directory"]),
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        yield Trap(paths, attacker, proc)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(base, ignore_errors=True)


def check_refusals(trap: Trap, errors: dict[str, dict[str, object]]) -> None:
    uid, a = os.getuid(), trap.attacker.uid
    expect = {
        "directory of another user":
            f"belongs to another user (uid {a}), not to you (uid {uid})",
        "symlink": "is a symlink",
        "in the sticky directory": f"it belongs to another user (uid {a}), not to you (uid {uid})",
    }
    for case, path in trap.paths.items():
        err = errors[case]
        assert err["code"] == -32099, err
        assert err["data"] == {"socket": str(path), "reason": "untrusted"}, err
        message = str(err["message"])
        assert message.startswith(f"refusing to connect to {path}: "), message
        assert expect[case] in message, message
    assert trap.received() == {"connections": 1, "bytes": 1}  # only the test's control byte


NODE = """\
const { KitplayClient } = require(process.argv[1]);
(async () => {
  const cases = JSON.parse(process.argv[2]);
  const out = {};
  for (const [name, p] of Object.entries(cases)) {
    try {
      (await KitplayClient.connect(p)).dispose();
      out[name] = { code: 0, message: 'connected', data: null };
    } catch (e) {
      out[name] = { code: e.code, message: e.message, data: e.data };
    }
  }
  console.log(JSON.stringify(out));
})();
"""


def test_vscode_client_refuses_another_users_socket_without_sending(trap: Trap) -> None:
    build_extension()
    cases = {k: str(v) for k, v in trap.paths.items()}
    p = subprocess.run(["node", "-e", NODE, str(VSCODE_DIR / "out" / "src" / "client.js"),
                        json.dumps(cases)], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    check_refusals(trap, json.loads(p.stdout))


LUA = """\
local rpc = require('kitplay.rpc')
local cases = vim.json.decode(vim.env.KP_CASES)
local out = {}
for name, path in pairs(cases) do
  local done, err = false, nil
  rpc.connect(path, {}, function(e, conn)
    if conn then conn:close('test') end
    done, err = true, e or { code = 0, message = 'connected' }
  end)
  vim.wait(10000, function() return done end, 10)
  out[name] = err
end
-- What a user sees: the plugin's own call path, through the sticky-directory trap.
require('kitplay').setup({ socket = cases['in the sticky directory'] })
local _, err = require('kitplay').call_sync('jobs.list', {}, 10000)
out.user = err
-- A log follower stops on it (a trap is not a daemon restarting) and says why.
local buf = require('kitplay').logs('job-1')
vim.wait(10000, function() return vim.b[buf].kitplay_status == 'error' end, 10)
out.follow = vim.b[buf].kitplay_status
local f = io.open(vim.env.KP_RESULT, 'w')
f:write(vim.json.encode(out))
f:close()
vim.cmd('qa!')
"""


def test_nvim_plugin_refuses_another_users_socket_without_sending(trap: Trap,
                                                                   tmp_path: Path) -> None:
    nvim = need("nvim", "neovim")
    script, result = tmp_path / "trap.lua", tmp_path / "result.json"
    script.write_text(LUA)
    env = {**os.environ, "KP_CASES": json.dumps({k: str(v) for k, v in trap.paths.items()}),
           "KP_RESULT": str(result), "HOME": str(tmp_path),
           "XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_DATA_HOME": str(tmp_path / "data"),
           "XDG_STATE_HOME": str(tmp_path / "state")}
    p = subprocess.run([nvim, "--headless", "--clean", "--cmd", f"set rtp^={NVIM_DIR}",
                        "-c", f"luafile {script}"], env=env, capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert p.returncode == 0 and result.exists(), p.stdout + p.stderr
    out = json.loads(result.read_text())
    user = out.pop("user")
    assert out.pop("follow") == "error"
    assert user["message"] == out["in the sticky directory"]["message"], user
    check_refusals(trap, out)



CHECK = """\
local rpc = require('kitplay.rpc')
local out = {}
for name, path in pairs(vim.json.decode(vim.env.KP_CASES)) do
  out[name] = rpc.check_socket(path) or { message = 'ok' }
end
local f = io.open(vim.env.KP_RESULT, 'w')
f:write(vim.json.encode(out))
f:close()
vim.cmd('qa!')
"""


def test_nvim_check_socket_of_the_users_own_paths(tmp_path: Path) -> None:
    """The same user's own loose directory, symlink or plain file: refused; a 0700 one: used."""
    import socket

    nvim = need("nvim", "neovim")
    base = short_tmpdir("kpec")
    listeners: list[socket.socket] = []
    try:
        private, loose = base / "private", base / "loose"
        for d in (private, loose):
            d.mkdir(mode=0o700)
        os.chmod(loose, 0o755)
        for d in (private, loose):
            s = socket.socket(socket.AF_UNIX)
            s.bind(str(d / "kitplayd.sock"))
            listeners.append(s)
        (private / "plain").write_text("")
        (private / "link.sock").symlink_to(private / "kitplayd.sock")
        cases = {"private": private / "kitplayd.sock", "loose": loose / "kitplayd.sock",
                 "plain": private / "plain", "link": private / "link.sock",
                 "missing": private / "none.sock"}
        script, result = tmp_path / "check.lua", tmp_path / "result.json"
        script.write_text(CHECK)
        env = {**os.environ, "KP_CASES": json.dumps({k: str(v) for k, v in cases.items()}),
               "KP_RESULT": str(result), "HOME": str(tmp_path)}
        p = subprocess.run([nvim, "--headless", "--clean", "--cmd", f"set rtp^={NVIM_DIR}",
                            "-c", f"luafile {script}"], env=env, capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=tmp_path)
        assert p.returncode == 0 and result.exists(), p.stdout + p.stderr
        out = json.loads(result.read_text())
    finally:
        for s in listeners:
            s.close()
        shutil.rmtree(base, ignore_errors=True)
    assert out["private"] == {"message": "ok"}
    assert f"its directory {loose} is open to others (mode 755, not 700)" in \
        out["loose"]["message"]
    assert out["plain"]["message"].endswith("it is not a socket. Another user may have put it "
                                            "there to catch kitplay's requests: remove it (as "
                                            "root or that user), or set XDG_RUNTIME_DIR or the "
                                            "`socket` option to a path of your own")
    assert ": it is a symlink." in out["link"]["message"]
    for case in ("loose", "plain", "link"):
        assert out[case]["data"]["reason"] == "untrusted"
    assert out["missing"]["message"].startswith(f"no kitplay daemon is listening on "
                                                f"{cases['missing']} (ENOENT")
    assert "reason" not in out["missing"]["data"]
