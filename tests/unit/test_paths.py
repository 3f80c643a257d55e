"""One reading of a SQLite store URL, for the config check, ``store_path`` and ``open_store``."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config import parse_config
from console.errors import ConfigError, StoreError
from console.paths import sqlite_url_path
from console.store import sqlite_path


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///var/lib/conn/conn.db", "/var/lib/conn/conn.db"),
        ("sqlite:////var/lib/conn/conn.db", "/var/lib/conn/conn.db"),  # slashes cannot change the file
        ("sqlite:///~/conn.db", "/~/conn.db"),  # only the config expands a home directory
    ],
)
def test_a_sqlite_url_names_one_absolute_file(url: str, path: str) -> None:
    assert sqlite_url_path(url) == Path(path)
    assert sqlite_path(url) == path


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite:////", "sqlite:///x.db?mode=ro", "sqlite:///x.db#a"])
def test_a_sqlite_url_without_a_plain_path_is_refused_everywhere(url: str) -> None:
    with pytest.raises(ValueError, match="file path"):
        sqlite_url_path(url)
    with pytest.raises(StoreError, match="is not a SQLite store URL"):
        sqlite_path(url)
    with pytest.raises(ConfigError, match="a SQLite store URL is sqlite:/// and a file path"):
        parse_config(f'store = "{url}"\n')


@pytest.mark.parametrize("url", ["sqlite://relative/conn.db", "postgresql://conn@db/conn", "conn.db"])
def test_other_urls_are_not_sqlite_urls(url: str) -> None:
    assert sqlite_url_path(url) is None
    with pytest.raises(StoreError, match="is not a SQLite store URL"):
        sqlite_path(url)


def test_the_config_expands_home_and_its_store_path_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/alice")
    config = parse_config('store = "sqlite:///~/conn.db"\n')
    assert config.store == "sqlite:///home/alice/conn.db"
    assert config.store_path == Path("/home/alice/conn.db")
    assert sqlite_path(config.store) == "/home/alice/conn.db"
    assert parse_config('store = "postgresql://conn@db/conn"\n').store_path is None
