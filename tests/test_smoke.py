from tests.helpers import Daemon, create_and_build


def test_create_build_launch(daemon: Daemon) -> None:
    name = create_and_build(daemon)
    job = daemon.call("launch", {"app": name, "args": ["--lines", "2"]})["job"]
    done = daemon.wait_job(job["id"])
    assert done["status"] == "succeeded"
    assert "line 2" in daemon.job_log(job["id"])
