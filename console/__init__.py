"""Conn: a terminal console for rollouts and incidents."""

from __future__ import annotations

__version__ = "0.1.0"
