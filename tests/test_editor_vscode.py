"""The VS Code extension (editors/vscode/): install, compile, test its client, package.

``npm ci`` installs the locked dependencies, ``tsc`` compiles the extension and its tests,
``node --test`` runs the client module's tests (test/client.test.ts: vscode-jsonrpc against a
real kitplayd that the test starts from this tree, restarting it under a follower, and a
CancellationToken that sends ``$/cancelRequest``) and the extension's own (test/
extension.test.ts: ``activate()`` against a real kitplayd, with test/vscode-fake.ts standing in
for the editor: the lost daemon said once in the status bar, rows with app and local time,
launch arguments asked for, output channels reused and disposed), and ``vsce package`` builds
the .vsix.  VS Code itself cannot be downloaded here: the stand-in records what the extension
shows and answers what it asks; everything it does with the daemon is real.

Needs node and npm (and the npm registry for ``npm ci``); without them the test skips, except
in CI (env ``CI`` or ``KITPLAY_REQUIRE_ALL`` set), where it fails saying what to install.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.helpers import ROOT
from tests.test_editor_nvim import need

VSCODE_DIR = ROOT / "editors" / "vscode"


def run(argv: list[str], env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(argv, cwd=VSCODE_DIR, env=env, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"{' '.join(argv)} failed:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
    return p


_built: list[bool] = []


def build_extension() -> None:
    """``npm ci`` and ``tsc``, once per test session (tests/test_editor_sockets.py uses it too)."""
    need("node", "nodejs")
    npm = need("npm", "npm")
    if _built:
        return
    run([npm, "ci", "--no-audit", "--no-fund"])
    run([str(VSCODE_DIR / "node_modules" / ".bin" / "tsc"), "-p", "."])
    _built.append(True)


def test_extension_installs_compiles_passes_its_client_tests_and_packs(tmp_path: Path) -> None:
    build_extension()
    # package.json overrides vsce's cheerio to 1.0.0-rc.12: cheerio 1.x brings undici 6/7,
    # which fails to load on node 18 (Debian bookworm's nodejs): "File is not defined".
    assert not (VSCODE_DIR / "node_modules" / "undici").exists(), \
        "undici is back in the tree: `vsce package` fails on node 18 (README, Editors)"
    env = {**os.environ, "KITPLAY_TEST_PYTHON": sys.executable, "KITPLAY_TEST_ROOT": str(ROOT)}
    p = run(["node", "--test", "out/test/client.test.js", "out/test/extension.test.js"], env=env)
    assert "# fail 0" in p.stdout and "# pass 12" in p.stdout, p.stdout
    vsix = tmp_path / "kitplay.vsix"
    run([str(VSCODE_DIR / "node_modules" / ".bin" / "vsce"), "package",
         "--allow-missing-repository", "-o", str(vsix)])
    names = zipfile.ZipFile(vsix).namelist()
    assert "extension/out/src/extension.js" in names and "extension/package.json" in names
    assert "extension/node_modules/vscode-jsonrpc/package.json" in names
    assert not any(n.startswith("extension/out/test/") for n in names)
