"""kitplay as a user installs it: a wheel in a fresh venv, no source tree on the path.

The test builds a wheel from a copy of the project (``pip wheel --no-deps``: the build
leaves nothing in the checkout), installs it with its dependencies (``-c constraints.txt``)
into a new venv, and drives the installed ``kitplayd`` and ``kitplay`` commands through
create, build and launch of every builtin template.  pip byte-compiles the package on
install, so the installed template trees hold ``__pycache__/``: the case the editable
checkout never shows.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, Daemon, wait_for

PACKAGES = ("daemon", "bridge", "cli_client")
TEMPLATES = ("console_app", "gui_app", "service_app")


def run(argv: list[str | Path], timeout: float = 600, **kw: object) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, **kw)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{argv} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", base / "dist", src])
    (wheel,) = (base / "dist").glob("kitplay-*.whl")
    env = base / "venv"
    run([sys.executable, "-m", "venv", env])
    # python-daemon's import name is `daemon`: kitplay's must not collide with it.
    run([env / "bin" / "python", "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt",
         wheel, "python-daemon"])
    try:
        yield env
    finally:
        shutil.rmtree(base, ignore_errors=True)


class InstalledDaemon(Daemon):
    """The venv's ``kitplayd``, with no PYTHONPATH and started outside the checkout."""

    def __init__(self, env: Path) -> None:
        super().__init__()
        self.venv = env
        self.env.pop("PYTHONPATH", None)
        self.env["PATH"] = f"{env / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"

    def argv(self) -> list[str]:
        return [str(self.venv / "bin" / "kitplayd"), *super().argv()[3:]]

    def kitplay(self, *args: str) -> str:
        return run([self.venv / "bin" / "kitplay", "--socket", self.socket, *args],
                   timeout=120, env=self.env, cwd=self.base)


@pytest.fixture
def installed(venv: Path) -> Iterator[InstalledDaemon]:
    d = InstalledDaemon(venv)
    try:
        yield d.start()
    finally:
        d.cleanup()


def test_the_wheel_installs_outside_the_checkout(venv: Path) -> None:
    where = run([venv / "bin" / "python", "-c",
                 "import kitplay.daemon, kitplay.bridge, kitplay.cli_client; "
                 "print(kitplay.daemon.__file__)"],
                cwd=venv, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    pkg = Path(where.strip()).parent
    assert pkg.parent.name == "kitplay", pkg
    assert pkg.is_relative_to(venv), pkg
    templates = pkg / "toolchains" / "builtin_templates"
    assert sorted(p.name for p in templates.iterdir() if p.is_dir()) == list(TEMPLATES)
    # pip byte-compiled the templates' Python files: what `templates create` must ignore.
    assert (templates / "console_app" / "files" / "__pycache__").is_dir()
    assert (pkg.parent / "bridge" / "static" / "index.html").is_file()
    # The script the bridge adds to Xpra's client page (bridge/displays.py).
    assert (pkg.parent / "bridge" / "display_client" / "kitplay-display.js").is_file()
    # Nothing generic at the top level of site-packages.
    site = pkg.parent.parent
    assert not any((site / name).exists() for name in ("bridge", "cli_client")), site


def test_the_wheel_lives_beside_python_daemon(venv: Path) -> None:
    """python-daemon (import name `daemon`) and kitplay installed together: each imports its
    own files, and both work in one process."""
    code = (
        "import daemon, daemon.pidfile, kitplay.daemon.protocol.registry as r, "
        "kitplay.daemon.main\n"
        "assert hasattr(daemon, 'DaemonContext'), daemon.__file__\n"
        "ctx = daemon.DaemonContext(detach_process=False)\n"
        "print(daemon.__file__, r.__file__, 'jobs.get' in r.METHODS, type(ctx).__name__)\n")
    out = run([venv / "bin" / "python", "-c", code], cwd=venv,
              env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    theirs, ours, has_method, ctx = out.split()
    assert Path(theirs).parent.name == "daemon" and Path(theirs).parent.parent.name != "kitplay"
    assert Path(ours).parts[-4:-1] == ("kitplay", "daemon", "protocol"), ours
    assert has_method == "True" and ctx == "DaemonContext"


def test_create_build_launch_every_template_with_the_installed_commands(
        installed: InstalledDaemon) -> None:
    d = installed
    status = d.kitplay("daemon", "status")
    assert "builtin" in status

    for t in TEMPLATES:
        out = d.kitplay("templates", "create", t, f"my_company.{t}", "--follow")
        assert f"created my_company.{t}" in out
        files = sorted(p.name for p in (d.workspace / "source" / "apps" / f"my_company.{t}")
                       .iterdir())
        assert files == ["README.md", "app.py", "kitapp.toml", "test_app.py"]
    out = d.kitplay("build", "--follow")
    assert out.count("[kitplay] job succeeded") == 1 and "FAILED" not in out

    out = d.kitplay("launch", "my_company.console_app", "--follow", "--", "--lines", "3")
    assert "Hello from" in out and "line 3" in out

    out = d.kitplay("launch", "my_company.gui_app", "--display", "headless", "--follow",
                    "--", "--exit-after", "0.2")
    assert "running headless" in out and "[kitplay] job succeeded" in out

    job_id = d.kitplay("launch", "my_company.service_app", "-q").strip()
    line = wait_for(lambda: re.search(r"listening on (http://127\.0\.0\.1:\d+)",
                                      d.job_log(job_id)), 30, "the service to listen")
    with urllib.request.urlopen(f"{line.group(1)}/health", timeout=10) as r:
        assert r.read() == b"ok\n"
    d.kitplay("jobs", "cancel", job_id)
    job = d.wait_job(job_id)
    assert job["status"] == "cancelled", d.job_log(job_id)
    assert "shutting down" in d.job_log(job_id)  # it stopped on SIGTERM, not SIGKILL

