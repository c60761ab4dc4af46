"""The kit-app-template catalogue, read in Python (no ``repo.sh`` subprocess), and replay files.

``repo.toml`` names the templates config (``[repo_kit_template] extension_templates_config``,
default ``templates/templates.toml``).  That file lists collections
(``class = "LocalTemplateCollection"``, ``url = "file://${root}/templates/...toml"``) whose
``[templates."<id>"]`` entries are the templates.  A collection that is missing, unreadable or
not local is reported in ``Catalogue.errors``, never raised: the rest of the catalogue stays
usable.
"""

from __future__ import annotations

import datetime
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .base import read_below, read_regular
from .icons import DOCS_LIMIT, ICON_LIMIT, docs_text, sniff

__all__ = ["CLASS_TYPES", "EXTENSION_TYPES", "Catalogue", "load_catalogue", "replay_tables",
           "replay_toml", "toml_string"]

DEFAULT_CONFIG = "templates/templates.toml"
CLASS_TYPES = {
    "ApplicationTemplate": "application",
    "ApplicationLayerTemplate": "application_layer",
    "ExtensionTemplate": "extension",
    # templates/core_templates.toml (110.1.2): basic_python_binding; created like an extension
    # (tools/ci/automated_templating/basic_pybind11_extension.toml.j2).
    "BindingExtensionTemplate": "binding_extension",
    "SetupExtensionTemplate": "setup_extension",
}
EXTENSION_TYPES = ("extension", "binding_extension")  # created on their own, into source/extensions
TYPE_TITLES = {  # short: `kitplay templates list` shows 60 characters of a description
    "application": "Kit application",
    "application_layer": "Layer for an app's `layers`",
    "extension": "Kit extension",
    "binding_extension": "Kit C++ extension with Python bindings",
    "setup_extension": "Extension an app template adds",
}
# The kinds the API gives templates (`kind`): what creating one makes.
KINDS = {"application": "application", "application_layer": "layer",
         "extension": "extension", "binding_extension": "extension",
         "setup_extension": "setup_extension"}
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
ICON_ROUTE = "/api/templates/icon/"
_TEMPLATE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")  # templates.get / templates.icon names
# [settings.app.window] iconPath of an application template's .kit names a file of its setup
# extension (templates/apps/usd_composer/omni.usd_composer.kit: "${% raw %}{{% endraw %}{{
# setup_extension_name }}{% raw %}}{% endraw %}/data/nvidia-omniverse-usd_composer.png").
_WINDOW = re.compile(r"^\[settings\.app\.window\][ \t]*$(.*?)(?=^\[)", re.M | re.S)
_ICON_PATH = re.compile(r'^iconPath\s*=\s*"[^"\n]*?setup_extension_name\s*\}\}'
                        r'(?:\{%\s*raw\s*%\}\}\{%\s*endraw\s*%\}|\})/([A-Za-z0-9_./-]+)"',
                        re.M)


@dataclass
class Catalogue:
    config: Path
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> raw entry
    collections: dict[str, str] = field(default_factory=dict)  # id -> collection name
    errors: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # every file read (the index, collections)
    root: Path | None = None  # the workspace
    # id -> the template's source (its .kit file or template directory) relative to the
    # workspace, "/"-separated; None when it lies outside the workspace.
    sources: dict[str, str | None] = field(default_factory=dict)

    def label(self, tid: str) -> str:
        """The wizard's on-screen label of a template, exactly: ``[id]: Name``."""
        return f"[{tid}]: {self.entries[tid].get('name', tid)}"

    def type_of(self, tid: str) -> str:
        cls = str(self.entries[tid].get("class", ""))
        return CLASS_TYPES.get(cls) or _snake(cls.removesuffix("Template")) or "unknown"

    def public(self, tid: str, *, docs: bool = True) -> dict[str, Any]:
        e = self.entries[tid]
        kind = self.type_of(tid)
        out: dict[str, Any] = {
            "name": tid,
            "display_name": str(e.get("name") or tid),
            "type": kind,
            "class": str(e.get("class", "")),
            "description": str(e.get("description") or
                               f"{TYPE_TITLES.get(kind, kind)} "
                               f"({self.collections.get(tid, 'catalogue')})"),
            "toolchain": "kit-app-template",
            "collection": self.collections.get(tid),
            "label": self.label(tid),
            "creatable": kind == "application" or kind in EXTENSION_TYPES,
            "kind": KINDS.get(kind, kind),
            "variables": _jsonable(e.get("variables") or {}),
            "layers": [self.layer_record(x) for x in self.layers_for(tid)]
            if kind == "application" else [],
            "extensions": self.extension_records(tid) if kind == "application" else [],
            "docs": self.docs(tid) if docs else "",
            "icon": (ICON_ROUTE + tid if _TEMPLATE_ID.match(tid) and self.icon(tid)
                     else None),
        }
        if "type" in e:  # layer type (streaming, nvcf) or setup extension type (setup, extra)
            out["kit_type"] = str(e["type"])
        return out

    def layer_record(self, tid: str) -> dict[str, Any]:
        e = self.entries[tid]
        kit_type = e.get("type")
        return {"id": tid, "name": str(e.get("name") or tid),
                "description": str(e.get("description") or (
                    f"Application layer ({kit_type})" if kit_type else "Application layer")),
                "label": self.label(tid), "kit_type": e.get("type")}

    def extension_records(self, tid: str) -> list[dict[str, Any]]:
        """The setup extensions an application adds, with the names the wizard offers first
        (the catalogue's defaults)."""
        out = []
        for ext in self.extensions_for(tid):
            e = self.entries.get(ext, {})
            var = e["variables"] if isinstance(e.get("variables"), dict) else {}
            out.append({"id": ext, "name": str(e.get("name") or ext),
                        "kit_type": e.get("type", "setup"),
                        "extension_name": var.get("extension_name"),
                        "extension_display_name": var.get("extension_display_name")})
        return out

    # -- what a template shows: its README and icon, read inside the workspace only ----------

    def _read(self, rel: str, limit: int) -> bytes | None:
        if self.root is None:
            return None
        try:
            return read_below(self.root, rel, limit)
        except OSError:
            return None

    def docs(self, tid: str) -> str:
        """The README beside the template: ``apps/<x>/README.md`` next to an application's
        .kit, ``extensions/<x>/README.md`` above an extension's ``template/`` directory (as
        kit-app-template 110.1.2 ships them); "" when there is none."""
        src = self.sources.get(tid)
        if not src:
            return ""
        data = self._read(_join(os.path.dirname(src), "README.md"), 8 * DOCS_LIMIT)
        return docs_text(data) if data is not None else ""

    def icon_file(self, tid: str) -> str | None:
        """The workspace-relative path of the template's icon, or None.

        An extension template's icon is the one its ``config/extension.toml`` names (``icon =
        "data/icon.png"`` in every 110.1.2 extension template); an application's, the window
        icon its .kit takes from its setup extension (``[settings.app.window] iconPath``).
        """
        src = self.sources.get(tid)
        if not src:
            return None
        if not src.endswith(".kit"):
            raw = self._read(_join(src, "config", "extension.toml"), 256 * 1024)
            try:
                icon = tomllib.loads(raw.decode()).get("package", {}).get("icon") \
                    if raw is not None else None
            except (UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
                icon = None
            return _join(src, icon) if isinstance(icon, str) and _relative(icon) else None
        raw = self._read(src, 4 * 1024 * 1024)
        window = _WINDOW.search(raw.decode(errors="replace") + "\n[") if raw else None
        found = _ICON_PATH.search(window.group(1)) if window else None
        if found is None or not _relative(found.group(1)):
            return None
        for ext in self.extensions_for(tid):
            ext_src = self.sources.get(ext)
            if ext_src and self.entries.get(ext, {}).get("type", "setup") == "setup":
                return _join(ext_src, found.group(1))
        return None

    def icon(self, tid: str) -> tuple[bytes, str] | None:
        """The icon's bytes and image type, or None (no icon, unreadable, not an image)."""
        rel = self.icon_file(tid)
        data = self._read(rel, ICON_LIMIT) if rel else None
        kind = sniff(data, rel) if data is not None and rel else None
        return (data, kind) if data is not None and kind else None

    def layers_for(self, tid: str) -> list[str]:
        """Ids of the application layers an application template offers (wizard order)."""
        links = self.entries[tid].get("applications") or []
        if not isinstance(links, list):
            return []
        if any(isinstance(x, dict) and x.get("link_all") for x in links):
            return [t for t in self.entries if self.type_of(t) == "application_layer"]
        return [x["template"] for x in links
                if isinstance(x, dict) and x.get("template") in self.entries]

    def extensions_for(self, tid: str) -> list[str]:
        """Ids of the setup extensions an application template requires (may be unknown)."""
        links = self.entries[tid].get("extensions") or []
        if not isinstance(links, list):
            return []
        return [str(x["template"]) for x in links if isinstance(x, dict) and "template" in x]


def load_catalogue(root: Path) -> Catalogue:
    config = _config_path(root)
    cat = Catalogue(config, root=root)
    cat.files.append(config)
    index = _read_toml(config, "templates config", cat.errors)
    if index is None:
        return cat
    for cid, coll in _tables(index.get("templates"), f"{_rel(root, config)} [templates]",
                             cat.errors):
        cls = str(coll.get("class", ""))
        if not cls.endswith("Collection"):  # a template listed directly in the index
            _add(cat, cid, coll, _rel(root, config), _source(root, config.parent, coll))
            continue
        name = str(coll.get("name") or cid)
        url = coll.get("url")
        if not isinstance(url, str) or not url.startswith("file://"):
            cat.errors.append(f"collection {cid!r} ({name}): url {url!r} is not a local "
                              "file:// url; kitplay reads local collections only, so its "
                              "templates are not listed")
            continue
        path = Path(url.removeprefix("file://").replace("${root}", str(root)))
        if not path.is_absolute():
            path = config.parent / path
        cat.files.append(path)
        data = _read_toml(path, f"collection {cid!r} ({name})", cat.errors)
        if data is None:
            continue
        for tid, entry in _tables(data.get("templates"), f"{path} [templates]", cat.errors):
            _add(cat, tid, entry, name, _source(root, path.parent, entry))
    return cat


def _add(cat: Catalogue, tid: str, entry: dict[str, Any], collection: str,
         source: str | None) -> None:
    if tid in cat.entries:
        cat.errors.append(f"template {tid!r} is defined in both {cat.collections[tid]} and "
                          f"{collection}; using the one in {collection}")
    cat.entries[tid] = entry
    cat.collections[tid] = collection
    cat.sources[tid] = source


def _source(root: Path, base: Path, entry: dict[str, Any]) -> str | None:
    """An entry's ``url``/``subpath`` (relative to its collection file, as the real catalogue
    writes them: ``url = "."``, ``subpath = "apps/kit_base_editor/kit_base_editor.kit"``)
    relative to the workspace, or None when that is outside it."""
    url, sub = entry.get("url", "."), entry.get("subpath", "")
    if not isinstance(url, str) or not isinstance(sub, str) or not sub or "://" in url:
        return None
    path = os.path.normpath(os.path.join(base, url, sub))
    rel = os.path.relpath(path, root)
    return None if rel == "." or rel.startswith("..") or os.path.isabs(rel) else \
        rel.replace(os.sep, "/")


def _relative(path: str) -> bool:
    return bool(path) and not path.startswith("/") and ".." not in path.split("/")


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p)


def _config_path(root: Path) -> Path:
    rel = DEFAULT_CONFIG
    try:
        value = tomllib.loads(read_regular(root / "repo.toml").decode()).get(
            "repo_kit_template", {}).get("extension_templates_config")
        if isinstance(value, str) and value:
            rel = value
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        pass
    return root / rel.replace("${root}/", "")


def _read_toml(path: Path, what: str, errors: list[str]) -> dict[str, Any] | None:
    try:
        return tomllib.loads(read_regular(path).decode())
    except FileNotFoundError:
        errors.append(f"{what}: {path} does not exist")
    except (OSError, UnicodeDecodeError) as e:
        errors.append(f"{what}: {path} cannot be read: {e}")
    except tomllib.TOMLDecodeError as e:
        errors.append(f"{what}: {path} is not valid TOML: {e}")
    return None


def _tables(value: Any, where: str, errors: list[str]) -> list[tuple[str, dict[str, Any]]]:
    if value is None:
        errors.append(f"{where}: no [templates] table")
        return []
    if not isinstance(value, dict):
        errors.append(f"{where}: 'templates' is not a table")
        return []
    out = []
    for key, entry in value.items():
        if isinstance(entry, dict):
            out.append((str(key), entry))
        else:
            errors.append(f"{where}: entry {key!r} is not a table; skipped")
    return out


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return value


# -- replay files ---------------------------------------------------------------------------

def toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = ['"']
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else toml_string(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to a replay file")


def replay_toml(tables: list[tuple[list[str], dict[str, Any]]]) -> str:
    """A replay (playback) file: one ``[a.b.c]`` table per entry (empty ones too), keys in order."""
    parts = ["# Written by kitplay for `repo.sh template replay`; safe to delete.\n"]
    for path, values in tables:
        parts.append("\n[" + ".".join(_key(k) for k in path) + "]\n")
        parts.extend(f"{_key(k)} = {_value(v)}\n" for k, v in values.items())
    return "".join(parts)


def nest(tables: list[tuple[list[str], dict[str, Any]]]) -> dict[str, Any]:
    """What ``tomllib`` reads back from ``replay_toml(tables)``."""
    out: dict[str, Any] = {}
    for path, values in tables:
        node = out
        for k in path:
            node = node.setdefault(k, {})
        node.update(values)
    return out


_EXT_KEYS = ("extension_name", "extension_display_name", "version")


def replay_tables(cat: Catalogue, tid: str,
                  answers: dict[str, Any]) -> list[tuple[list[str], dict[str, Any]]]:
    """The tables of a replay file answering template ``tid``, in the real files' shape.

    ``answers`` for an application: ``application_name``, ``version``, optional
    ``application_display_name``, ``layers`` (layer template ids, in order) and ``extensions``
    (``{setup extension template id: {version, optional extension_name,
    extension_display_name}}``; every extension the template links needs one).  For an
    extension or binding extension: ``extension_name``, ``version``, optional
    ``extension_display_name``.  Keys left out are left out of the file.

    The shapes, from kit-app-template 110.1.2:
    - ``tools/ci/automated_templating/kit_base_editor.toml.j2``, ``usd_*.toml.j2``: layers are
      ``add_layers = "Yes"`` (a string), ``selected_layers = ["[id]: Name", ...]`` and one
      empty ``[<app>.applications.<layer id>]`` table per layer;
    - ``kit_service.toml.j2``, ``.vscode/replay_files/*``: no layers, no ``add_layers``;
    - ``usd_viewer.toml.j2``, ``.vscode/replay_files/usd_viewer``: setup extensions are
      ``[<app>.extensions.<extension template id>]``, in the catalogue's link order;
    - ``basic_*_extension.toml.j2``, ``basic_pybind11_extension.toml.j2``: ``[<id>]`` with
      ``extension_name``, ``version`` (``basic_cpp_extension`` also ``extension_display_name``).
    """
    kind = cat.type_of(tid)
    if kind in EXTENSION_TYPES:
        top = {k: answers[k] for k in _EXT_KEYS if answers.get(k) is not None}
        return [([tid], top)]
    if kind != "application":
        raise ValueError(f"template {tid!r} is a {cat.entries[tid].get('class')}; replay files "
                         "answer application and extension templates only")
    top = {k: answers[k] for k in ("application_name", "application_display_name", "version")
           if answers.get(k) is not None}
    layers = list(dict.fromkeys(answers.get("layers") or []))
    offered = cat.layers_for(tid)
    for layer in layers:
        if layer not in offered:
            raise ValueError(f"template {tid!r} offers no layer {layer!r}")
    if layers:
        top["add_layers"] = "Yes"
        top["selected_layers"] = [cat.label(layer) for layer in layers]
    tables: list[tuple[list[str], dict[str, Any]]] = [([tid], top)]
    given = dict(answers.get("extensions") or {})
    for ext_id in cat.extensions_for(tid):
        values = given.pop(ext_id, None)
        if values is None or values.get("version") is None:
            raise ValueError(f"template {tid!r} needs an answer (at least a version) for its "
                             f"extension {ext_id!r}")
        tables.append(([tid, "extensions", ext_id],
                       {k: values[k] for k in _EXT_KEYS if values.get(k) is not None}))
    if given:
        raise ValueError(f"template {tid!r} links no extension {', '.join(map(repr, given))}")
    tables += [([tid, "applications", layer], {}) for layer in layers]
    return tables
