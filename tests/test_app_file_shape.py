"""A malformed ``kitapp.toml`` (valid TOML, wrong shape) gets an error naming the file and the
key, with the toolchain-failure code, never a "kitplayd internal error, please report it";
the daemon serves on and still lists the app."""

from __future__ import annotations

import pytest
from kitplay.daemon.protocol.errors import ToolchainError

from .helpers import Daemon

HEAD = '[app]\nname = "bad"\ndisplay_name = "Bad"\nversion = "0.1.0"\ntemplate = "t"\n'
GOOD_LAUNCH = '[launch]\nargv = ["{python}", "-c", "pass"]\n'

CASES = [  # (file body, method, the key the error must name)
    ("build = 1\n" + HEAD + GOOD_LAUNCH, "build", "build"),
    (HEAD + "[build]\nsteps = 3\n" + GOOD_LAUNCH, "build", "build.steps"),
    (HEAD + '[[build.steps]]\nname = "x"\nargv = "python"\n' + GOOD_LAUNCH, "build",
     "build.steps[0].argv"),
    (HEAD + '[[build.steps]]\nargv = ["true"]\n' + GOOD_LAUNCH, "build", "build.steps[0].name"),
    ('launch = "run"\n' + HEAD, "launch", "launch"),
    (HEAD + "[launch]\nargv = [1, 2]\n", "launch", "launch.argv"),
    (HEAD + "[launch]\nneeds_display = true\n", "launch", "launch.argv"),
    (HEAD, "launch", "launch.argv"),
    ('app = "bad"\n' + GOOD_LAUNCH, "launch", "app"),
    (HEAD + GOOD_LAUNCH + "[test]\nargv = []\n", "test", "test.argv"),
]


@pytest.mark.parametrize(("body", "method", "key"), CASES)
def test_a_malformed_app_file_is_named_with_its_key(daemon: Daemon, body: str, method: str,
                                                     key: str) -> None:
    app = daemon.workspace / "source" / "apps" / "my.bad"
    app.mkdir(parents=True)
    (app / "kitapp.toml").write_text(body)
    with daemon.client() as c, pytest.raises(ToolchainError) as err:
        c.call(method, {"app": "my.bad"})
    message = err.value.message
    assert str(app / "kitapp.toml") in message and f"'{key}'" in message, message
    assert "internal error" not in message
    assert [a["name"] for a in daemon.call("apps.list")["apps"]] == ["my.bad"]
    assert "Traceback" not in daemon.log()
