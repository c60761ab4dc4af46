"""Daemon configuration: defaults, overridden by config.toml, overridden by flags."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .protocol.paths import config_path, default_socket_path, default_state_dir

__all__ = ["Config", "load_config"]


@dataclass
class Config:
    socket: Path = field(default_factory=default_socket_path)
    state_dir: Path = field(default_factory=default_state_dir)
    workspace: Path = field(
        default_factory=lambda: Path(os.environ.get("XDG_DATA_HOME")
                                     or Path.home() / ".local" / "share") / "kitplay" / "workspace")
    max_concurrent_jobs: int = 4          # create and build jobs running at once
    max_line_bytes: int = 1024 * 1024     # JSON-RPC frame size limit
    max_inflight_per_connection: int = 64
    log_cap_bytes: int = 256 * 1024 * 1024
    log_retention_jobs: int = 1000        # logs of older finished jobs are deleted
    cancel_grace_s: float = 10.0
    shutdown_grace_s: float = 5.0         # builds get this long when the daemon stops
    restart_backoff_initial_s: float = 0.1
    restart_backoff_max_s: float = 10.0
    restart_stable_s: float = 10.0
    step_timeout_s: float = 3600.0
    create_timeout_s: float = 600.0
    xpra_python: str = ""                 # Python that runs xpra; "" = the xpra script's #!
    # Jobs run this much nicer than the daemon (0-19; 0: as the daemon), so that the daemon
    # answers at its idle speed while builds use every core.
    job_nice: int = 10

    def apply(self, values: dict[str, Any]) -> None:
        names = {f.name: f for f in dataclasses.fields(self)}
        for key, value in values.items():
            key = key.replace("-", "_")
            if key not in names:
                raise ValueError(f"unknown config key {key!r}; known: {', '.join(names)}")
            current = getattr(self, key)
            if isinstance(current, Path):
                value = Path(value).expanduser()
            elif isinstance(current, bool) or not isinstance(value, type(current)):
                if isinstance(current, float) and isinstance(value, int):
                    value = float(value)
                else:
                    raise ValueError(
                        f"config key {key!r} must be {type(current).__name__}, got {value!r}")
            setattr(self, key, value)

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def db_path(self) -> Path:
        return self.state_dir / "kitplay.db"


def load_config(path: Path | None = None) -> Config:
    cfg = Config()
    p = path or config_path()
    if p.is_file():
        with p.open("rb") as f:
            data = tomllib.load(f)
        # Daemon keys live at the top level or under [daemon]; [bridge] is the bridge's.
        top = {k: v for k, v in data.items() if k not in ("daemon", "bridge")}
        cfg.apply({**top, **data.get("daemon", {})})
    return cfg
