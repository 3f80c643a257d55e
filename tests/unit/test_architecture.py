"""The headless core never imports Textual; the import-linter contracts hold."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import console

ROOT = Path(__file__).resolve().parents[2]
HEADLESS = ("console.model", "console.engine", "console.store", "console.sources",
            "console.actions", "console.config", "console.secrets", "console.demo", "console.cli")


def headless_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(console.__path__, "console."):
        if info.name.startswith(HEADLESS) and not info.name.endswith("__main__"):
            names.append(info.name)
    return sorted(names)


def test_headless_modules_do_not_import_textual() -> None:
    modules = headless_modules()
    assert len(modules) > 20
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    assert 'textual' not in sys.modules, name\n"
        "print('ok', len(sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ok")


def test_model_imports_nothing_of_ours_but_model() -> None:
    for path in (ROOT / "console/model").glob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("from console", "import console")):
                assert stripped.startswith(("from console.model", "import console.model")), (
                    f"{path.name}: {stripped}"
                )


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    run = subprocess.run([str(lint)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "broken" in run.stdout and " 0 broken" in run.stdout


def test_every_ui_binding_has_a_known_id_and_every_id_a_binding() -> None:
    import importlib

    from textual.binding import Binding

    from console.model.keys import BINDING_IDS

    found: set[str] = set()
    for info in pkgutil.walk_packages(console.__path__, "console."):
        if not info.name.startswith("console.ui"):
            continue
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if not isinstance(value, type) or value.__module__ != info.name:
                continue  # only classes of ours, with their own BINDINGS
            for binding in vars(value).get("BINDINGS", []):
                if isinstance(binding, Binding):
                    assert binding.id, f"{value.__name__}: binding {binding.key!r} has no id"
                    found.add(binding.id)
    assert found == set(BINDING_IDS)
