"""Template icons and docs as the API hands them out: image bytes of a known kind, capped text.

An icon is served to a browser (``GET /api/templates/icon/<id>``), so only images whose bytes
say what they are get through: PNG, JPEG, GIF, WebP and ICO by their magic numbers, SVG by its
``.svg`` name and an ``<svg`` element near the start.  The bridge serves every icon with a
sandboxing Content-Security-Policy and ``nosniff``, so an SVG from a hostile workspace cannot
run script on the bridge's origin.
"""

from __future__ import annotations

import base64
import re
from typing import Any

__all__ = ["DOCS_LIMIT", "ICON_LIMIT", "ICON_TYPES", "docs_text", "icon_result", "sniff"]

ICON_LIMIT = 1024 * 1024
DOCS_LIMIT = 128 * 1024
ICON_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/x-icon",
              "image/svg+xml")
_SVG = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*|<!DOCTYPE[^>]*>\s*)*<svg[\s>]",
                  re.S | re.I)


def sniff(data: bytes, name: str) -> str | None:
    """The image type of ``data`` (one of ICON_TYPES), or None when it is no known image."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] == b"\x00\x00\x01\x00":
        return "image/x-icon"
    if name.lower().endswith(".svg") and _SVG.match(data.removeprefix(b"\xef\xbb\xbf")[:4096]):
        return "image/svg+xml"
    return None


def icon_result(template: str, data: bytes, content_type: str) -> dict[str, Any]:
    return {"name": template, "content_type": content_type, "size": len(data),
            "data_base64": base64.b64encode(data).decode("ascii")}


def docs_text(data: bytes, limit: int = DOCS_LIMIT) -> str:
    """A README as text: UTF-8 (bad bytes replaced), cut at ``limit`` bytes with a note."""
    text = data[:limit].decode("utf-8", errors="replace")
    if len(data) > limit:
        text += f"\n\n[kitplay: the rest of this file is not shown; it has {len(data)} bytes]\n"
    return text
