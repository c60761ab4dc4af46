"""The OpenAPI 3.1 document: valid, derived from the registry, and true of the running bridge.

schemathesis fuzzes every operation of a real bridge in front of a real daemon (bounded: a
few dozen examples per operation) with all its checks: no server error, responses and status
codes as documented, invalid data rejected, undeclared methods answered 405 with Allow,
authentication not ignored.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
from kitplay.bridge.openapi import openapi_document
from kitplay.bridge.rest import rest_methods
from kitplay.daemon.protocol.errors import ERRORS
from kitplay.daemon.protocol.schemas import COMPONENTS
from openapi_spec_validator import validate

from tests.bridge_helpers import Bridge, bridge_fixture, make_bridge_fixture  # noqa: F401
from tests.helpers import Daemon, create_and_build, installed_command, short_tmpdir

# Two checks assume what is not true here; everything else is schemathesis's default:
# - the daemon checks more than JSON Schema can say (the app-name rule, version format, that a
#   workspace exists, the toolchain's layers): a schema-valid request may get a precise 400/422;
# - DELETE /jobs/{job_id} cancels a job (a route fixed by the front end); the record of the
#   cancelled job stays readable, so "deleted resource still available" does not apply.
SCHEMATHESIS_TOML = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "422", "429"]
"""


def test_document_is_valid_openapi_31() -> None:
    doc = openapi_document()
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer",
        "description": "The token from bridge.json, or a page session."}
    assert set(COMPONENTS) < set(doc["components"]["schemas"])
    assert "/stream/{job_id}" in doc["x-websockets"]


def test_every_operation_documents_its_errors() -> None:
    doc = openapi_document()
    for m in rest_methods():
        assert m.http is not None
        verb, path = m.http
        op = doc["paths"][path][verb.lower()]
        if m.http_media:  # the result's bytes themselves
            binary = {"schema": {"type": "string", "format": "binary"}}
            # The image, or (a file of another type) bytes as an attachment.
            assert op["responses"]["200"]["content"] == {
                m.http_media: binary, "application/octet-stream": binary}
        else:
            assert op["responses"]["200"]["content"]["application/json"]["schema"] == \
                m.result
        for status in ("400", "401", "403", "404", "429", "503"):
            assert status in op["responses"], (m.name, status)
        in_path = {p["name"] for p in op["parameters"] if p["in"] == "path"}
        assert in_path == set(path.replace("}", "{").split("{")[1::2])
        if verb == "POST":
            body = op["requestBody"]["content"]["application/json"]["schema"]
            assert set(body["properties"]) == {p.name for p in m.params}
            assert body["required"] == [p.name for p in m.params if p.required]
    refs = doc["components"]["responses"]
    assert refs["E429"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    codes = {c.http_status for c in ERRORS if c.http_status < 500} - {413}
    assert codes <= {int(k[1:]) for k in refs}


def test_real_responses_match_the_document(daemon: Daemon, bridge: Bridge) -> None:
    """Responses of the main routes validate against their documented schemas."""
    create_and_build(daemon, name="my_company.doc_app")
    doc = bridge.get("/api/openapi.json").json()
    job_id = daemon.call("jobs.list", {"limit": 1})["jobs"][0]["id"]

    def check(verb: str, path: str, concrete: str, status: int = 200, body: Any = None) -> None:
        r = bridge.http.request(verb, concrete, json=body)
        assert r.status_code == status, (concrete, r.text)
        resp = doc["paths"][path][verb.lower()]["responses"][str(status)]
        if "$ref" in resp:
            resp = doc["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
        # Refs (#/components/...) resolve against this standalone root.
        schema = {**resp["content"]["application/json"]["schema"],
                  "components": doc["components"]}
        jsonschema.Draft202012Validator(schema).validate(r.json())

    check("GET", "/daemon/status", "/api/daemon/status")
    check("GET", "/templates/list", "/api/v1/templates/list")
    check("GET", "/templates/get/{name}", "/api/templates/get/console_app")
    check("GET", "/jobs", "/api/jobs")
    check("GET", "/jobs/{job_id}", f"/api/jobs/{job_id}")
    check("GET", "/jobs/{job_id}/logs", f"/api/jobs/{job_id}/logs")
    check("GET", "/apps/list", "/api/apps/list")
    check("GET", "/sessions", "/api/sessions")
    check("GET", "/jobs/{job_id}", "/api/jobs/0nosuchjob", 404)
    check("POST", "/build", "/api/build", 400, {"clean": 1})


def test_schemathesis_finds_nothing(daemon: Daemon, make_bridge: Any) -> None:
    create_and_build(daemon, name="my_company.fuzzed_app")
    b = make_bridge(daemon, "--rate-limit", "100000", "--rate-burst", "100000",
                    "--anon-rate", "100000", "--anon-burst", "100000")
    work = short_tmpdir("st")  # schemathesis writes .hypothesis/ and reports here
    try:
        (work / "schemathesis.toml").write_text(SCHEMATHESIS_TOML)
        exe = installed_command("schemathesis") or installed_command("st")
        assert exe, "schemathesis is not installed (pip install -e .[test])"
        r = subprocess.run(
            [exe, "run", f"{b.url}/api/openapi.json", "--checks", "all",
             "--exclude-checks", "use_after_free",
             "-H", f"Authorization: Bearer {b.token}", "--max-examples", "25",
             "--seed", "20261126", "--workers", "1", "--no-color"],
            cwd=work, capture_output=True, text=True, timeout=600)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out[-8000:]
        assert f"Tested: {len(rest_methods())}" in out, out[-3000:]
        assert " passed" in out and "failures" not in out.split("SUMMARY")[-1], out[-3000:]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert Path(b.info_path).exists()  # the bridge is still up after the fuzzing
