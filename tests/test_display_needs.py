"""What an Xpra session needs on this machine: checked at start, reported, enforced.

A real daemon checks the real xpra, Xvfb, HTML5 client and Pillow of this machine.  The
"incomplete machine" is made with the daemon's ``xpra_python`` config key (the interpreter
that must import Pillow) pointing at a fresh venv, which has no Pillow: the launch is
refused at once, naming ``python3-pil``, and no session is started.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kitplay.daemon.capabilities import check_xpra, refusal, xpra_python
from kitplay.daemon.protocol.errors import Unsupported

from tests.helpers import ROOT, Daemon, create_and_build, wait_for

APP = "my_company.needs"

needs_xpra = pytest.mark.skipif(shutil.which("xpra") is None,
                                reason="xpra is not installed (sudo apt-get install xpra)")


@pytest.fixture
def python_without_pillow(tmp_path: Path) -> Iterator[str]:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "nopil"],
                   check=True, timeout=120)
    python = str(tmp_path / "nopil" / "bin" / "python")
    assert subprocess.run([python, "-c", "import PIL"], capture_output=True).returncode != 0
    yield python


def status_xpra(d: Daemon) -> dict[str, Any]:
    """daemon.status's xpra backend, once the start-up check has run."""
    return wait_for(lambda: (lambda x: x if x.get("available") is not None else None)(
        d.call("daemon.status")["displays"]["xpra"]), 30, "the start-up check")


@needs_xpra
def test_this_machine_has_what_xpra_needs(daemon: Daemon) -> None:
    xpra = shutil.which("xpra")
    assert xpra is not None
    report = status_xpra(daemon)
    assert report["missing"] == [] and report["available"] is True, report
    out = subprocess.run([xpra, "--version"], capture_output=True, text=True).stdout
    assert report["version"] and report["version"] in out
    assert report["python"] == xpra_python(xpra)  # from the script's #! line
    assert Path(report["www"], "index.html").is_file()
    backends = daemon.call("daemon.status")["displays"]
    assert backends["headless"] == {"available": True, "missing": []}
    assert set(backends) == {"native", "headless", "xpra"}


@needs_xpra
def test_launch_is_refused_at_once_naming_python3_pil(
        make_daemon: type[Daemon], python_without_pillow: str) -> None:
    d = make_daemon(config=f'xpra_python = "{python_without_pillow}"\n').start()
    create_and_build(d, "gui_app", APP)
    report = status_xpra(d)
    assert report["available"] is False
    assert [m["package"] for m in report["missing"]] == ["python3-pil"]
    assert python_without_pillow in report["missing"][0]["what"]

    with pytest.raises(Unsupported) as err:
        d.call("launch", {"app": APP, "display": "xpra"})
    assert "python3-pil" in err.value.message
    assert "sudo apt-get install python3-pil" in err.value.message
    assert err.value.data["packages"] == ["python3-pil"]
    assert d.call("jobs.list", {"kind": "launch"})["jobs"] == []  # no job, no session
    assert not (d.state / "sessions").exists() or not any((d.state / "sessions").iterdir())

    # The same through the kitplay command: exit code 8 (unsupported), the package named.
    cli = subprocess.run([sys.executable, "-m", "kitplay.cli_client", "--socket", str(d.socket),
                          "launch", APP, "--display", "xpra"], capture_output=True, text=True,
                         env=d.env, cwd=ROOT, timeout=60)
    assert cli.returncode == Unsupported.exit_code
    assert "python3-pil" in cli.stderr
    # Other displays still launch.
    job = d.call("launch", {"app": APP, "display": "headless",
                            "args": ["--exit-after", "0"]})["job"]
    assert d.wait_job(job["id"])["status"] == "succeeded"


def test_a_missing_interpreter_is_reported_not_raised(tmp_path: Path) -> None:
    report = check_xpra(str(tmp_path / "no-such-python"))
    assert report["available"] is False
    if shutil.which("xpra"):
        assert [m["package"] for m in report["missing"]] == ["python3-pil"]
        assert len(report["missing"][0]["what"]) < 300


def test_xpra_python_reads_the_shebang(tmp_path: Path) -> None:
    script = tmp_path / "xpra"
    script.write_text("#! /usr/bin/python3\nprint()\n")
    assert xpra_python(str(script)) == "/usr/bin/python3"
    script.write_text("#!/usr/bin/env -S python3 -s\nprint()\n")
    assert xpra_python(str(script)) == shutil.which("python3")
    script.write_text("print()\n")
    assert xpra_python(str(script)) is None
    assert xpra_python(str(tmp_path / "absent")) is None


def test_refusal_lists_every_missing_package_once() -> None:
    err = refusal({"missing": [
        {"what": "Xvfb (the X server of each session)", "package": "xvfb"},
        {"what": "Pillow for xpra's Python /usr/bin/python3", "package": "python3-pil"},
        {"what": "a working xpra", "package": "xpra"}, {"what": "x", "package": "xvfb"}]})
    assert err.code == Unsupported.code
    assert "`sudo apt-get install python3-pil xpra xvfb`" in err.message
    assert re.search(r"Xvfb.*\(package xvfb\)", err.message)
    assert err.data["packages"] == ["python3-pil", "xpra", "xvfb"]


def test_a_dangling_link_in_the_html5_client_names_its_package(tmp_path: Path) -> None:
    from kitplay.daemon.capabilities import _dangling_links

    www = tmp_path / "www"
    (www / "js" / "lib").mkdir(parents=True)
    (www / "index.html").write_text("<html></html>")
    (www / "js" / "lib" / "ok.js").write_text("")
    (www / "js" / "lib" / "same.js").symlink_to("ok.js")
    (www / "js" / "lib" / "gone.js").symlink_to("/usr/share/javascript/kitplay-none/gone.js")
    (www / "js" / "other.js").symlink_to(tmp_path / "nowhere.js")
    missing = _dangling_links(str(www))
    assert [m["package"] for m in missing] == ["xpra", "libjs-kitplay-none"]
    assert "js/lib/gone.js" in missing[1]["what"]
