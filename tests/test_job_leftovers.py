"""What a job leaves in the state directory once it has ended: its log only.

A step fed on stdin (kit-app-template's ``template replay`` answers its prompts from a file)
gets a ``logs/<id>.stdin`` file; log retention removes ``.log`` and ``.exit`` only, so a
``.stdin`` left there would stay for good, one per create.  The monitor's exit status
(``.exit``) is removed once the job's end is recorded in the database.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kitplay.daemon.toolchains.kit import EULA_FILE

from tests.helpers import FIXTURES, Daemon


def test_an_ended_job_leaves_no_stdin_file(make_daemon: type[Daemon], tmp_path: Path) -> None:
    ws = tmp_path / "kat"
    shutil.copytree(FIXTURES / "kit_app_template", ws)
    (ws / EULA_FILE).write_text("accepted by the test\n")
    d = make_daemon(workspace=ws).start()
    job = d.call("templates.create", {"template": "kit_base_editor",
                                      "name": "my_company.ed"})["job"]
    assert d.wait_job(job["id"])["status"] == "succeeded", d.job_log(job["id"])
    left = sorted(p.name for p in (d.state / "logs").iterdir())
    assert left == [f"{job['id']}.log"], left
