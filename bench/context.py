"""What every bench section receives: the mode, a scratch directory, and a place to note skips."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .procs import short_tmpdir

__all__ = ["Ctx"]


@dataclass
class Ctx:
    quick: bool
    base: Path = field(default_factory=short_tmpdir)

    def tmp(self, name: str) -> Path:
        """A fresh directory under the run's scratch directory (short, for socket paths)."""
        d = self.base / name
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        return d

    def pick(self, quick: int, full: int) -> int:
        return quick if self.quick else full

    def cleanup(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)
