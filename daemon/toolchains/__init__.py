"""Toolchains: what a workspace is built with, detected from its contents.

- ``builtin``: the embedded catalogue (no SDK needed);
- ``kit-app-template``: a checkout of NVIDIA's kit-app-template (``repo.sh``, ``repo.toml``,
  ``templates/templates.toml``).
"""

from __future__ import annotations

from pathlib import Path

from ..trust import check_trusted
from .base import Plan, Step, Toolchain
from .builtin import BuiltinToolchain

__all__ = ["KINDS", "Plan", "Step", "Toolchain", "detect", "is_kit_checkout"]

KINDS = ("builtin", "kit-app-template")


def is_kit_checkout(root: Path) -> bool:
    return all((root / p).is_file() for p in ("repo.sh", "repo.toml", "templates/templates.toml"))


def detect(root: Path) -> Toolchain:
    if is_kit_checkout(root):
        for p in ("repo.sh", "repo.toml", "templates/templates.toml"):  # what decides what runs
            check_trusted(root / p, root, below_workspace=True)  # root: resolve_workspace
        from .kit import KitToolchain

        return KitToolchain(root)
    return BuiltinToolchain(root)
