"""What a kit-app-template checkout has made: its apps, layers and extensions, and its versions.

Read from the tool's own records, in the shapes kit-app-template 110.1.2 writes them:

- ``source/rendered_template_metadata.json`` (forks that committed it, e.g. brian3814/kat_demo,
  kreeuwijk/omniverse-dsx-blueprint-for-ai-factories): one JSON object,
  ``{"_comment": ..., "Application": {<template>: {<app>: {<template>: {answers}}}},
  "Extension": {<template>: {<extension>: {<template>: {answers}}}}}``; an application's
  answers hold ``extensions`` (``{<template>: {extension_name, ...}}``) and, with layers,
  ``applications`` (``{<layer template>: {}}``);
- ``source/apps/*.kit``: ``[package] title, version``; the tool appends
  ``[template] type = "ApplicationTemplate"`` or ``"ApplicationLayerTemplate"``; a layer's
  ``[dependencies]`` starts with the app it extends (templates/apps/streaming_configs/*.kit:
  ``"{{ application_name }}" = {}  # Application kit file``); after a build, precache appends
  a "BEGIN GENERATED PART" that repeats ``[settings.app.exts]``, which strict TOML refuses, so
  ``[package]`` is read from the part before it;
- versions: ``tools/VERSION.md`` is the Kit SDK version (``tools/ci/build.py`` reads it), also
  pinned as ``kit-kernel`` in ``tools/deps/kit-sdk.packman.xml``; since 110.1.2 the root
  ``VERSION.md`` is the project's own version (``repo.toml``: ``[repo.folders] version_file``).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from .base import read_regular
from .kit_catalogue import Catalogue

__all__ = ["kit_version", "list_apps", "metadata", "project_version", "read_kit_file",
           "read_kit"]

_KERNEL = re.compile(r'<package\s+name="kit-kernel"\s+version="([^"+$]+)')


def _first_line(path: Path) -> str | None:
    try:
        lines = read_regular(path).decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if line.strip():
            return line.strip().lstrip("#").strip()[:100]
    return None


def kit_version(root: Path) -> str | None:
    """The Kit SDK version: ``tools/VERSION.md``, else the kit-kernel package version."""
    found = _first_line(root / "tools" / "VERSION.md")
    if found:
        return found
    try:
        m = _KERNEL.search(read_regular(root / "tools" / "deps" / "kit-sdk.packman.xml")
                           .decode(errors="replace"))
    except OSError:
        return None
    return m.group(1) if m else None


def project_version(root: Path) -> str | None:
    """The project's own version: the file ``[repo.folders] version_file`` names (110.1.2+)."""
    try:
        value = tomllib.loads(read_regular(root / "repo.toml").decode()).get(
            "repo", {}).get("folders", {}).get("version_file")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return None
    if not isinstance(value, str) or not value.startswith("${root}/"):
        return None
    rel = value.removeprefix("${root}/")
    if rel == "tools/VERSION.md" or ".." in Path(rel).parts:
        return None
    return _first_line(root / rel)


def read_kit(text: str) -> dict[str, Any]:
    """A .kit file as TOML, without the part a build appended (strict TOML refuses it)."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("# BEGIN GENERATED PART"):
            text = "".join(lines[:i])
            break
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def read_kit_file(kit: Path) -> dict[str, Any]:
    try:
        data = read_kit(read_regular(kit).decode())
    except (OSError, UnicodeDecodeError):
        return {}
    return data


def metadata(root: Path) -> dict[str, Any]:
    """``source/rendered_template_metadata.json``, or {} when missing or not an object."""
    try:
        data = json.loads(read_regular(root / "source" / "rendered_template_metadata.json"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _records(data: dict[str, Any], section: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(template id, name, answers) of one section of the metadata."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    by_template = data.get(section)
    if not isinstance(by_template, dict):
        return out
    for tid, by_name in by_template.items():
        if not isinstance(by_name, dict):
            continue
        for name, wrapped in by_name.items():
            answers = wrapped.get(tid) if isinstance(wrapped, dict) else None
            out.append((str(tid), str(name), answers if isinstance(answers, dict) else {}))
    return out


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def list_apps(root: Path, cat: Catalogue, release_dir: Path) -> list[dict[str, Any]]:
    """Apps, their layers and every extension the tool made, as records of the App schema."""
    apps_dir = root / "source" / "apps"
    exts_dir = root / "source" / "extensions"
    out: dict[str, dict[str, Any]] = {}

    def add(rec: dict[str, Any]) -> None:
        out.setdefault(rec["path"], rec)

    data = metadata(root)
    for tid, name, answers in _records(data, "Application"):
        add({"name": name, "type": "application", "template": tid,
             "display_name": _str(answers.get("application_display_name")),
             "version": _str(answers.get("version")),
             "path": str(apps_dir / f"{name}.kit"), "parent": None})
        layers = answers.get("applications")
        for layer in layers if isinstance(layers, dict) else {}:
            suffix = cat.entries.get(layer, {}).get("type") or layer
            add({"name": f"{name}_{suffix}", "type": "application_layer", "template": layer,
                 "display_name": None, "version": _str(answers.get("version")),
                 "path": str(apps_dir / f"{name}_{suffix}.kit"), "parent": name})
        exts = answers.get("extensions")
        for ext_tid, ext in exts.items() if isinstance(exts, dict) else []:
            ext = ext if isinstance(ext, dict) else {}
            ext_name = _str(ext.get("extension_name"))
            if ext_name:
                add({"name": ext_name, "type": "setup_extension", "template": ext_tid,
                     "display_name": _str(ext.get("extension_display_name")),
                     "version": _str(ext.get("version")),
                     "path": str(exts_dir / ext_name), "parent": name})
    for tid, name, answers in _records(data, "Extension"):
        add({"name": name, "type": cat.type_of(tid) if tid in cat.entries else "extension",
             "template": tid, "display_name": _str(answers.get("extension_display_name")),
             "version": _str(answers.get("version")), "path": str(exts_dir / name),
             "parent": None})
    # .kit files the metadata does not name (made by hand, or by an older tool).
    for kit in sorted(apps_dir.glob("*.kit")) if apps_dir.is_dir() else []:
        if str(kit) not in out:
            add({"name": kit.name.removesuffix(".kit"), "type": "application",
                 "template": None, "display_name": None, "version": None, "path": str(kit),
                 "parent": None})
    for d in sorted(exts_dir.iterdir()) if exts_dir.is_dir() else []:
        if d.is_dir() and str(d) not in out:
            add({"name": d.name, "type": "extension", "template": None, "display_name": None,
                 "version": None, "path": str(d), "parent": None})
    for rec in out.values():
        path = Path(rec["path"])
        rec["exists"] = path.exists()
        if path.suffix == ".kit":
            data = read_kit_file(path)
            pkg = _table(data, "package")
            if _table(data, "template").get("type") == "ApplicationLayerTemplate":
                rec["type"] = "application_layer"
                deps = data.get("dependencies")
                first = next(iter(deps), None) if isinstance(deps, dict) else None
                if rec["parent"] is None and isinstance(first, str) and \
                        (apps_dir / f"{first}.kit").is_file():
                    rec["parent"] = first
            rec["display_name"] = _str(pkg.get("title")) or rec["display_name"]
            rec["version"] = _str(pkg.get("version")) or rec["version"]
            rec["built"] = (release_dir / (path.name + ".sh")).is_file()
        else:
            pkg = _table(read_kit_file(path / "config" / "extension.toml"), "package")
            rec["display_name"] = rec["display_name"] or _str(pkg.get("title"))
            rec["version"] = rec["version"] or _str(pkg.get("version"))
            rec["built"] = (release_dir / "exts" / path.name).is_dir()
    return list(out.values())
