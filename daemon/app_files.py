"""What belongs to an app on disk, per toolchain; ``apps.delete`` and ``apps.clean``.

**builtin** (``toolchains/builtin.py``): an app is ``source/apps/<app>/`` (its
``kitapp.toml`` and files).  Its build outputs are the ``__pycache__`` directories its build
leaves in it (the templates' ``compileall`` step) and the archives ``package`` writes,
``_build/packages/<app>-<version>.zip``.

**kit-app-template** (110.1.2): an application is ``source/apps/<app>.kit``, with its layers
(``source/apps/<app>_<layer type>.kit``) and setup extensions (``source/extensions/<ext>/``);
an extension made on its own is ``source/extensions/<ext>/``.  The tool names each in
``source/rendered_template_metadata.json``, and each ``.kit`` in ``premake5.lua``
(``define_app("<file>.kit")``) and ``repo.toml`` (``[repo_precache_exts] apps``); NVIDIA's
packaging guide ("Cleaning Up", docs.omniverse.nvidia.com/kit/docs/kit-app-template/latest/
docs/packaging_app.html) says a ``.kit`` that is gone must leave both, or the next build breaks.
A build lays out, per configuration (``release``, ``debug``) under ``_build/<platform>/``:
``<file>.kit.sh`` (``launch_kit`` in the repository's ``tools/repoman/launch.py`` runs
``<target>/<app><shell_ext>``), ``apps/<file>.kit`` (``_apps_folder`` in
``tools/repoman/package.py``: "where repo_build shoves Kit apps") and ``exts/<ext>/`` (the
extensions, as the stand-in in tests/fixtures lays them out).  ``repo.sh build -c`` wipes all
of ``_build/``; ``apps.clean`` removes one app's part of it.

Everything is found and removed through ``confine``'s no-follow walks: a symlink where an
app's directory should be is removed as a link, never followed.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .confine import join, lstat_at, open_dir, open_root, os_error, remove_tree, split_path
from .protocol.errors import InvalidParams, InvalidState, KitplayError, NotFound, ToolchainError
from .protocol.registry import APP_NAME_RE
from .toolchains.base import Toolchain
from .toolchains.builtin import check_app_name
from .toolchains.kit import PLAY_DIR, kit_platform
from .workspace_files import WorkspaceFiles

__all__ = ["AppFiles", "BuiltinPolicy", "KitPolicy", "LiveJob", "live_jobs", "policy_for",
           "writers"]

CONFIGS = ("release", "debug")
METADATA = "source/rendered_template_metadata.json"


# -- what a toolchain says about its files ------------------------------------------------------

def _output(parts: Sequence[str]) -> bool:
    return (parts[0] == "_build" or "__pycache__" in parts
            or parts[-1].endswith((".pyc", ".pyo")))


def _descend(parts: Sequence[str]) -> bool:
    """A workspace listing goes into every directory but .git, __pycache__ and the tools' own
    top-level ``_*`` directories (kit-app-template's .gitignore: "All folders starting with _
    are local"): _build alone holds the Kit SDK's thousands of files."""
    name = parts[-1]
    return not (name in (".git", "__pycache__") or (len(parts) == 1 and name.startswith("_")))


class BuiltinPolicy:
    make_dirs_rule = ("files.write makes missing directories only inside an app's own "
                      "directory (source/apps/<app>/...)")

    def is_output(self, parts: Sequence[str]) -> bool:
        return _output(parts)

    def descend(self, parts: Sequence[str]) -> bool:
        return _descend(parts)

    def tool_written(self, parts: Sequence[str]) -> bool:
        return _output(parts)

    def make_dirs_from(self, parts: Sequence[str]) -> int | None:
        if len(parts) >= 4 and parts[:2] == ["source", "apps"] and APP_NAME_RE.match(parts[2]):
            return 3  # below the app's directory, which must exist
        return None


class KitPolicy:
    make_dirs_rule = ("files.write makes missing directories only inside an extension's own "
                      "directory (source/extensions/<extension>/...)")
    # Files a kit-app-template tool rewrites: replay edits premake5.lua, repo.toml and the
    # metadata; precache appends its generated part to each .kit.
    SHARED = frozenset({"premake5.lua", "repo.toml", METADATA})

    def is_output(self, parts: Sequence[str]) -> bool:
        # _packages: where `repo.sh launch --package` unpacks (tools/repoman/launch.py).
        return _output(parts) or parts[0] == "_packages"

    def descend(self, parts: Sequence[str]) -> bool:
        return _descend(parts)

    def tool_written(self, parts: Sequence[str]) -> bool:
        return (self.is_output(parts) or join(parts) in self.SHARED
                or (len(parts) == 3 and parts[:2] == ["source", "apps"]
                    and parts[2].endswith(".kit")))

    def make_dirs_from(self, parts: Sequence[str]) -> int | None:
        if len(parts) >= 4 and parts[:2] == ["source", "extensions"]:
            return 3
        return None


def policy_for(kind: str) -> BuiltinPolicy | KitPolicy:
    return KitPolicy() if kind == "kit-app-template" else BuiltinPolicy()


# -- jobs that use an app -----------------------------------------------------------------------

@dataclass(frozen=True)
class LiveJob:
    id: str
    kind: str
    workspace: str
    app: str | None  # the app it names (a create: the new app); None: the whole workspace
    running: bool


def live_jobs(jobs: Any) -> list[LiveJob]:
    """The daemon's queued and running jobs (``jobs`` is the JobManager; trio thread only)."""
    out = []
    for job_id in [*jobs.active, *jobs.queue]:
        try:
            rec = jobs.get_record(job_id)
        except NotFound:
            continue
        params = rec.get("params") or {}
        app = params.get("app") or (params.get("name") if rec["kind"] == "create" else None)
        out.append(LiveJob(job_id, rec["kind"], rec["workspace"],
                           app.removesuffix(".kit") if isinstance(app, str) else None,
                           job_id in jobs.active))
    return out


def writers(jobs: Sequence[LiveJob], root: Path) -> list[str]:
    """Running jobs whose tools write into the workspace (all but launches)."""
    return [j.id for j in jobs if j.running and j.kind != "launch" and j.workspace == str(root)]


# -- an app's layout ----------------------------------------------------------------------------

@dataclass
class Edit:
    """A line or record taken out of a file the app shares with others."""

    file: str
    what: str
    text: str  # the file's new text
    etag: str  # the etag it had when read: the edit is refused if it changed since


@dataclass
class Layout:
    app: str
    kind: str
    sources: list[str] = field(default_factory=list)  # workspace-relative, existing
    outputs: list[str] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    names: set[str] = field(default_factory=set)  # every name a job may give for it
    shared: bool = False  # its toolchain's jobs rewrite files every app shares


class AppFiles:
    def __init__(self, tc: Toolchain) -> None:
        self.tc = tc
        self.root = tc.root
        self.policy = policy_for(tc.kind)
        self.files = WorkspaceFiles(tc.root, self.policy)

    # -- the methods ------------------------------------------------------------------------

    def listing(self, app: str) -> dict[str, Any]:
        layout = self.layout(app, edits=False)
        paths = layout.sources + layout.outputs
        return self.files.listing(roots=[p.split("/") for p in paths])

    def clean(self, app: str, jobs: Sequence[LiveJob]) -> dict[str, Any]:
        layout = self.layout(app, edits=False)
        self._refuse_busy(layout, jobs, "clean", layout.outputs)
        return {"app": layout.app, "removed": self._remove(layout.outputs)}

    def delete(self, app: str, confirm: str | None, jobs: Sequence[LiveJob]) -> dict[str, Any]:
        layout = self.layout(app, edits=True)
        removes = layout.sources + [o for o in layout.outputs if not any(
            o.startswith(src + "/") for src in layout.sources)]  # those go with their dir
        edits = [{"file": e.file, "what": e.what} for e in layout.edits]
        self._refuse_busy(layout, jobs, "delete", removes, edits)
        if confirm != layout.app:
            said = "" if confirm is None else f"confirm {confirm[:100]!r} does not name it; "
            raise InvalidParams(
                f"{said}apps.delete {layout.app} would remove {_summary(removes)}"
                + (f" and take {len(edits)} line(s) or record(s) naming it out of "
                   f"{', '.join(sorted({e['file'] for e in edits}))}" if edits else "")
                + f" in {self.root}; nothing was changed. To delete it, repeat with confirm: "
                f"{layout.app!r} (kitplay apps delete {layout.app} --confirm {layout.app})",
                {"param": "confirm", "app": layout.app, "removes": removes, "edits": edits})
        for e in layout.edits:
            self.files.write(e.file, e.text, if_match=e.etag)
        return {"app": layout.app, "removed": self._remove(removes), "edited": edits}

    # -- layouts ----------------------------------------------------------------------------

    def layout(self, app: str, *, edits: bool) -> Layout:
        return (self._kit_layout(app, edits) if self.tc.kind == "kit-app-template"
                else self._builtin_layout(app))

    def _builtin_layout(self, app: str) -> Layout:
        check_app_name(app, "app")
        d = ["source", "apps", app]
        st = self._lstat(d)
        if st is None or not stat.S_ISDIR(st.st_mode):
            known = ", ".join(a["name"] for a in self.tc.list_apps()) or "none yet"
            raise NotFound(f"no app named {app!r} in {self.root} (apps: {known})", {"app": app})
        out = Layout(app, "application", sources=[join(d)], names={app})
        out.outputs = self._find_dirs(d, "__pycache__")
        pattern = re.compile(re.escape(app) + r"-[0-9][^/]*\.zip")
        out.outputs += [join(["_build", "packages", n]) for n in
                        self._names(["_build", "packages"]) if pattern.fullmatch(n)]
        return out

    def _kit_layout(self, app: str, edits: bool) -> Layout:
        records = {r["name"]: r for r in self.tc.list_apps()}
        name = app.removesuffix(".kit")
        rec = records.get(name)
        if rec is None:
            raise NotFound(f"no app or extension named {name!r} in {self.root} (known: "
                           f"{', '.join(records) or 'none yet'})", {"app": name})
        kind = rec["type"]
        if kind == "setup_extension":
            raise InvalidParams(f"{name} is the setup extension of {rec.get('parent')}; it "
                                f"goes with its app (apps.delete {rec.get('parent')})",
                                {"param": "app", "app": rec.get("parent")})
        if kind == "application":
            layers = [r for r in records.values()
                      if r["type"] == "application_layer" and r.get("parent") == name]
            exts = [r["name"] for r in records.values()
                    if r["type"] == "setup_extension" and r.get("parent") == name]
            kits = [name] + [r["name"] for r in layers]
        elif kind == "application_layer":
            kits, exts = [name], []
        else:
            kits, exts = [], [name]
        for n in kits + exts:
            _component(n)
        out = Layout(name, kind, names={*kits, *exts}, shared=True)
        candidates = ([["source", "apps", f"{k}.kit"] for k in kits]
                      + [["source", "extensions", e] for e in exts]
                      + [[PLAY_DIR, f"replay-{name}.toml"],
                         [PLAY_DIR, f"replay-{name}.before.json"]])
        out.sources = [join(p) for p in candidates if self._lstat(p) is not None]
        for config in CONFIGS:
            base = ["_build", kit_platform(), config]
            outputs = ([[*base, f"{k}.kit.sh"] for k in kits]
                       + [[*base, "apps", f"{k}.kit"] for k in kits]
                       + [[*base, "exts", e] for e in exts])
            out.outputs += [join(p) for p in outputs if self._lstat(p) is not None]
        if edits:
            out.edits = self._kit_edits(rec, kits)
        return out

    def _kit_edits(self, rec: dict[str, Any], kits: list[str]) -> list[Edit]:
        out = []
        for file, keep in (
                ("premake5.lua", lambda line: line.strip() not in
                 {f'define_app("{k}.kit")' for k in kits}),
                ("repo.toml", lambda line: line.strip().rstrip(",").strip() not in
                 {f'"${{root}}/source/apps/{k}.kit"' for k in kits})):
            edit = self._edit_lines(file, keep)
            if edit is not None:
                out.append(edit)
        meta = self._edit_metadata(rec)
        if meta is not None:
            out.append(meta)
        return out

    def _read(self, rel: str) -> dict[str, Any] | None:
        try:
            return self.files.read(rel)
        except NotFound:
            return None
        except KitplayError as e:
            raise ToolchainError(f"cannot read {rel} to take the app out of it: {e.message}",
                                 {"file": rel}) from None

    def _edit_lines(self, rel: str, keep: Callable[[str], bool]) -> Edit | None:
        got = self._read(rel)
        if got is None:
            return None
        lines = got["text"].splitlines(keepends=True)
        gone = [line.strip() for line in lines if not keep(line)]
        if not gone:
            return None
        return Edit(rel, "; ".join(gone), "".join(x for x in lines if keep(x)), got["etag"])

    def _edit_metadata(self, rec: dict[str, Any]) -> Edit | None:
        got = self._read(METADATA)
        if got is None:
            return None
        try:
            data = json.loads(got["text"])
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        name, gone = rec["name"], []
        if rec["type"] == "application_layer":
            parent = str(rec.get("parent"))
            for tid, by_name in _tables(data.get("Application")):
                wrapped = by_name.get(parent)
                answers = wrapped.get(tid) if isinstance(wrapped, dict) else None
                layers = answers.get("applications") if isinstance(answers, dict) else None
                if isinstance(layers, dict) and rec.get("template") in layers:
                    del layers[rec["template"]]
                    gone.append(f"Application.{tid}.{parent}: layer {rec['template']}")
        else:
            section = "Application" if rec["type"] == "application" else "Extension"
            for tid, by_name in list(_tables(data.get(section))):
                if name in by_name:
                    del by_name[name]
                    gone.append(f"{section}.{tid}.{name}")
                    if not by_name:
                        del data[section][tid]
        if not gone:
            return None
        text = got["text"]
        new = (json.dumps(data, indent=4) if "\n" in text.strip() else json.dumps(data))
        return Edit(METADATA, "; ".join(gone), new + ("\n" if text.endswith("\n") else ""),
                    got["etag"])

    # -- confined helpers -------------------------------------------------------------------

    def _refuse_busy(self, layout: Layout, jobs: Sequence[LiveJob], what: str,
                     removes: list[str], edits: list[dict[str, str]] | None = None) -> None:
        ws = str(self.root)
        busy = [j.id for j in jobs if j.workspace == ws and (
            (j.app is not None and j.app in layout.names)
            or (j.kind != "launch" and (j.app is None or layout.shared)))]
        if busy:
            data: dict[str, Any] = {"app": layout.app, "jobs": busy, "removes": removes}
            if edits is not None:
                data["edits"] = edits
            raise InvalidState(
                f"cannot {what} {layout.app} while job {', '.join(busy)} of it is queued or "
                f"running; wait for it (`kitplay jobs wait {busy[0]}`) or cancel it (`kitplay "
                f"jobs cancel {busy[0]}`), then try again", data)

    def _lstat(self, parts: list[str]) -> os.stat_result | None:
        root_fd = open_root(self.root)
        try:
            try:
                pfd = open_dir(self.root, root_fd, parts[:-1], "app")
            except NotFound:
                return None
            try:
                return lstat_at(pfd, parts[-1])
            finally:
                os.close(pfd)
        finally:
            os.close(root_fd)

    def _names(self, parts: list[str]) -> list[str]:
        """The names in a directory (none when it is missing)."""
        return [e["path"].rsplit("/", 1)[-1] for e in self._entries(parts)
                if e["path"].count("/") == len(parts)]

    def _entries(self, parts: list[str]) -> list[dict[str, Any]]:
        if self._lstat(parts) is None:
            return []
        return list(self.files.listing(join(parts))["entries"])

    def _find_dirs(self, parts: list[str], name: str) -> list[str]:
        """Directories called ``name`` under ``parts``, outermost only."""
        found: list[str] = []
        for e in self.files.listing(roots=[parts])["entries"]:
            path = e["path"]
            if e["kind"] == "dir" and path.rsplit("/", 1)[-1] == name and not any(
                    path.startswith(f + "/") for f in found):
                found.append(path)
        return found

    def _remove(self, paths: list[str]) -> list[str]:
        removed: list[str] = []
        root_fd = open_root(self.root)
        try:
            for rel in paths:
                parts = split_path(rel)
                try:
                    pfd = open_dir(self.root, root_fd, parts[:-1], "app")
                except NotFound:
                    continue
                try:
                    st = lstat_at(pfd, parts[-1])
                    if st is None:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        remove_tree(pfd, parts[-1])
                    else:
                        os.unlink(parts[-1], dir_fd=pfd)
                except OSError as e:
                    err = os_error(e, rel, "app")
                    err.data["removed"] = removed
                    err.message += f" (removed before it: {_summary(removed)})"
                    raise err from None
                finally:
                    os.close(pfd)
                removed.append(rel)
        finally:
            os.close(root_fd)
        return removed


def _component(name: str) -> None:
    """A name from the tool's records that kitplay makes a path of: one plain file name."""
    if not name or "/" in name or name in (".", "..") or "\x00" in name:
        raise ToolchainError(f"the workspace's records name an app {name[:100]!r} that is not "
                             f"a plain file name; fix {METADATA}", {"file": METADATA})


def _tables(section: Any) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(section, dict):
        return []
    return [(tid, v) for tid, v in section.items() if isinstance(v, dict)]


def _summary(paths: list[str], n: int = 8) -> str:
    if not paths:
        return "nothing"
    shown = ", ".join(paths[:n])
    return f"{len(paths)} path(s): {shown}" + (f" and {len(paths) - n} more" if len(paths) > n
                                               else "")
