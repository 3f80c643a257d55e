"""Where Conn keeps its files, by the XDG base-directory rules."""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable, "").strip()
    base = Path(value) if value and Path(value).is_absolute() else Path.home() / fallback
    return base / "conn"


def state_dir() -> Path:
    """``$XDG_STATE_HOME/conn`` (default ``~/.local/state/conn``): the store, locks, exports."""
    return _xdg("XDG_STATE_HOME", ".local/state")


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/conn`` (default ``~/.config/conn``)."""
    return _xdg("XDG_CONFIG_HOME", ".config")


def default_store_url() -> str:
    """The embedded store under the state dir."""
    return "sqlite:///" + str(state_dir() / "conn.db").lstrip("/")
