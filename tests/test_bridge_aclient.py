"""``daemon.protocol.aclient``: the trio client the bridge uses, against a real daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from kitplay.daemon.protocol.aclient import DaemonLink, open_client
from kitplay.daemon.protocol.errors import DaemonUnreachable, InvalidParams, NotFound
from kitplay.daemon.protocol.framing import encode

from tests.helpers import Daemon, create_and_build, short_tmpdir

APP = "my_company.aclient_app"


async def test_concurrent_calls_share_one_connection(daemon: Daemon) -> None:
    """A slow jobs.wait and quick calls in flight together; answers matched by id."""
    create_and_build(daemon, name=APP)
    job = daemon.call("launch", {"app": APP, "args": ["--forever"]})["job"]
    order: list[str] = []
    with trio.fail_after(30):
        async with open_client(daemon.socket) as c:
            async with trio.open_nursery() as n:

                async def slow() -> None:
                    res = await c.call("jobs.wait", {"job_id": job["id"], "timeout_s": 0.5})
                    assert res["timed_out"] is True
                    order.append("wait")

                async def quick(i: int) -> None:
                    res = await c.call("jobs.get", {"job_id": job["id"]})
                    assert res["job"]["id"] == job["id"]
                    order.append(f"get{i}")

                n.start_soon(slow)
                await trio.lowlevel.checkpoint()
                for i in range(20):
                    n.start_soon(quick, i)
    assert order[-1] == "wait" and len(order) == 21
    daemon.call("jobs.cancel", {"job_id": job["id"], "grace_s": 5})


async def test_errors_are_the_protocol_classes(daemon: Daemon) -> None:
    async with open_client(daemon.socket) as c:
        with pytest.raises(NotFound) as nf:
            await c.call("jobs.get", {"job_id": "0nosuchjob"})
        assert nf.value.code == -32001 and nf.value.data == {"job_id": "0nosuchjob"}
        with pytest.raises(InvalidParams):
            await c.call("jobs.list", {"limit": "ten"})
        with pytest.raises(InvalidParams):  # not JSON at all: refused before sending
            await c.call("jobs.list", {"limit": float("nan")})
        assert (await c.call("jobs.list", {"limit": 1})) == {"jobs": []}


async def test_raw_calls_answer_the_daemons_json(daemon: Daemon) -> None:
    """``call_raw`` (the bridge's REST path): the result's JSON as written, never decoded;
    errors are still the protocol's classes; plain calls in flight beside it are unaffected."""
    create_and_build(daemon, name=APP)
    job = daemon.call("jobs.list", {"limit": 1})["jobs"][0]
    with trio.fail_after(30):
        async with open_client(daemon.socket) as c:
            raw = await c.call_raw("jobs.get", {"job_id": job["id"]})
            plain = await c.call("jobs.get", {"job_id": job["id"]})
            assert type(raw) is bytes and raw == encode(plain)
            assert not raw.endswith(b"\n") and raw.startswith(b'{"job":')
            with pytest.raises(NotFound):
                await c.call_raw("jobs.get", {"job_id": "0nosuchjob"})
            async with trio.open_nursery() as n:
                got: list[Any] = []

                async def both(i: int) -> None:
                    got.append(await c.call_raw("sessions.list"))
                    got.append(await c.call("sessions.list"))

                for i in range(10):
                    n.start_soon(both, i)
            assert sorted(map(type, got), key=str) == [bytes] * 10 + [dict] * 10
            async with trio.open_nursery() as n:
                link = DaemonLink(n, Path(daemon.socket))
                assert await link.call("jobs.get", {"job_id": job["id"]}, raw=True) == raw
                await link.aclose()


async def test_subscription_delivers_until_final(daemon: Daemon) -> None:
    create_and_build(daemon, name=APP)
    job = daemon.call("launch", {"app": APP, "args": ["--lines", "30"]})["job"]
    data = ""
    methods = []
    with trio.fail_after(30):
        async with open_client(daemon.socket) as c, c.subscribe(job["id"]) as sub:
            async for method, params in sub:
                methods.append(method)
                if method == "jobs.output":
                    data += params["data"]
            # The connection still serves calls after the subscription ended.
            assert (await c.call("jobs.get", {"job_id": job["id"]}))["job"]["status"] \
                == "succeeded"
    assert methods[-1] == "jobs.state" and sub.final
    assert data == daemon.job_log(job["id"])


async def test_leaving_a_subscription_early_unsubscribes(daemon: Daemon) -> None:
    create_and_build(daemon, name=APP)
    job = daemon.call("launch", {"app": APP, "args": ["--forever"]})["job"]
    with trio.fail_after(30):
        async with open_client(daemon.socket) as c:
            async with c.subscribe(job["id"]) as sub:
                await sub.__anext__()
                sid = sub.id
            with pytest.raises(NotFound):  # already gone
                await c.call("jobs.unsubscribe", {"subscription": sid})
    daemon.call("jobs.cancel", {"job_id": job["id"], "grace_s": 5})


async def test_unreachable_and_lost_connection(daemon: Daemon) -> None:
    empty = short_tmpdir()
    try:
        with pytest.raises(DaemonUnreachable) as info:
            async with open_client(empty / "none.sock"):
                pass
    finally:
        empty.rmdir()
    assert "no kitplay daemon is listening" in info.value.message
    create_and_build(daemon, name=APP)
    job = daemon.call("launch", {"app": APP, "args": ["--forever"]})["job"]
    with trio.fail_after(30):
        async with open_client(daemon.socket) as c:
            async with c.subscribe(job["id"]) as sub:
                await sub.__anext__()
                daemon.kill9()
                with pytest.raises(DaemonUnreachable):
                    async for _ in sub:
                        pass
            with pytest.raises(DaemonUnreachable):
                await c.call("daemon.status")


async def test_link_reconnects_after_a_daemon_restart(daemon: Daemon) -> None:
    with trio.fail_after(60):
        async with trio.open_nursery() as n:
            link = DaemonLink(n, Path(daemon.socket))
            first = (await link.call("daemon.status", idempotent=True))["pid"]
            daemon.stop()
            with pytest.raises(DaemonUnreachable):
                await link.call("daemon.status", idempotent=True)
            daemon.start()
            second = (await link.call("daemon.status", idempotent=True))["pid"]
            await link.aclose()
    assert first != second
