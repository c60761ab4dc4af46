"""The builtin toolchain's ``package`` (and ``create``): what goes into an archive, and how
what they make is left.

An archive is made to be handed to others, so a symlink in an app (an app cloned from
someone else may hold one) never brings in a file from outside the app, such as the user's
own keys; the archive (and a created app) is made with the user's umask, as a terminal's ``zip`` (or
``cp``) would make it;
and a package that fails (a full disk) leaves no partial ``.tmp`` behind.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

from tests.helpers import Daemon
from tests.tmpfs import small_tmpfs


def _create(d: Daemon, name: str, workspace: Path | None = None) -> Path:
    params = {"template": "console_app", "name": name}
    if workspace is not None:
        params["workspace"] = str(workspace)
    job = d.call("templates.create", params)["job"]
    assert d.wait_job(job["id"])["status"] == "succeeded", d.job_log(job["id"])
    return (workspace or d.workspace) / "source" / "apps" / name


def test_an_archive_holds_the_app_only_and_is_made_with_the_users_umask(
        make_daemon: type[Daemon], umask_022: None, tmp_path: Path) -> None:
    d = make_daemon().start()
    app = _create(d, "my_co.pkg")
    for made in (app.parent.parent, app.parent, app):  # source/, source/apps/, the app
        assert stat.S_IMODE(made.stat().st_mode) == 0o755, made
    assert stat.S_IMODE((app / "app.py").stat().st_mode) & 0o022 == 0
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY\n")
    (app / "key").symlink_to(secret)
    (app / "notes.txt").write_text("mine\n")
    (app / "notes-link").symlink_to(app / "notes.txt")  # inside the app: kept
    job = d.call("package", {"app": "my_co.pkg"})["job"]
    done = d.wait_job(job["id"])
    assert done["status"] == "succeeded", d.job_log(job["id"])
    [archive] = done["result"]["archives"]
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        assert "my_co.pkg/key" not in names, names
        assert b"PRIVATE KEY" not in b"".join(z.read(n) for n in names)
        assert z.read("my_co.pkg/notes-link") == b"mine\n"
    assert "my_co.pkg/key" in d.job_log(job["id"])  # says what it left out, and why
    assert stat.S_IMODE(os.stat(archive).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(Path(archive).parent).st_mode) == 0o755


def test_a_package_that_fills_the_disk_leaves_no_temp_file(make_daemon: type[Daemon]) -> None:
    d = make_daemon()
    ws = d.base / "small"
    with small_tmpfs(ws, "256k"):
        d.workspace = ws
        d.start()
        app = _create(d, "my_co.big", ws)
        (app / "blob.bin").write_bytes(os.urandom(120_000))  # does not compress
        job = d.call("package", {"app": "my_co.big", "workspace": str(ws)})["job"]
        done = d.wait_job(job["id"])
        assert done["status"] == "failed", d.job_log(job["id"])
        packages = ws / "_build" / "packages"
        assert [p.name for p in packages.iterdir()] == [], list(packages.iterdir())
        assert d.call("daemon.status")["pid"] > 0
        d.stop()


def test_a_symlink_into_a_sibling_whose_name_starts_with_the_apps_is_left_out(
        daemon: Daemon) -> None:
    """``my_co.pkg`` and ``my_co.pkg_secrets`` side by side: the sibling's path starts with the
    app's as a string, but it is outside the app."""
    app = _create(daemon, "my_co.pkg")
    for sibling in ("my_co.pkg_secrets", "my_co.pkg2"):
        other = app.parent / sibling
        other.mkdir()
        (other / "token.txt").write_text(f"SIBLING SECRET {sibling}\n")
        (app / f"from-{sibling}").symlink_to(other / "token.txt")
    (app / "dir-link").symlink_to(app.parent / "my_co.pkg_secrets", target_is_directory=True)
    job = daemon.call("package", {"app": "my_co.pkg"})["job"]
    done = daemon.wait_job(job["id"])
    assert done["status"] == "succeeded", daemon.job_log(job["id"])
    [archive] = done["result"]["archives"]
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        assert not [n for n in names if "from-" in n or "dir-link" in n], names
        assert b"SIBLING SECRET" not in b"".join(z.read(n) for n in names)
        assert "my_co.pkg/app.py" in names
    log = daemon.job_log(job["id"])
    assert "left out my_co.pkg/from-my_co.pkg_secrets" in log, log
