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
    return SQLITE_URL_PREFIX + str(state_dir() / "conn.db").lstrip("/")


SQLITE_URL_PREFIX = "sqlite:///"
"""How every SQLite store URL begins: the scheme, an empty host, then an absolute path."""


def sqlite_url_path(url: str, *, expand_home: bool = False) -> Path | None:
    """The absolute file a ``sqlite:///…`` URL names; None when ``url`` is no SQLite URL at all.

    The one reading of a SQLite store URL, shared by the config check, the
    config's ``store_path`` and ``open_store``, so the three cannot disagree
    on which file is meant. ``sqlite:///abs/path`` and ``sqlite:////abs/path``
    both mean ``/abs/path``: only absolute paths are taken, so the number of
    slashes cannot change the file.

    Args:
        url: the store URL.
        expand_home: read ``sqlite:///~/conn.db`` as a file in the home
            directory. The config asks for it, because a person typed the URL;
            the store does not, because it is handed the config's already
            expanded URL and must not reinterpret one.

    Raises:
        ValueError: ``url`` starts with ``sqlite:///`` but names no file, or
            carries ``?options`` or a ``#fragment``.
    """
    if not url.startswith(SQLITE_URL_PREFIX):
        return None
    rest = url.removeprefix(SQLITE_URL_PREFIX)
    if not rest.strip("/") or "?" in rest or "#" in rest:
        raise ValueError(f"{SQLITE_URL_PREFIX} must be followed by a file path, with no ?options")
    if expand_home and rest.startswith("~"):
        return Path(rest).expanduser()
    return Path("/" + rest.lstrip("/"))
