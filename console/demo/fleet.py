"""The demo fleet: four simulated services and the config that watches them.

``conn demo`` starts a :class:`DemoFleet` inside its own process and points
the console at the config it writes; ``python -m console.demo`` (and
``conn demo --fleet-only``) runs the same fleet in the foreground through
:func:`run_fleet_only`, so another console, ``conn agent`` or curl can watch it.

The fleet::

    checkout          stable checkout (users whom checkout_v2 gives false)
    checkout-canary   the canary of checkout (users whom checkout_v2 gives true)
    payments          a slower dependency
    search            a fast, busy one
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from console.demo.canary import CanaryRouter
from console.demo.chat import SECRET_NAME, DemoChat
from console.demo.democonfig import FLAGS_NAME, write_config
from console.demo.faults import parse_faults
from console.demo.service import DemoService
from console.demo.traffic import Role, ServiceProfile
from console.errors import CommandError, ConsoleError
from console.model.text import suggest

PROFILES: tuple[tuple[ServiceProfile, Role, bool], ...] = (
    # (profile, role, routed by the checkout_v2 flag)
    (ServiceProfile("checkout", "1.42.0", median_ms=60.0, requests_per_s=150.0), "stable", True),
    (
        ServiceProfile("checkout-canary", "1.43.0-rc.1", median_ms=62.0, requests_per_s=150.0),
        "canary",
        True,
    ),
    (ServiceProfile("payments", "3.7.2", median_ms=90.0, requests_per_s=80.0), "stable", False),
    (ServiceProfile("search", "2.11.0", median_ms=40.0, requests_per_s=200.0), "stable", False),
)
BASELINES = {"checkout-canary": "checkout"}
"""Canary -> the service it is compared with."""


@dataclass(frozen=True)
class FleetInfo:
    """Where a started fleet can be found."""

    config_path: Path
    """Absolute path of the conn.toml that watches the fleet."""
    urls: dict[str, str] = field(default_factory=dict)
    """Service name -> base URL (``http://127.0.0.1:PORT``), in fleet order."""
    chat_url: str = ""
    """The demo chat's Slack-shaped webhook (the secret ``demo_chat_webhook``)."""


DEMO_WINDOW = 20.0
"""Seconds of traffic behind each health-JSON metric: short, so an injected fault shows in
the console within a few seconds (a real service's "last minute" would take a minute)."""


class DemoFleet:
    """Starts, controls and stops the demo services.

    Args:
        state_dir: where the config (``conn-demo.toml``) is written and where it
            puts the store and the flag export.
        flag_file: a flagd JSON file whose ``checkout_v2`` flag splits checkout
            users between stable and canary; ``None`` sends everyone to stable.
        ports: preferred port per service name; a taken port falls back to a free one.
        window_s: the window of the advanced health metrics (tests shorten it).
        seed: makes the simulated traffic reproducible.
    """

    def __init__(
        self,
        state_dir: Path,
        flag_file: Path | None = None,
        *,
        ports: Mapping[str, int] | None = None,
        window_s: float = DEMO_WINDOW,
        seed: int | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).expanduser().resolve()
        self.flag_file = flag_file
        self.router = CanaryRouter(flag_file)
        ports = ports or {}
        self._services: dict[str, DemoService] = {}
        for index, (profile, role, routed) in enumerate(PROFILES):
            self._services[profile.name] = DemoService(
                profile,
                port=ports.get(profile.name, 0),
                router=self.router if routed else None,
                role=role,
                window_s=window_s,
                seed=None if seed is None else seed + index,
            )
        self.chat = DemoChat()
        self._info: FleetInfo | None = None
        self._lock = threading.Lock()

    @property
    def services(self) -> Mapping[str, DemoService]:
        """Name -> service, in fleet order."""
        return dict(self._services)

    @property
    def info(self) -> FleetInfo | None:
        """What :meth:`start` returned, while the fleet runs."""
        return self._info

    def start(self) -> FleetInfo:
        """Start every service and write the config. Idempotent while running.

        Raises:
            StateDirError: when the config cannot be written (nothing is left running).
            OSError: when loopback cannot be bound at all.
        """
        with self._lock:
            if self._info is not None:
                return self._info
            try:
                urls = {name: service.start() for name, service in self._services.items()}
                chat_url = self.chat.start()
                config_path = write_config(self.state_dir, urls, BASELINES)
            except BaseException:
                self._stop_all()
                raise
            # The demo config's [notify.demo-chat] names this secret; this process (the
            # demo's console, or a test's engine and the agents it starts) gets it here.
            os.environ[f"CONN_SECRET_{SECRET_NAME.upper()}"] = chat_url
            self._info = FleetInfo(config_path=config_path, urls=urls, chat_url=chat_url)
            return self._info

    def stop(self) -> None:
        """Stop every service and join their threads. Idempotent."""
        with self._lock:
            self._stop_all()
            self._info = None

    def _stop_all(self) -> None:
        # In parallel: each server takes up to one poll interval to notice.
        stoppers = [
            threading.Thread(target=service.stop, name=f"demo-stop-{name}")
            for name, service in self._services.items()
        ]
        stoppers.append(threading.Thread(target=self.chat.stop, name="demo-stop-chat"))
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join()

    def __enter__(self) -> DemoFleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_faults(self, name: str, **faults: Any) -> dict[str, Any]:
        """Replace the faults of service ``name``; returns the faults now in force.

        Raises:
            CommandError: unknown service, or an invalid fault (nothing changes).
        """
        service = self._service(name)
        parsed = parse_faults(faults)
        service.set_faults(parsed)
        return parsed.as_dict()

    def clear_faults(self, name: str) -> dict[str, Any]:
        """Remove every fault from service ``name``."""
        return self.set_faults(name)

    def _service(self, name: str) -> DemoService:
        try:
            return self._services[name]
        except KeyError:
            hint = suggest(name, self._services)
            raise CommandError(
                f"{name!r} is not a demo service.{hint} Services: {', '.join(self._services)}"
            ) from None


def run_fleet_only(state_dir: Path, *, out: TextIO | None = None) -> int:
    """Run the fleet in the foreground until SIGINT or SIGTERM; the exit status.

    Prints the config's absolute path as the first line (so a script can read
    it), then one ``name url`` line per service. Must run in the main thread
    (it installs signal handlers, and restores the previous ones on return).
    """
    out = out or sys.stdout
    state_dir = Path(state_dir).expanduser()
    fleet = DemoFleet(state_dir, flag_file=state_dir.resolve() / FLAGS_NAME)
    stopping = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            info = fleet.start()
        except (ConsoleError, OSError) as e:
            print(f"conn demo: cannot start the demo fleet: {e}", file=sys.stderr)
            return 1
        width = max(len(name) for name in info.urls)
        lines = [str(info.config_path)]
        lines += [f"{name:<{width}}  {url}" for name, url in info.urls.items()]
        lines.append(f"chat: export CONN_SECRET_{SECRET_NAME.upper()}={info.chat_url}"
                     f"  (messages: curl -s {info.chat_url.split('/services/')[0]}/_demo/chat)")
        _announce(lines, out)
        print("demo fleet running; Ctrl-C stops it.", file=sys.stderr, flush=True)
        while not stopping.wait(0.5):
            pass
        return 0
    finally:
        fleet.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _announce(lines: list[str], out: TextIO) -> None:
    """Print the lines, flushing each; a reader that went away does not stop the fleet.

    A script may read only the first line and close the pipe: the fleet keeps
    running until it is signalled, and stdout goes to /dev/null so the
    interpreter's final flush does not complain either (the recipe from the
    Python docs on SIGPIPE).
    """
    try:
        for line in lines:
            print(line, file=out, flush=True)
    except BrokenPipeError:
        if out is sys.stdout:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
