"""Fixtures every test module may ask for by name: the store backends (SQLite and a
throwaway PostgreSQL cluster). Other fixtures are imported explicitly where used."""

from __future__ import annotations

pytest_plugins = ["tests.fixtures.stores"]
