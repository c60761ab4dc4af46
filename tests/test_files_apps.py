"""Files and apps while jobs run, apps.delete and apps.clean on both toolchains, the files API
over REST through a real bridge, and ``kitplay files ls|cat|put|rm`` (issue 17).

Real daemon, real jobs (a build that waits for a file the test writes, a launched app that
runs until cancelled, the kit-app-template stand-in's ``repo.sh``), real bridge.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kitplay.daemon.protocol.errors import InvalidParams, InvalidState, KitplayError, NotFound

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.helpers import FIXTURES, ROOT, Daemon, create_and_build, wait_for, write_app
from tests.outside import Outside

APP = "my_company.busy_app"
APP_DIR = f"source/apps/{APP}"
WAIT_FOR_GO = ("import os, sys, time\nprint('waiting for go', flush=True)\n"
               "while not os.path.exists('go'):\n    time.sleep(0.02)\nprint('went')\n")


def error(d: Daemon, method: str, params: dict[str, Any]) -> KitplayError:
    with pytest.raises(KitplayError) as info:
        d.call(method, params)
    return info.value


def running(d: Daemon, job_id: str, marker: str) -> None:
    wait_for(lambda: marker in d.job_log(job_id), 30, f"job {job_id} to print {marker!r}")
    assert d.call("jobs.get", {"job_id": job_id})["job"]["status"] == "running"


# -- a write while a build runs -------------------------------------------------------------

def test_a_write_while_a_build_runs(daemon: Daemon) -> None:
    """Sources can be written while the app builds (the build reads the old or the new file,
    never a part of one); what the build itself writes cannot (one change would be lost)."""
    d = daemon
    app = write_app(d.workspace, APP, build=[["{python}", "-c", WAIT_FOR_GO]],
                    files={"app.py": "print('v1')\n"})
    (app / "__pycache__").mkdir()
    (app / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\x00pyc")
    job = d.call("build", {"app": APP})["job"]
    running(d, job["id"], "waiting for go")
    etag = d.call("files.read", {"path": f"{APP_DIR}/app.py"})["etag"]
    wrote = d.call("files.write", {"path": f"{APP_DIR}/app.py", "text": "print('v2')\n",
                                   "if_match": etag})
    assert (app / "app.py").read_text() == "print('v2')\n" and wrote["etag"] != etag
    d.call("files.write", {"path": f"{APP_DIR}/notes/todo.md", "text": "- ship\n"})
    for method, params in (
            ("files.write", {"path": f"{APP_DIR}/__pycache__/app.cpython-311.pyc", "text": "x"}),
            ("files.delete", {"path": f"{APP_DIR}/__pycache__/app.cpython-311.pyc"}),
            ("files.write", {"path": "_build/packages/x.zip", "text": "x"})):
        err = error(d, method, params)
        assert isinstance(err, InvalidState) and err.data["reason"] == "busy"
        assert err.data["jobs"] == [job["id"]] and f"kitplay jobs wait {job['id']}" in err.message
    for method, params in (("apps.clean", {"app": APP}),
                           ("apps.delete", {"app": APP, "confirm": APP})):
        err = error(d, method, params)
        assert isinstance(err, InvalidState) and err.data["jobs"] == [job["id"]]
        assert err.data["removes"] == [f"{APP_DIR}/__pycache__" if method == "apps.clean"
                                       else APP_DIR]  # what it would remove, said anyway
    assert (app / "__pycache__" / "app.cpython-311.pyc").read_bytes() == b"\x00pyc"
    (app / "go").write_text("")
    assert d.wait_job(job["id"])["status"] == "succeeded"
    # Once it ended, the build's own files are the user's to change again.
    d.call("files.delete", {"path": f"{APP_DIR}/__pycache__/app.cpython-311.pyc"})
    assert d.call("apps.clean", {"app": APP}) == {"app": APP,
                                                 "removed": [f"{APP_DIR}/__pycache__"]}


# -- apps.delete, apps.clean: builtin --------------------------------------------------------

def test_builtin_delete_says_what_it_removes_and_waits_for_the_apps_jobs(
        daemon: Daemon) -> None:
    d = daemon
    name = create_and_build(d, name="my_company.doomed")
    other = create_and_build(d, name="my_company.kept")
    pkg = d.call("package", {"app": name})["job"]
    archive = d.wait_job(pkg["id"])["result"]["archives"][0]
    assert Path(archive).name.startswith(f"{name}-")
    outside = Outside(d.base)
    try:
        err = error(d, "apps.delete", {"app": name})
        assert isinstance(err, InvalidParams) and err.data["param"] == "confirm"
        removes = [f"source/apps/{name}", f"_build/packages/{Path(archive).name}"]
        assert err.data["removes"] == removes and err.data["edits"] == []
        assert f"--confirm {name}" in err.message and "nothing was changed" in err.message
        err = error(d, "apps.delete", {"app": name, "confirm": other})
        assert isinstance(err, InvalidParams) and "does not name it" in err.message
        assert (d.workspace / "source" / "apps" / name / "app.py").exists()
        # A launch of it is running: refused, whatever the confirmation.
        launch = d.call("launch", {"app": name, "args": ["--forever"], "display": "headless"})[
            "job"]
        running(d, launch["id"], "Hello")
        err = error(d, "apps.delete", {"app": name, "confirm": name})
        assert isinstance(err, InvalidState) and err.data["jobs"] == [launch["id"]]
        # ... while the other app's files and jobs are free.
        assert d.call("apps.clean", {"app": other})["removed"] == [
            f"source/apps/{other}/__pycache__"]
        d.call("jobs.cancel", {"job_id": launch["id"], "grace_s": 5})
        d.wait_job(launch["id"])
        # apps.clean: the build's outputs and the package; the sources stay.
        cleaned = d.call("apps.clean", {"app": name})
        assert cleaned["removed"] == [f"source/apps/{name}/__pycache__",
                                      f"_build/packages/{Path(archive).name}"]
        assert not Path(archive).exists() and (d.workspace / "source/apps" / name).is_dir()
        assert d.call("apps.clean", {"app": name})["removed"] == []
        done = d.call("apps.delete", {"app": name, "confirm": name})
        assert done == {"app": name, "removed": [f"source/apps/{name}"], "edited": []}
        assert not (d.workspace / "source" / "apps" / name).exists()
        assert [a["name"] for a in d.call("apps.list")["apps"]] == [other]
        err = error(d, "apps.delete", {"app": name, "confirm": name})
        assert isinstance(err, NotFound) and other in err.message
        outside.unchanged()
    finally:
        outside.close()


def test_a_symlink_where_an_app_directory_should_be_is_no_app(daemon: Daemon) -> None:
    d = daemon
    outside = Outside(d.base)
    try:
        (d.workspace / "source" / "apps").mkdir(parents=True)
        (d.workspace / "source" / "apps" / "my_company.linked").symlink_to(outside.dir)
        err = error(d, "apps.delete", {"app": "my_company.linked"})
        assert isinstance(err, NotFound)  # a link is not an app's directory
        outside.unchanged()
    finally:
        outside.close()


# -- apps.delete, apps.clean: kit-app-template -----------------------------------------------

STANDIN = FIXTURES / "kit_app_template"
RELEASE = "_build/linux-x86_64/release"


@pytest.fixture
def kit(make_daemon: type[Daemon], tmp_path: Path) -> Daemon:
    ws = tmp_path / "kat"
    shutil.copytree(STANDIN, ws)
    (ws / ".omniverse_eula_accepted.txt").write_text("accepted by the test\n")
    return make_daemon(workspace=ws).start()


def job_ok(d: Daemon, method: str, params: dict[str, Any]) -> dict[str, Any]:
    job = d.call(method, params)["job"]
    done = d.wait_job(job["id"])
    assert done["status"] == "succeeded", d.job_log(job["id"])
    return done


def test_kit_app_delete_and_clean_follow_the_tools_layout(kit: Daemon) -> None:
    d, ws = kit, kit.workspace
    app, keep = "my_company.viewer", "my_company.editor"
    job_ok(d, "templates.create", {"template": "omni_usd_viewer", "name": app,
                                   "layers": ["omni_default_streaming"]})
    job_ok(d, "templates.create", {"template": "kit_base_editor", "name": keep})
    job_ok(d, "build", {})
    records = {a["name"]: a for a in d.call("apps.list")["apps"]}
    setups = [n for n, a in records.items()
              if a["type"] == "setup_extension" and a["parent"] == app]
    assert len(setups) == 2  # omni_usd_viewer_setup and omni_usd_viewer_messaging
    layer = f"{app}_streaming"
    sources = [f"source/apps/{app}.kit", f"source/apps/{layer}.kit",
               *[f"source/extensions/{s}" for s in setups], f"_kitplay/replay-{app}.toml",
               f"_kitplay/replay-{app}.before.json"]
    outputs = [f"{RELEASE}/{app}.kit.sh", f"{RELEASE}/{layer}.kit.sh",
               f"{RELEASE}/apps/{app}.kit", f"{RELEASE}/apps/{layer}.kit",
               *[f"{RELEASE}/exts/{s}" for s in setups]]
    # The app's files: its sources, and its build outputs marked.
    listed = {e["path"]: e for e in d.call("files.list", {"app": app})["entries"]}
    assert set(sources + outputs) <= set(listed)
    assert {p for p, e in listed.items() if e["build_output"]} == {
        p for p in listed if p.startswith("_build/")}
    assert not any(keep in p for p in listed)
    # The setup extension goes with its app, not alone.
    err = error(d, "apps.delete", {"app": setups[0]})
    assert isinstance(err, InvalidParams) and err.data["app"] == app
    # Writing a .kit file is refused only while a job of the workspace runs (none now).
    kit_text = d.call("files.read", {"path": f"source/apps/{app}.kit"})
    d.call("files.write", {"path": f"source/apps/{app}.kit", "text": kit_text["text"],
                           "if_match": kit_text["etag"]})
    # clean: the outputs only; a build brings them back.
    assert d.call("apps.clean", {"app": app}) == {"app": app, "removed": outputs}
    assert all((ws / s).exists() for s in sources)
    assert (ws / RELEASE / f"{keep}.kit.sh").exists()
    job_ok(d, "build", {})
    assert all((ws / o).exists() for o in outputs)
    # delete, said first: the files, and the lines and records naming the app elsewhere.
    err = error(d, "apps.delete", {"app": app})
    assert isinstance(err, InvalidParams)
    assert err.data["removes"] == sources + outputs
    edits = {e["file"]: e["what"] for e in err.data["edits"]}
    assert edits["premake5.lua"] == (f'define_app("{app}.kit"); '
                                     f'define_app("{layer}.kit")')
    assert edits["repo.toml"] == f'"${{root}}/source/apps/{app}.kit",'  # layers: not there
    assert edits["source/rendered_template_metadata.json"] == f"Application.omni_usd_viewer.{app}"
    launch = d.call("launch", {"app": layer, "display": "headless"})["job"]
    running(d, launch["id"], "app ready")
    err = error(d, "apps.delete", {"app": app, "confirm": app})
    assert isinstance(err, InvalidState) and err.data["jobs"] == [launch["id"]]
    d.call("jobs.cancel", {"job_id": launch["id"], "grace_s": 5})
    d.wait_job(launch["id"])
    done = d.call("apps.delete", {"app": app, "confirm": app})
    assert done["removed"] == sources + outputs and done["edited"] == err.data["edits"]
    assert not any((ws / p).exists() for p in sources + outputs)
    assert app not in (ws / "premake5.lua").read_text()
    assert app not in (ws / "repo.toml").read_text()
    meta = json.loads((ws / "source/rendered_template_metadata.json").read_text())
    assert "omni_usd_viewer" not in meta["Application"]
    assert keep in meta["Application"]["kit_base_editor"]
    assert [a["name"] for a in d.call("apps.list")["apps"] if a["parent"] is None] == [keep]
    # The workspace still builds, with the other app intact.
    job_ok(d, "build", {})
    assert (ws / RELEASE / f"{keep}.kit.sh").exists()
    assert not (ws / RELEASE / f"{app}.kit.sh").exists()


def test_kit_layer_delete_takes_only_the_layer(kit: Daemon) -> None:
    d, ws = kit, kit.workspace
    app = "my_company.viewer"
    layer = f"{app}_streaming"
    job_ok(d, "templates.create", {"template": "omni_usd_viewer", "name": app,
                                   "layers": ["omni_default_streaming"]})
    job_ok(d, "build", {})
    done = d.call("apps.delete", {"app": layer, "confirm": layer})
    assert done["removed"] == [f"source/apps/{layer}.kit", f"{RELEASE}/{layer}.kit.sh",
                               f"{RELEASE}/apps/{layer}.kit"]
    assert {e["file"]: e["what"] for e in done["edited"]} == {
        "premake5.lua": f'define_app("{layer}.kit")',
        "source/rendered_template_metadata.json":
            f"Application.omni_usd_viewer.{app}: layer omni_default_streaming"}
    assert (ws / "source" / "apps" / f"{app}.kit").exists()
    assert [a["name"] for a in d.call("apps.list")["apps"] if a["type"] != "setup_extension"] \
        == [app]
    job_ok(d, "build", {})
    assert (ws / RELEASE / f"{app}.kit.sh").exists()


def test_kit_tool_files_are_not_written_while_a_job_rewrites_them(kit: Daemon) -> None:
    d, ws = kit, kit.workspace
    job_ok(d, "templates.create", {"template": "kit_base_editor", "name": "my_company.ed"})
    # A build held at its start by repo.sh until the test writes "go".
    slow = ws / "repo.sh"
    original = slow.read_text()
    slow.write_text(original.replace(
        "#!/usr/bin/env bash\n",
        "#!/usr/bin/env bash\n"
        'if [ "$1" = build ]; then echo held; while [ ! -e go ]; do sleep 0.02; done; fi\n', 1))
    assert "held" in slow.read_text(), original[:200]
    job = d.call("build", {})["job"]
    running(d, job["id"], "held")
    for path in ("source/apps/my_company.ed.kit", "premake5.lua", "repo.toml",
                 "source/rendered_template_metadata.json", f"{RELEASE}/x.txt"):
        err = error(d, "files.write", {"path": path, "text": "x"})
        assert isinstance(err, InvalidState) and err.data["jobs"] == [job["id"]], path
    d.call("files.write", {"path": "README.md", "text": "# mine\n"})  # not a tool's file
    (ws / "go").write_text("")
    assert d.wait_job(job["id"])["status"] == "succeeded", d.job_log(job["id"])
    assert "define_app" in (ws / "premake5.lua").read_text()


# -- REST through the bridge -----------------------------------------------------------------

def test_each_files_and_apps_method_over_rest(daemon: Daemon, bridge: Bridge) -> None:
    d, b = daemon, bridge
    name = create_and_build(d, name="my_company.rest_app")
    base = f"source/apps/{name}"
    outside = Outside(d.base)
    try:
        listed = b.ok("GET", f"/api/files/list?app={name}")
        assert f"{base}/app.py" in [e["path"] for e in listed["entries"]]
        r = b.get("/api/v1/files/list", params={"path": "source/apps"})
        assert r.status_code == 200 and r.json()["root"] == str(d.workspace)
        got = b.get("/api/files/read", params={"path": f"{base}/app.py"}).json()
        wrote = b.ok("POST", "/api/files/write", {"path": f"{base}/app.py",
                                                  "text": got["text"] + "# edited\n",
                                                  "if_match": got["etag"]})
        assert (d.workspace / base / "app.py").read_text().endswith("# edited\n")
        stale = b.post("/api/files/write", {"path": f"{base}/app.py", "text": "x",
                                            "if_match": got["etag"]})
        assert stale.status_code == 409
        assert stale.json()["error"]["data"]["etag"] == wrote["etag"]
        b.ok("POST", "/api/files/write", {"path": f"{base}/data.bin", "text": "\u00ff"})
        (d.workspace / base / "raw.bin").write_bytes(b"\xff\xfe")
        r = b.get("/api/files/read", params={"path": f"{base}/raw.bin"})
        assert r.status_code == 422 and r.json()["error"]["code"] == -32011
        r = b.get("/api/files/read", params={"path": f"{base}/raw.bin", "binary": "true"})
        assert base64.b64decode(r.json()["data_base64"]) == b"\xff\xfe"
        # The query string is decoded once, by HTTP: %2F is "/", %252F a literal "%2F".
        for query, status, reason in (
                (f"path={base}%2F..%2F..%2F..%2F..%2Foutside%2Fsecret.txt", 400, "traversal"),
                ("path=%2Fetc%2Fpasswd", 400, "absolute"),
                ("path=%252e%252e%252Foutside%252Fsecret.txt", 404, "not_found"),
                ("path=..%5Coutside%5Csecret.txt", 404, "not_found"),
                ("path=%C0%AE%C0%AE%2Foutside%2Fsecret.txt", 404, "not_found")):
            r = b.get(f"/api/files/read?{query}")
            assert r.status_code == status, (query, r.text)
            assert r.json()["error"]["data"]["reason"] == reason, (query, r.text)
        (d.workspace / base / "out").symlink_to(outside.dir)
        r = b.post("/api/files/write", {"path": f"{base}/out/x.txt", "text": "x"})
        assert r.status_code == 400 and r.json()["error"]["data"]["reason"] == "symlink"
        assert b.ok("POST", "/api/files/delete", {"path": f"{base}/out"})["deleted"] is True
        assert b.ok("POST", "/api/files/delete", {"path": f"{base}/data.bin"}) == {
            "path": f"{base}/data.bin", "deleted": True}
        assert b.ok("POST", "/api/apps/clean", {"app": name})["removed"] == [
            f"{base}/__pycache__"]
        r = b.post("/api/apps/delete", {"app": name})
        assert r.status_code == 400 and r.json()["error"]["data"]["removes"] == [base]
        assert b.ok("POST", "/api/apps/delete", {"app": name, "confirm": name})["removed"] == [
            base]
        assert not (d.workspace / base).exists()
        outside.unchanged()
    finally:
        outside.close()


# -- the CLI ---------------------------------------------------------------------------------

def kitplay(d: Daemon, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[
        bytes]:
    env = {**os.environ, "KITPLAY_SOCKET": str(d.socket),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "kitplay.cli_client", *args], env=env,
                          input=stdin if stdin is not None else b"", capture_output=True,
                          timeout=60)


def test_files_commands(daemon: Daemon, tmp_path: Path) -> None:
    d = daemon
    name = create_and_build(d, name="my_company.cli_app")
    base = f"source/apps/{name}"
    text = "print('from stdin')\n# no newline at the end"
    r = kitplay(d, "files", "put", f"{base}/a.py", stdin=text.encode())
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().startswith(f"wrote {base}/a.py ({len(text)} bytes, etag ")
    r = kitplay(d, "files", "cat", f"{base}/a.py")
    assert r.returncode == 0 and r.stdout == text.encode()  # the bytes, nothing added
    local = tmp_path / "local.py"
    local.write_text("print('from a file')\n")
    assert kitplay(d, "files", "put", f"{base}/b.py", "--from", str(local)).returncode == 0
    assert (d.workspace / base / "b.py").read_text() == "print('from a file')\n"
    local.write_bytes(b"\xff not text")
    r = kitplay(d, "files", "put", f"{base}/c.py", "--from", str(local))
    assert r.returncode == 2 and b"not UTF-8 text" in r.stderr
    assert not (d.workspace / base / "c.py").exists()
    # A name that looks like an option, and one with a newline, by --path.
    assert kitplay(d, "files", "put", "--path", f"{base}/-rf", "--text", "dash").returncode == 0
    assert kitplay(d, "files", "cat", "--path", f"{base}/-rf").stdout == b"dash"
    assert kitplay(d, "files", "put", "--path", f"{base}/two\nlines", "--text", "nl"
                   ).returncode == 0
    r = kitplay(d, "files", "ls", "--app", name)
    out = r.stdout.decode()
    assert r.returncode == 0 and "KIND" in out and f"{base}/a.py" in out
    assert f"{base}/two\\nlines" in out  # one line per entry: control characters escaped
    assert "dir*" in out and "(* build output)" in out
    (d.workspace / base / "logo.bin").write_bytes(b"\x89PNG\x00\xff")
    r = kitplay(d, "files", "cat", f"{base}/logo.bin")
    assert r.returncode == 11 and b"not UTF-8 text" in r.stderr
    assert kitplay(d, "files", "cat", f"{base}/logo.bin", "--binary").stdout == \
        b"\x89PNG\x00\xff"
    r = kitplay(d, "files", "cat", "../outside")
    assert r.returncode == 2 and b"contains '..'" in r.stderr
    r = kitplay(d, "files", "rm", f"{base}/a.py")
    assert r.returncode == 0 and r.stdout.decode().strip() == f"deleted {base}/a.py"
    r = kitplay(d, "files", "rm", f"{base}/a.py")
    assert r.returncode == 4
    r = kitplay(d, "apps", "delete", name)
    assert r.returncode == 2 and f"--confirm {name}".encode() in r.stderr
    r = kitplay(d, "apps", "delete", name, "--confirm", name)
    assert r.returncode == 0 and r.stdout.decode().strip() == f"removed {base}"
