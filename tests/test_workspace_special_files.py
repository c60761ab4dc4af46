"""A hostile workspace's special files: the daemon reads none of them as text, and keeps
serving.

A kit-app-template checkout is often a clone of someone else's repository; git keeps symlinks,
so ``tools/VERSION.md`` may point at ``/dev/zero`` or a named pipe.  ``daemon.status`` and
``templates.list`` report versions read from such files; a read that blocks on a pipe (or never
ends on a device) would stop every client of the daemon, so only regular files are read, and
only their first bytes.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

from kitplay.daemon.protocol.client import Client
from kitplay.daemon.toolchains.kit import EULA_FILE

from tests.helpers import FIXTURES

STANDIN = FIXTURES / "kit_app_template"


def test_a_pipe_in_a_checkout_does_not_stop_the_daemon(make_daemon: Any, tmp_path: Path) -> None:
    ws = tmp_path / "kat"
    shutil.copytree(STANDIN, ws)
    (ws / EULA_FILE).write_text("accepted by the test\n")
    fifo = ws / "tools" / "VERSION.md"
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo, 0o600)
    d = make_daemon().start()
    answers: list[Any] = []

    def status_of_the_checkout() -> None:
        try:
            with Client.connect(d.socket, timeout=20) as c:
                answers.append(c.call("daemon.status", {"workspace": str(ws)}))
        except Exception as e:
            answers.append(e)

    t = threading.Thread(target=status_of_the_checkout, daemon=True)
    t.start()
    try:
        t.join(10)
        # Another client, meanwhile, is served.
        with Client.connect(d.socket, timeout=5) as c:
            assert c.call("jobs.list")["jobs"] == []
        assert not t.is_alive(), "daemon.status blocked on a named pipe in the workspace"
        [status] = answers
        assert not isinstance(status, Exception), status
        assert status["toolchain"]["kind"] == "kit-app-template"
        assert status["toolchain"]["kit_version"]  # from kit-sdk.packman.xml instead
    finally:
        if t.is_alive():  # unblock the daemon so that it can stop
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
            t.join(15)
        d.stop()
