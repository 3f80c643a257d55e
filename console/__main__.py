"""`python -m console` is the same as `conn`."""

from __future__ import annotations

from console.cli import main

raise SystemExit(main())
