"""The API documents as client generators meet them, against a real bridge and daemon.

- every array in ``rpc.discover`` and in the OpenAPI document says what it holds (``items``):
  generators drop a response type otherwise (openapi-python-client: "type array must have
  items or prefixItems defined");
- ``GET /api/openapi.json`` answers without a credential (it holds no secret; generators fetch
  it by URL), still behind the Host check and the anonymous rate limit, and without any CORS
  header; a wrong credential is still refused;
- a job-creating POST answers 200 with the job's record (API v1 keeps its status: generated
  clients parse the documented 200) and ``Location`` naming the record;
- openapi-python-client (the [test] extra) generates a client from the URL with no warning,
  and that client, imported, calls the real bridge.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from kitplay.bridge.openapi import openapi_document
from kitplay.daemon.protocol.registry import METHODS

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.helpers import Daemon, create_and_build, installed_command


def _arrays_without_items(node: Any, path: str = "") -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        t = node.get("type")
        if (t == "array" or (isinstance(t, list) and "array" in t)) and "items" not in node \
                and "prefixItems" not in node:
            out.append(path or "/")
        for k, v in node.items():
            out += _arrays_without_items(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _arrays_without_items(v, f"{path}/{i}")
    return out


def test_every_array_in_both_documents_has_items(daemon: Daemon) -> None:
    discover = daemon.call("rpc.discover")
    assert _arrays_without_items(discover) == []
    assert _arrays_without_items(openapi_document()) == []
    # The walk finds what it looks for.
    assert _arrays_without_items({"a": {"type": ["array", "null"]}}) == ["/a"]


def test_the_document_needs_no_credential_but_keeps_the_host_rule(daemon: Daemon,
                                                                  make_bridge: Any) -> None:
    b = make_bridge(daemon, "--anon-rate", "0.001", "--anon-burst", "4")
    with httpx.Client(base_url=b.url, timeout=30) as anon:
        for path in ("/api/openapi.json", "/api/v1/openapi.json"):
            r = anon.get(path)
            assert r.status_code == 200 and r.json() == openapi_document()
            assert not any(h.lower().startswith("access-control-") for h in r.headers)
        assert anon.get("/api/jobs").status_code == 401  # the API itself still needs one
        r = anon.get("/api/openapi.json", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401  # a wrong credential is refused here too
        # The anonymous budget (4 here) is spent: the document waits like any other.
        r = anon.get("/api/openapi.json")
        assert r.status_code == 429 and "Retry-After" in r.headers
        # Another Host (a DNS name rebound to 127.0.0.1) is refused before anything else.
        r = anon.get("/api/openapi.json", headers={"Host": f"evil.example:{b.port}"})
        assert r.status_code == 403
        r = anon.post("/api/openapi.json", headers={"Authorization": f"Bearer {b.token}"})
        assert r.status_code == 405
        r = anon.get("/api/openapi.json", headers={"Authorization": f"Bearer {b.token}"})
        assert r.status_code == 200  # with the token: the user's own budget


def test_job_creating_posts_answer_200_with_location(daemon: Daemon, bridge: Bridge) -> None:
    name = create_and_build(daemon, name="my_company.located")
    doc = openapi_document()
    for m in METHODS.values():
        if m.http is None or m.http[0] != "POST":
            continue
        resp = doc["paths"][m.http[1]]["post"]["responses"]["200"]
        if "job" in m.result.get("properties", {}):
            # Required where every answer is a job (not templates.create: dry_run starts none).
            want = "job" in m.result.get("required", [])
            assert resp["headers"]["Location"]["required"] is want, m.name
        else:
            assert "headers" not in resp, m.name
    r = bridge.http.post("/api/launch", json={"app": name, "display": "headless"})
    assert r.status_code == 200
    job = r.json()["job"]
    assert r.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    got = bridge.http.get(r.headers["Location"])
    assert got.status_code == 200 and got.json()["job"]["id"] == job["id"]
    assert "Location" not in bridge.http.get("/api/jobs").headers
    dry = bridge.http.post("/api/templates/create", json={
        "template": "console_app", "name": "my_company.dry", "dry_run": True})
    if dry.status_code == 200:  # builtin workspaces may refuse a dry run (no replay file)
        assert "Location" not in dry.headers and "job" not in dry.json()


def test_openapi_python_client_generates_with_no_warning_and_works(
        daemon: Daemon, bridge: Bridge, tmp_path: Path) -> None:
    exe = installed_command("openapi-python-client")
    assert exe, "openapi-python-client is not installed (pip install -e '.[test]')"
    # ruff (the generator's formatting hook) beside it, as a venv has both.
    env = {**os.environ, "PATH": f"{Path(exe).parent}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run([exe, "generate", "--url", f"{bridge.url}/api/openapi.json",
                        "--meta", "none", "--output-path", str(tmp_path / "kitplay_api")],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "warning" not in out.lower() and "error" not in out.lower(), out
    # The generated package, imported and used against the real bridge.
    create_and_build(daemon, name="my_company.generated")
    sys.path.insert(0, str(tmp_path))
    try:
        client_mod = importlib.import_module("kitplay_api.client")
        status_api = importlib.import_module("kitplay_api.api.daemon.daemon_status")
        build_api = importlib.import_module("kitplay_api.api.build.build")
        get_api = importlib.import_module("kitplay_api.api.jobs.jobs_get")
        discover_api = importlib.import_module("kitplay_api.api.rpc.rpc_discover")
        body_mod = importlib.import_module("kitplay_api.models.build_body")
        with client_mod.AuthenticatedClient(base_url=f"{bridge.url}/api/v1",
                                            token=bridge.token) as client:
            status = status_api.sync(client=client)
            assert status.pid == daemon.call("daemon.status")["pid"]
            # The rpc.discover response is typed (its methods array has items): parsed, not lost.
            discover = discover_api.sync(client=client)
            assert [m.name for m in discover.methods] == list(METHODS)
            built = build_api.sync_detailed(client=client,
                                            body=body_mod.BuildBody(app="my_company.generated"))
            assert built.status_code == 200 and built.headers["Location"].endswith(
                built.parsed.job.id)
            again = get_api.sync(client=client, job_id=built.parsed.job.id)
            assert again.job.kind.value == "build"
    finally:
        sys.path.remove(str(tmp_path))
        for mod in [m for m in sys.modules if m == "kitplay_api" or m.startswith("kitplay_api.")]:
            del sys.modules[mod]
