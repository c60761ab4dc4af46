"""The files API against hostile input, through a real daemon's socket (issue 17).

Every test works in a real workspace on disk beside an ``outside`` directory holding a secret;
each hostile call must fail with a precise error (its code and ``data.reason``), and the
``outside`` directory must be exactly as it was: nothing read out of it, nothing written into
it (``Outside.unchanged``).  Calls that could block (a named pipe) run under a client timeout,
and the daemon is asked something else meanwhile.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kitplay.daemon.protocol.client import Client
from kitplay.daemon.protocol.errors import (
    FileTooLarge,
    InvalidParams,
    InvalidState,
    KitplayError,
    MessageTooLarge,
    NotFound,
    NotText,
)
from kitplay.daemon.workspace_files import BINARY_CAP, TEXT_CAP

from tests.helpers import Daemon, raw_exchange, short_tmpdir, write_app
from tests.local_user import Attacker, attacker_fixture  # noqa: F401
from tests.outside import Outside

APP = "my_company.files_app"
APP_DIR = f"source/apps/{APP}"


@pytest.fixture
def ws(daemon: Daemon) -> Iterator[tuple[Daemon, Outside]]:
    write_app(daemon.workspace, APP, files={"app.py": "print('hello')\n"})
    outside = Outside(daemon.base)
    try:
        yield daemon, outside
        outside.unchanged()
    finally:
        outside.close()


def refused(d: Daemon, method: str, params: dict[str, Any],
            cls: type[KitplayError] = InvalidParams, reason: str | None = None) -> KitplayError:
    with pytest.raises(KitplayError) as info:
        with Client.connect(d.socket, timeout=15) as c:  # a blocked call fails, never hangs
            c.call(method, params)
    err = info.value
    assert type(err) is cls, (err.code, err.message, err.data)
    if reason is not None:
        assert err.data["reason"] == reason, (err.message, err.data)
    return err


# -- paths ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, reason", [
    ("../outside/secret.txt", "traversal"),
    (f"{APP_DIR}/../../../../outside/secret.txt", "traversal"),
    ("source/..", "traversal"),
    ("/etc/passwd", "absolute"),
    ("//etc/passwd", "absolute"),
    ("", "empty"),
    (".", "empty"),
    ("x" * 256, "too_long"),
    ("a/" * 2100 + "b", "too_long"),
    (f"{APP_DIR}/", "directory"),
])
def test_paths_that_leave_or_name_nothing_are_refused(ws: tuple[Daemon, Outside], path: str,
                                                      reason: str) -> None:
    d, _ = ws
    for method, params in (("files.read", {}), ("files.write", {"text": "x"}),
                           ("files.delete", {})):
        refused(d, method, {"path": path, **params}, InvalidParams, reason)
    if reason in ("traversal", "absolute", "too_long"):
        refused(d, "files.list", {"path": path}, InvalidParams, reason)


def test_encoded_and_look_alike_traversal_stays_a_plain_name(ws: tuple[Daemon, Outside]) -> None:
    """The daemon decodes nothing: %2e%2e, a backslash or a look-alike dot is a file name."""
    d, _ = ws
    for path in ("%2e%2e/outside/secret.txt", "\uff0e\uff0e/outside/secret.txt",
                 "\u2024\u2024/secret.txt", "..%2f/outside/secret.txt", "%2e%2e%2f/x"):
        refused(d, "files.read", {"path": path}, NotFound, "not_found")
        refused(d, "files.write", {"path": path, "text": "x"}, NotFound, "not_found")
    # One name is one file of the workspace, named exactly so.
    for name in ("%252e%252e%252f", "..\\outside\\secret.txt", "..%2foutside", "...", "..."):
        d.call("files.write", {"path": name, "text": "inside"})
        assert (d.workspace / name).read_text() == "inside"
        assert d.call("files.read", {"path": name})["text"] == "inside"
    d.call("files.write", {"path": f"{APP_DIR}/..%2f..%2fx", "text": "inside"})
    assert (d.workspace / APP_DIR / "..%2f..%2fx").read_text() == "inside"


def test_nul_and_lone_surrogates_are_refused_before_any_lookup(
        ws: tuple[Daemon, Outside]) -> None:
    d, _ = ws
    err = refused(d, "files.read", {"path": f"{APP_DIR}/app.py\x00.txt"})
    assert "NUL" in err.message and err.data["param"] == "path"
    err = refused(d, "files.write", {"path": f"{APP_DIR}/n.txt", "text": "a\x00b"})
    assert err.data["param"] == "text"
    raw = ('{"jsonrpc":"2.0","id":1,"method":"files.write","params":{"path":"'
           + APP_DIR + '/s.txt","text":"\\ud800"}}\n').encode()
    [answer] = raw_exchange(d.socket, raw)
    assert answer["error"]["code"] == InvalidParams.code
    assert "surrogate" in answer["error"]["message"]
    assert not (d.workspace / APP_DIR / "n.txt").exists()
    assert not (d.workspace / APP_DIR / "s.txt").exists()


# -- symlinks ---------------------------------------------------------------------------------

def test_symlinks_out_of_the_workspace_are_never_followed(ws: tuple[Daemon, Outside]) -> None:
    d, outside = ws
    app = d.workspace / APP_DIR
    (app / "rel.txt").symlink_to(Path("../../../../outside/secret.txt"))
    (app / "abs.txt").symlink_to(outside.secret)
    (app / "dangling.txt").symlink_to(outside.dir / "new.txt")
    for name in ("rel.txt", "abs.txt", "dangling.txt"):
        path = f"{APP_DIR}/{name}"
        err = refused(d, "files.read", {"path": path}, InvalidParams, "symlink")
        assert err.data["target"] == os.readlink(app / name)
        assert "never follows symlinks" in err.message
        refused(d, "files.read", {"path": path, "binary": True}, InvalidParams, "symlink")
        refused(d, "files.write", {"path": path, "text": "pwned"}, InvalidParams, "symlink")
        # Deleting a link removes the link, never what it points to.
        assert d.call("files.delete", {"path": path}) == {"path": path, "deleted": True}
        assert not os.path.lexists(app / name)
    assert not (outside.dir / "new.txt").exists()  # (the fixture checks the rest)


def test_a_symlinked_parent_directory_is_never_walked_through(
        ws: tuple[Daemon, Outside]) -> None:
    d, outside = ws
    app = d.workspace / APP_DIR
    (app / "out").symlink_to(outside.dir)
    (app / "sub").symlink_to(outside.dir / "sub")
    (d.workspace / "source" / "link_apps").symlink_to(d.workspace / "source" / "apps")
    for path in (f"{APP_DIR}/out/secret.txt", f"{APP_DIR}/sub/keep.txt",
                 f"{APP_DIR}/out/sub/new.txt", f"source/link_apps/{APP}/app.py"):
        err = refused(d, "files.read", {"path": path}, InvalidParams, "symlink")
        assert err.data["path"] in (f"{APP_DIR}/out", f"{APP_DIR}/sub", "source/link_apps")
        refused(d, "files.write", {"path": path, "text": "pwned"}, InvalidParams, "symlink")
        refused(d, "files.delete", {"path": path}, InvalidParams, "symlink")
    refused(d, "files.list", {"path": f"{APP_DIR}/out"}, InvalidParams, "symlink")
    # A listing shows the links as links and does not go through them.
    listed = {e["path"]: e for e in d.call("files.list", {"app": APP})["entries"]}
    assert listed[f"{APP_DIR}/out"]["kind"] == "symlink"
    assert not any(p.startswith(f"{APP_DIR}/out/") for p in listed)
    whole = [e["path"] for e in d.call("files.list")["entries"]]
    assert "source/link_apps" in whole and not any(p.startswith("source/link_apps/")
                                                   for p in whole)
    assert not (outside.dir / "sub" / "new.txt").exists()


def test_symlinks_into_the_workspace_are_refused_too_and_say_where_they_lead(
        ws: tuple[Daemon, Outside]) -> None:
    d, _ = ws
    app = d.workspace / APP_DIR
    (app / "alias.py").symlink_to("app.py")
    err = refused(d, "files.read", {"path": f"{APP_DIR}/alias.py"}, InvalidParams, "symlink")
    assert err.data["target"] == "app.py"
    # ... and the file itself reads fine by its own path.
    assert d.call("files.read", {"path": f"{APP_DIR}/app.py"})["text"] == "print('hello')\n"


def test_a_workspace_named_through_a_symlink_is_its_real_directory(
        ws: tuple[Daemon, Outside]) -> None:
    d, _ = ws
    link = d.base / "ws_link"
    link.symlink_to(d.workspace)
    got = d.call("files.read", {"path": f"{APP_DIR}/app.py", "workspace": str(link)})
    assert got["text"] == "print('hello')\n"
    assert d.call("files.list", {"workspace": str(link)})["root"] == str(d.workspace)


# -- pipes, sockets, devices ------------------------------------------------------------------

def test_pipes_sockets_and_devices_are_never_opened(ws: tuple[Daemon, Outside]) -> None:
    d, _ = ws
    app = d.workspace / APP_DIR
    os.mkfifo(app / "pipe")
    os.mknod(app / "zero", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
    os.mknod(app / "disk", stat.S_IFBLK | 0o600, os.makedev(7, 0))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(app / "sock"))
    try:
        for name, reason in (("pipe", "fifo"), ("zero", "char_device"), ("disk", "block_device"),
                             ("sock", "socket")):
            path = f"{APP_DIR}/{name}"
            err = refused(d, "files.read", {"path": path}, InvalidParams, reason)
            assert "never opens pipes, sockets or devices" in err.message
            refused(d, "files.read", {"path": path, "binary": True}, InvalidParams, reason)
            refused(d, "files.write", {"path": path, "text": "x"}, InvalidParams, reason)
            # The daemon is still answering everyone.
            assert d.call("jobs.list")["jobs"] == []
        kinds = {e["path"].rsplit("/", 1)[-1]: e["kind"]
                 for e in d.call("files.list", {"app": APP})["entries"]}
        assert {kinds[n] for n in ("pipe", "zero", "disk", "sock")} == {"other"}
        # Removing one is an unlink: nothing is opened.
        d.call("files.delete", {"path": f"{APP_DIR}/pipe"})
        assert not os.path.lexists(app / "pipe")
    finally:
        sock.close()


# -- sizes and bytes --------------------------------------------------------------------------

def test_huge_files_are_refused_without_being_read(ws: tuple[Daemon, Outside]) -> None:
    d, _ = ws
    app = d.workspace / APP_DIR
    with open(app / "huge.bin", "wb") as f:
        f.truncate(8 * 1024 ** 3)  # sparse: 8 GiB of nothing
    err = refused(d, "files.read", {"path": f"{APP_DIR}/huge.bin"}, FileTooLarge, "too_large")
    assert err.data["size"] == 8 * 1024 ** 3 and err.data["limit"] == TEXT_CAP
    err = refused(d, "files.read", {"path": f"{APP_DIR}/huge.bin", "binary": True},
                  FileTooLarge)
    assert err.data["limit"] == BINARY_CAP
    (app / "big.txt").write_text("x" * (TEXT_CAP + 1))
    err = refused(d, "files.read", {"path": f"{APP_DIR}/big.txt"}, FileTooLarge)
    assert "binary: true" in err.message  # it fits the binary form
    got = d.call("files.read", {"path": f"{APP_DIR}/big.txt", "binary": True})
    assert base64.b64decode(got["data_base64"]) == b"x" * (TEXT_CAP + 1)
    assert got["size"] == TEXT_CAP + 1
    (app / "edge.txt").write_text("y" * TEXT_CAP)
    assert d.call("files.read", {"path": f"{APP_DIR}/edge.txt"})["size"] == TEXT_CAP


def test_a_write_over_the_cap_is_refused_and_loses_nothing(make_daemon: type[Daemon]) -> None:
    d = make_daemon(config=f"max_line_bytes = {4 * TEXT_CAP}").start()
    write_app(d.workspace, APP, files={"app.py": "print('hello')\n"})
    err = refused(d, "files.write", {"path": f"{APP_DIR}/app.py", "text": "z" * (TEXT_CAP + 1)},
                  FileTooLarge, "too_large")
    assert err.data["limit"] == TEXT_CAP and err.data["param"] == "text"
    assert (d.workspace / APP_DIR / "app.py").read_text() == "print('hello')\n"
    assert d.call("files.write", {"path": f"{APP_DIR}/app.py", "text": "z" * TEXT_CAP})[
        "size"] == TEXT_CAP
    # With the default frame limit, the request itself is refused, by its size.
    small = make_daemon().start()
    line = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "files.write",
                       "params": {"path": "x.txt", "text": "z" * (TEXT_CAP + 1)}}) + "\n"
    [answer] = raw_exchange(small.socket, line.encode())
    assert answer["error"]["code"] == MessageTooLarge.code
    assert answer["error"]["data"]["limit"] == TEXT_CAP  # the frame limit, 1 MiB by default
    assert small.call("jobs.list")["jobs"] == [] and not (small.workspace / "x.txt").exists()


def test_binary_files_are_refused_as_text_and_returned_as_base64(
        ws: tuple[Daemon, Outside]) -> None:
    d, _ = ws
    app = d.workspace / APP_DIR
    blob = bytes(range(256)) * 4
    (app / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + blob)
    err = refused(d, "files.read", {"path": f"{APP_DIR}/logo.png"}, NotText, "not_utf8")
    assert err.data["offset"] == 0 and "binary: true" in err.message
    got = d.call("files.read", {"path": f"{APP_DIR}/logo.png", "binary": True})
    assert base64.b64decode(got["data_base64"]) == b"\x89PNG\r\n\x1a\n" + blob
    assert got["etag"] == d.call("files.read", {"path": f"{APP_DIR}/logo.png", "binary": True})[
        "etag"]
    (app / "nul.txt").write_bytes(b"text\x00more")
    err = refused(d, "files.read", {"path": f"{APP_DIR}/nul.txt"}, NotText, "nul")
    assert err.data["offset"] == 4
    # Valid UTF-8 of every kind is text: a BOM, CRLF, tabs, control characters, astral planes.
    text = "\ufeffline\r\n\ttab \x1b[1mbold\x1b[0m \U0001f600 \u00e9\n"
    (app / "odd.txt").write_text(text, newline="")
    assert d.call("files.read", {"path": f"{APP_DIR}/odd.txt"})["text"] == text
    d.call("files.write", {"path": f"{APP_DIR}/odd2.txt", "text": text})
    assert (app / "odd2.txt").read_bytes() == text.encode()


# -- etags ------------------------------------------------------------------------------------

def test_a_stale_etag_fails_with_the_current_one_and_changes_nothing(
        ws: tuple[Daemon, Outside]) -> None:
    d, _ = ws
    path = f"{APP_DIR}/app.py"
    file = d.workspace / path
    first = d.call("files.read", {"path": path})
    wrote = d.call("files.write", {"path": path, "text": "v2\n", "if_match": first["etag"]})
    assert wrote["etag"] != first["etag"] and file.read_text() == "v2\n"
    listed = {e["path"]: e for e in d.call("files.list", {"app": APP})["entries"]}
    assert listed[path]["etag"] == wrote["etag"] == d.call("files.read", {"path": path})["etag"]
    # The first reader writes with its old etag: refused, with the current etag to re-read.
    err = refused(d, "files.write", {"path": path, "text": "lost\n", "if_match": first["etag"]},
                  InvalidState, "stale")
    assert err.data["etag"] == wrote["etag"]
    assert file.read_text() == "v2\n"
    # Another program changes the file (same size, same second): the etag sees it.
    file.write_text("v3\n")
    err = refused(d, "files.write", {"path": path, "text": "lost\n", "if_match": wrote["etag"]},
                  InvalidState, "stale")
    assert err.data["etag"] == d.call("files.read", {"path": path})["etag"]
    refused(d, "files.delete", {"path": path, "if_match": wrote["etag"]}, InvalidState, "stale")
    assert file.read_text() == "v3\n"
    # Two writes in a row of the same bytes still give two etags.
    a = d.call("files.write", {"path": path, "text": "same\n"})["etag"]
    b = d.call("files.write", {"path": path, "text": "same\n"})["etag"]
    assert a != b
    # Gone: the current etag is null, and no directory is made for it.
    file.unlink()
    err = refused(d, "files.write", {"path": path, "text": "x", "if_match": b}, InvalidState,
                  "stale")
    assert err.data["etag"] is None and not file.exists()
    err = refused(d, "files.write", {"path": f"{APP_DIR}/new/dir/f.txt", "text": "x",
                                     "if_match": b}, InvalidState, "stale")
    assert err.data["etag"] is None and not (d.workspace / APP_DIR / "new").exists()
    d.call("files.delete", {"path": f"{APP_DIR}/kitapp.toml",
                            "if_match": d.call("files.read", {"path": f"{APP_DIR}/kitapp.toml"})[
                                "etag"]})


def test_write_is_an_atomic_replace_that_keeps_the_mode(ws: tuple[Daemon, Outside]) -> None:
    d, _ = ws
    file = d.workspace / APP_DIR / "run.sh"
    file.write_text("#!/bin/sh\n")
    file.chmod(0o750)
    before = file.stat()
    (d.workspace / APP_DIR / "hard").hardlink_to(file)
    d.call("files.write", {"path": f"{APP_DIR}/run.sh", "text": "#!/bin/sh\necho new\n"})
    after = file.stat()
    assert stat.S_IMODE(after.st_mode) == 0o750
    assert after.st_ino != before.st_ino  # a new file renamed over the name
    assert (d.workspace / APP_DIR / "hard").read_text() == "#!/bin/sh\n"  # the old inode
    assert not [p for p in (d.workspace / APP_DIR).iterdir() if p.name.startswith(".kitplay-")]


def test_create_makes_only_new_files_and_never_replaces_one(
        ws: tuple[Daemon, Outside]) -> None:
    d, _ = ws
    path = f"{APP_DIR}/pkg/new_module.py"  # and its missing directory, inside the app
    made = d.call("files.write", {"path": path, "text": "x = 1\n", "create": True})
    file = d.workspace / path
    assert file.read_text() == "x = 1\n" and made["etag"] == d.call(
        "files.read", {"path": path})["etag"]
    assert not [p for p in file.parent.iterdir() if p.name.startswith(".kitplay-")]
    # Again: refused, naming the file there and its etag; the file is unchanged.
    err = refused(d, "files.write", {"path": path, "text": "lost\n", "create": True},
                  InvalidState, "exists")
    assert err.data["etag"] == made["etag"] and file.read_text() == "x = 1\n"
    # Whatever is at the name counts: a dangling symlink, a directory.
    (d.workspace / APP_DIR / "dangling").symlink_to("nowhere")
    err = refused(d, "files.write", {"path": f"{APP_DIR}/dangling", "text": "x",
                                     "create": True}, InvalidState, "exists")
    assert err.data["etag"] is None and not (d.workspace / APP_DIR / "nowhere").exists()
    refused(d, "files.write", {"path": f"{APP_DIR}/pkg", "text": "x", "create": True},
            InvalidState, "exists")
    # create and if_match ask opposite things.
    refused(d, "files.write", {"path": f"{APP_DIR}/other.py", "text": "x", "create": True,
                               "if_match": made["etag"]})
    assert not (d.workspace / APP_DIR / "other.py").exists()


def test_create_loses_a_race_to_another_program_without_replacing_its_file(
        ws: tuple[Daemon, Outside]) -> None:
    """The name is taken after the daemon looked (the race's outcome): the write itself
    refuses (link(2), not rename(2)), and leaves no temp file."""
    from kitplay.daemon import workspace_files

    d, _ = ws
    target = d.workspace / APP_DIR / "raced.txt"
    target.write_text("theirs\n")
    dfd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(FileExistsError):
            workspace_files._replace(dfd, "raced.txt", b"mine\n", 0o644, exclusive=True)
        assert target.read_text() == "theirs\n"
        workspace_files._replace(dfd, "raced.txt", b"mine\n", 0o644)  # without: replaced
    finally:
        os.close(dfd)
    assert target.read_text() == "mine\n"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".kitplay-")]


# -- names ------------------------------------------------------------------------------------

ODD_NAMES = ["my file.txt", "h\u00e9llo w\u00f6rld \u2713.py", "\u6587\u4ef6.md", "a\nb.txt",
             "-rf", "--help", " lead", "tab\there", "quote\"'s.txt", "back\\slash",
             "%2e%2e", "\u202eevil.txt", "emoji\U0001f600"]


def test_names_with_odd_characters_round_trip(ws: tuple[Daemon, Outside]) -> None:
    d, _ = ws
    app = d.workspace / APP_DIR
    for name in ODD_NAMES:
        path = f"{APP_DIR}/odd/{name}"
        d.call("files.write", {"path": path, "text": name})
        assert (app / "odd" / name).read_text() == name
        assert d.call("files.read", {"path": path})["text"] == name
    listed = [e["path"] for e in d.call("files.list", {"path": f"{APP_DIR}/odd"})["entries"]]
    assert sorted(listed) == sorted(f"{APP_DIR}/odd/{n}" for n in ODD_NAMES)
    for name in ODD_NAMES:
        d.call("files.delete", {"path": f"{APP_DIR}/odd/{name}"})
    assert list((app / "odd").iterdir()) == []


def test_names_that_are_not_utf8_are_counted_not_listed(ws: tuple[Daemon, Outside]) -> None:
    d, _ = ws
    app = os.fsencode(d.workspace / APP_DIR)
    with open(os.path.join(app, b"latin1-\xe9.txt"), "wb") as f:
        f.write(b"x")
    got = d.call("files.list", {"path": APP_DIR})
    assert got["skipped"] == 1
    assert all("latin1" not in e["path"] for e in got["entries"])
    json.dumps(got)  # plain JSON text


# -- directories, permissions, trust ----------------------------------------------------------

def test_directories_and_missing_parents(ws: tuple[Daemon, Outside]) -> None:
    d, _ = ws
    refused(d, "files.read", {"path": APP_DIR}, InvalidParams, "is_directory")
    refused(d, "files.write", {"path": APP_DIR, "text": "x"}, InvalidParams, "is_directory")
    refused(d, "files.read", {"path": f"{APP_DIR}/app.py/x"}, InvalidParams, "not_directory")
    refused(d, "files.read", {"path": f"{APP_DIR}/nope.py"}, NotFound, "not_found")
    # Parents are made inside an app only.
    d.call("files.write", {"path": f"{APP_DIR}/pkg/sub/mod.py", "text": "x = 1\n"})
    assert (d.workspace / APP_DIR / "pkg" / "sub" / "mod.py").read_text() == "x = 1\n"
    for path in ("elsewhere/new.txt", "source/apps/no.such_app/x/y.py", "source/new/f.txt"):
        err = refused(d, "files.write", {"path": path, "text": "x"}, NotFound, "not_found")
        assert "only inside an app's own directory" in err.message
    assert not (d.workspace / "elsewhere").exists()
    assert not (d.workspace / "source" / "apps" / "no.such_app").exists()
    # A new file in an existing directory is fine anywhere in the workspace.
    d.call("files.write", {"path": "NOTES.md", "text": "# notes\n"})
    # Directories: removed only when empty.
    refused(d, "files.delete", {"path": f"{APP_DIR}/pkg"}, InvalidState, "not_empty")
    d.call("files.delete", {"path": f"{APP_DIR}/pkg/sub/mod.py"})
    d.call("files.delete", {"path": f"{APP_DIR}/pkg/sub"})
    assert not (d.workspace / APP_DIR / "pkg" / "sub").exists()


def test_a_read_only_file_is_not_replaced_or_removed(ws: tuple[Daemon, Outside]) -> None:
    d, _ = ws
    file = d.workspace / APP_DIR / "app.py"
    file.chmod(0o444)
    err = refused(d, "files.write", {"path": f"{APP_DIR}/app.py", "text": "x"}, InvalidState,
                  "read_only")
    assert "chmod u+w" in err.message
    refused(d, "files.delete", {"path": f"{APP_DIR}/app.py"}, InvalidState, "read_only")
    assert file.read_text() == "print('hello')\n"
    assert d.call("files.read", {"path": f"{APP_DIR}/app.py"})["text"] == "print('hello')\n"


def test_a_workspace_of_another_user_is_refused(daemon: Daemon, attacker: Attacker) -> None:
    base = short_tmpdir("kpfw")
    try:
        os.chmod(base, 0o755)
        evil = base / "evil"
        write_app(evil, APP, files={"app.py": "print('theirs')\n"})
        for p in [evil, *evil.rglob("*")]:
            shutil.chown(p, attacker.name, attacker.name)
        for method, params in (("files.list", {}), ("files.read", {"path": f"{APP_DIR}/app.py"}),
                               ("files.write", {"path": f"{APP_DIR}/app.py", "text": "x"}),
                               ("files.delete", {"path": f"{APP_DIR}/app.py"}),
                               ("apps.clean", {"app": APP}),
                               ("apps.delete", {"app": APP, "confirm": APP})):
            err = refused(daemon, method, {**params, "workspace": str(evil)}, InvalidParams,
                          "untrusted")
            assert attacker.name in err.message
        assert (evil / APP_DIR / "app.py").read_text() == "print('theirs')\n"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_entries_others_can_change_are_refused(ws: tuple[Daemon, Outside],
                                               attacker: Attacker) -> None:
    d, _ = ws
    app = d.workspace / APP_DIR
    # A group-writable directory whose group is not the user's own, then a file another user
    # owns, then a world-writable file: each is refused until fixed.
    loose = app / "loose"
    loose.mkdir()
    (loose / "f.txt").write_text("f\n")
    os.chown(loose, -1, attacker.gid)
    loose.chmod(0o775)
    err = refused(d, "files.read", {"path": f"{APP_DIR}/loose/f.txt"}, InvalidParams,
                  "untrusted")
    assert "chmod go-w" in err.message
    refused(d, "files.write", {"path": f"{APP_DIR}/loose/f.txt", "text": "x"}, InvalidParams,
            "untrusted")
    refused(d, "files.write", {"path": f"{APP_DIR}/loose/new.txt", "text": "x"}, InvalidParams,
            "untrusted")
    loose.chmod(0o755)
    assert d.call("files.read", {"path": f"{APP_DIR}/loose/f.txt"})["text"] == "f\n"
    theirs = app / "theirs.py"
    theirs.write_text("evil\n")
    shutil.chown(theirs, attacker.name, attacker.name)
    err = refused(d, "files.read", {"path": f"{APP_DIR}/theirs.py"}, InvalidParams, "untrusted")
    assert attacker.name in err.message
    refused(d, "files.write", {"path": f"{APP_DIR}/theirs.py", "text": "x"}, InvalidParams,
            "untrusted")
    (app / "app.py").chmod(0o666)
    refused(d, "files.read", {"path": f"{APP_DIR}/app.py"}, InvalidParams, "untrusted")
    assert theirs.read_text() == "evil\n" and not (loose / "new.txt").exists()
