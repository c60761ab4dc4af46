"""``jobs.cancel`` honours the caller's ``grace_s``, shorter or longer than the daemon's default
(``cancel_grace_s``), between SIGTERM and SIGKILL."""

from __future__ import annotations

from tests.helpers import Daemon, wait_for, write_app

# Ignores SIGTERM: only SIGKILL ends it.
STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('up', flush=True); time.sleep(600)")
# On SIGTERM, tidies up for 2 s (20 ticks of 0.1 s), then exits 0.
TIDY = """
import signal, sys, time
def term(*_):
    print('got TERM', flush=True)
    for i in range(1, 21):
        time.sleep(0.1)
        print(f'tick {i}', flush=True)
    print('clean exit', flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
print('up', flush=True)
time.sleep(600)
"""


def _launch(d: Daemon, name: str, code: str) -> str:
    write_app(d.workspace, name, launch=["{python}", "-c", code])
    job_id: str = d.call("launch", {"app": name, "display": "headless"})["job"]["id"]
    wait_for(lambda: "up\n" in d.job_log(job_id), 30, f"{name} up")
    return job_id


def test_a_shorter_grace_than_the_default(make_daemon: type[Daemon]) -> None:
    d = make_daemon(config="cancel_grace_s = 600.0\n").start()
    job_id = _launch(d, "t.stubborn", STUBBORN)
    # The call returns once the job ended: with the default it would wait ten minutes (and
    # the client's 30-second timeout would fail this test).
    done = d.call("jobs.cancel", {"job_id": job_id, "grace_s": 0.5})["job"]
    assert done["status"] == "cancelled", done


def test_a_longer_grace_than_the_default(make_daemon: type[Daemon]) -> None:
    d = make_daemon(config="cancel_grace_s = 0.2\n").start()
    job_id = _launch(d, "t.tidy", TIDY)
    done = d.call("jobs.cancel", {"job_id": job_id, "grace_s": 25})["job"]
    log = d.job_log(job_id)
    # Killed after the default 0.2 s, it would never have reached its last tick.
    assert "got TERM\n" in log and "tick 20\nclean exit\n" in log, log
    assert done["status"] == "cancelled" and done["exit_code"] == 0, done
