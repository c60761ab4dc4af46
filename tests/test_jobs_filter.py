"""jobs.list by app and by page (``app``, ``offset``): what the playground's jobs panel asks.

A real daemon, real jobs: two hand-made apps launched a few times each, one of them created
from a template, so the app filter must also find the create job (whose parameter is
``name``, not ``app``).
"""

from __future__ import annotations

import pytest
from kitplay.daemon.protocol.errors import InvalidParams

from tests.helpers import Daemon, write_app

A, B = "my_company.alpha", "my_company.beta"


def run(d: Daemon, method: str, params: dict[str, object]) -> str:
    job = d.call(method, params)["job"]
    assert d.wait_job(job["id"])["status"] == "succeeded", d.job_log(job["id"])
    return str(job["id"])


def test_filter_by_app_and_page_through(daemon: Daemon) -> None:
    created = run(daemon, "templates.create", {"template": "console_app", "name": A})
    write_app(daemon.workspace, B)
    a_runs = [run(daemon, "launch", {"app": A, "display": "headless", "args": ["--lines", "1"]})
              for _ in range(3)]
    b_runs = [run(daemon, "launch", {"app": B, "display": "headless"}) for _ in range(2)]

    newest_first = [*reversed(a_runs), created]
    got = daemon.call("jobs.list", {"app": A})
    assert [j["id"] for j in got["jobs"]] == newest_first
    assert "total" not in got  # the whole list: nothing cut
    assert [j["id"] for j in daemon.call("jobs.list", {"app": B})["jobs"]] == b_runs[::-1]
    assert daemon.call("jobs.list", {"app": A, "kind": "create"})["jobs"][0]["id"] == created
    assert daemon.call("jobs.list", {"app": "my_company.nobody"})["jobs"] == []

    # Pages of two: the total counts this app's jobs only, and the pages do not overlap.
    first = daemon.call("jobs.list", {"app": A, "limit": 2})
    second = daemon.call("jobs.list", {"app": A, "limit": 2, "offset": 2})
    assert first["total"] == 4
    assert [j["id"] for j in first["jobs"] + second["jobs"]] == newest_first
    assert daemon.call("jobs.list", {"app": A, "limit": 2, "offset": 4})["jobs"] == []
    # Without an app, offset pages through every job.
    everything = [j["id"] for j in daemon.call("jobs.list", {})["jobs"]]
    assert [j["id"] for j in daemon.call("jobs.list", {"offset": 1, "limit": 3})["jobs"]] == \
        everything[1:4]


@pytest.mark.parametrize("params", [{"app": "../etc"}, {"app": "Alpha"}, {"offset": -1},
                                    {"offset": "2"}])
def test_bad_filters_are_refused_by_name(daemon: Daemon, params: dict[str, object]) -> None:
    with pytest.raises(InvalidParams) as info:
        daemon.call("jobs.list", params)
    assert next(iter(params)) in str(info.value)
