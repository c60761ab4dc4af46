"""The kit-app-template stand-in (tests/fixtures/kit_app_template) holds the rules real files
show, and nothing more: its README names the file beside each rule. These run its ``repo.sh``
directly, as a real process, in a fresh copy each.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from kitplay.daemon.toolchains.kit import EULA_FILE

from tests.helpers import FIXTURES

STANDIN = FIXTURES / "kit_app_template"
RELEASE = "_build/linux-x86_64/release"
SERVICE = """[kit_service]
application_name = "{name}"
version = "0.1.0"
"""


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    dest = tmp_path / "kat"
    shutil.copytree(STANDIN, dest)
    return dest


def repo(ws: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ws / "repo.sh"), *args], cwd=ws, input=stdin,
                          capture_output=True, text=True, timeout=60)


def make(ws: Path, *names: str) -> None:
    (ws / EULA_FILE).write_text("test\n")
    for name in names:
        (ws / "play.toml").write_text(SERVICE.format(name=name))
        done = repo(ws, "template", "replay", "play.toml")
        assert done.returncode == 0, done.stderr
        # Each app's setup extension under its own name (the default is shared).
        ext = ws / "source/extensions/my_company.my_service_setup_extension"
        ext.rename(ext.with_name(f"{name}_setup"))


def test_only_the_template_tool_asks_for_the_licence(ws: Path) -> None:
    done = repo(ws, "template", "replay", "x.toml")
    assert done.returncode == 1 and "? Do you accept the governing terms? (Yes/No)" in done.stdout
    assert "governing terms have not been accepted" in done.stderr
    (ws / "source/apps").mkdir(parents=True, exist_ok=True)
    for args in (["build"], ["package"], ["test"]):
        done = repo(ws, *args)
        assert "governing terms" not in done.stdout + done.stderr, args
    assert "BUILD (RELEASE) SUCCEEDED" in repo(ws, "build").stdout


def test_launch_picks_a_lone_app_and_asks_only_with_several(ws: Path) -> None:
    make(ws, "one")
    assert repo(ws, "build").returncode == 0
    done = repo(ws, "launch", "--", "--/app/quitAfter=0")  # no stdin at all
    assert done.returncode == 0, done.stderr
    assert "launching one.kit!" in done.stdout and "Select" not in done.stdout
    assert "[omni.kit.app] app ready" in done.stdout
    make(ws, "two")
    assert repo(ws, "build").returncode == 0
    asked = repo(ws, "launch")
    assert asked.returncode == 1 and "Select with arrow keys which App you would like to " \
        "launch:" in asked.stdout and "aborted: no application selected" in asked.stderr
    named = repo(ws, "launch", "-n", "two.kit", "-d", "--", "--/app/quitAfter=0")
    assert named.returncode == 0 and "launching two.kit!" in named.stdout
    assert "enabled omni.kit.developer.bundle" in named.stdout
    missing = repo(ws, "launch", "-n", "three.kit")
    assert missing.returncode == 1 and "is missing the built entrypoint script" in missing.stderr


def test_build_c_cleans_and_builds_and_d_builds_debug(ws: Path) -> None:
    make(ws, "svc")
    (ws / "_build").mkdir()
    (ws / "_build/stale").write_text("old\n")
    for flag in ("-c", "-x"):
        done = repo(ws, "build", flag)
        assert done.returncode == 0 and "BUILD (RELEASE) SUCCEEDED" in done.stdout, flag
        assert (ws / RELEASE / "svc.kit.sh").is_file() and not (ws / "_build/stale").exists()
        (ws / "_build/stale").write_text("old\n")
    done = repo(ws, "build", "-d")
    assert "BUILD (DEBUG) SUCCEEDED" in done.stdout
    assert (ws / "_build/linux-x86_64/debug/svc.kit.sh").is_file()
    both = repo(ws, "build", "-r", "-d")
    assert "BUILD (RELEASE) SUCCEEDED" in both.stdout and "BUILD (DEBUG) SUCCEEDED" in both.stdout


def test_package_leaves_out_what_repo_toml_excludes(ws: Path) -> None:
    make(ws, "svc")
    assert repo(ws, "build").returncode == 0
    out = ws / RELEASE
    for rel in ("kit/kernel.so", "extscache/e/x.py", "a.pdb", "exts/x/y/__pycache__/z.pyc",
                "_hidden/f", ".dot/f", "data/big.bin", "apps/kit.portable", "logs/l.txt",
                "keep/data/ok.txt"):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text("x")
    fat = repo(ws, "package")
    thin = repo(ws, "package", "--thin", "-n", "slim")
    assert fat.returncode == 0 and thin.returncode == 0, fat.stderr + thin.stderr
    with zipfile.ZipFile(ws / "_build/packages/kit-sdk-fat@0.1.0.linux-x86_64.release.zip") as z:
        fat_names = set(z.namelist())
    with zipfile.ZipFile(ws / "_build/packages/slim@0.1.0.linux-x86_64.release.zip") as z:
        thin_names = set(z.namelist())
    assert {"kit/kernel.so", "extscache/e/x.py", "keep/data/ok.txt", "svc.kit.sh"} <= fat_names
    for gone in ("a.pdb", "exts/x/y/__pycache__/z.pyc", "_hidden/f", ".dot/f", "data/big.bin",
                 "apps/kit.portable", "logs/l.txt"):
        assert gone not in fat_names and gone not in thin_names, gone
    assert "kit/kernel.so" not in thin_names and "extscache/e/x.py" not in thin_names
    assert "keep/data/ok.txt" in thin_names
    # package.py's package_name_check: its message, and exit status 0.
    bad = repo(ws, "package", "-n", "bad-name")
    assert bad.returncode == 0 and "Invalid - name is limited to alphanumeric, period, and " \
        "underscore characters." in bad.stdout


@pytest.mark.parametrize("args, flag", [
    (["template", "new", "--input", "Yes;Application>"], "template new --input"),
    (["template", "modify"], "template modify"),
    (["build", "-g"], "build -g"),
    (["launch", "--container"], "launch --container"),
    (["launch", "-p", "x.zip"], "launch --package"),
    (["package", "--container"], "package --container"),
    (["package_container", "--app", "source/apps/x.kit", "-g"], "package_container --generate"),
    (["package_container", "-p"], "package_container --from-package"),
    (["package_container", "--from-package", "a.zip"], "package_container --from-package"),
])
def test_real_flags_it_does_not_model_say_so(ws: Path, args: list[str], flag: str) -> None:
    (ws / EULA_FILE).write_text("test\n")
    done = repo(ws, *args)
    assert done.returncode == 1, done
    assert f"Error: {flag} is not modelled by this stand-in" in done.stderr
    assert "?" not in done.stdout  # and asks nothing on the way


def test_unknown_flags_are_usage_errors(ws: Path) -> None:
    done = repo(ws, "build", "--no-such-flag")
    assert done.returncode == 2 and "unrecognized arguments: --no-such-flag" in done.stderr
