"""The conn.toml that watches the demo fleet, written where ``conn demo`` reads it.

The numbers are the plans' own: alert rules from plan 004 (errors > 1 %
warning, > 5 % critical; p95 > 500/1000 ms), cache hit > 80 %/70 % and memory
< 70 % from plans 000 and 002, circuit-breaker opens > 5 in 10 minutes from
plan 001. Each service's p50/p95/p99 and error_rate are those of its simulated
traffic, read from its health JSON (``[services.X.json]``), so what the table
calls errors is the service's own and an injected ``error_rate`` fault shows
without Prometheus; the prober's failed health checks are ``probe_errors``,
judged by the same levels. The runbooks shipped for this fleet
(``console/demo/runbooks``) are the config's ``[runbooks] paths``. The text is
TOML written by hand (the stdlib reads TOML but cannot write it), every
string escaped, and it is validated by ``parse_config`` in the tests.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from console.actions.runbook_files import demo_runbooks_folder
from console.errors import StateDirError

CONFIG_NAME = "conn-demo.toml"
FLAGS_NAME = "flags.json"
STORE_NAME = "conn.db"

PROBE_INTERVAL = "1s"
PROBE_TIMEOUT = "2s"

_SIGNALS = """\
# p50/p95/p99 and errors are the service's own traffic, not Conn's health checks
# (those are probe_errors).
[services.{key}.json]
p50 = "metrics.p50_ms"
p95 = "metrics.p95_ms"
p99 = "metrics.p99_ms"
error_rate = {{ path = "metrics.error_rate", scale = 100.0 }}

[services.{key}.signals.cache_hit_rate]
json_path = "metrics.cache_hit_rate"
unit = "%"
scale = 100.0
label = "cache hit"

[services.{key}.thresholds.cache_hit_rate]
warning = 80.0
critical = 70.0
direction = "below"

[services.{key}.signals.memory_pct]
json_path = "metrics.memory_pct"
unit = "%"
label = "memory"

[services.{key}.thresholds.memory_pct]
warning = 70.0
critical = 90.0

[services.{key}.signals.circuit_breaker_opens]
json_path = "metrics.circuit_breaker_opens"
label = "breaker opens"

[services.{key}.thresholds.circuit_breaker_opens]
warning = 3.0
critical = 5.0
"""

_CANARY_SHARE = """\
[services.{key}.signals.canary_share]
json_path = "metrics.canary_share"
unit = "%"
scale = 100.0
label = "canary share"
"""


def render_config(
    state_dir: Path, urls: Mapping[str, str], baselines: Mapping[str, str] | None = None
) -> str:
    """The demo config for services at ``urls`` (name -> base URL).

    Args:
        state_dir: absolute directory for the store and the flag export.
        urls: base URLs, e.g. ``{"checkout": "http://127.0.0.1:41234"}``.
        baselines: canary -> the service it is compared with.
    """
    baselines = baselines or {}
    state = state_dir.resolve()
    lines = [
        "# Written by `conn demo` for its embedded fleet; rewritten on every start.",
        'environment = "demo"',
        f"store = {_string('sqlite:///' + str(state / STORE_NAME))}",
        "",
        "# Plan 004 alert rules: errors > 1 % warning, > 5 % critical (in percent).",
        "[defaults.thresholds.error_rate]",
        "warning = 1.0",
        "critical = 5.0",
        "",
        "[defaults.thresholds.p95]",
        "warning = 500.0",
        "critical = 1000.0",
        "",
        "# The prober's failed health checks, by the same rule as the traffic's errors.",
        "[defaults.thresholds.probe_errors]",
        "warning = 1.0",
        "critical = 5.0",
        "",
        "# The runbooks shipped with Conn, written for this fleet (`b` in the console,",
        "# `conn runbook list`); an absolute path, as the demo config lives in the state dir.",
        "[runbooks]",
        f"paths = [{_string(str(demo_runbooks_folder()))}]",
        "",
        "[flags]",
        f"export = {_string(str(state / FLAGS_NAME))}",
        "",
        _DEMO_FLAGS,
    ]
    for name, base_url in urls.items():
        key = _key(name)
        lines.append(f"[services.{key}]")
        lines.append(f"health_url = {_string(base_url.rstrip('/') + '/api/health/advanced')}")
        lines.append(f'interval = "{PROBE_INTERVAL}"')
        lines.append(f'timeout = "{PROBE_TIMEOUT}"')
        if name in baselines:
            lines.append(f"baseline = {_string(baselines[name])}")
        lines.append("")
        lines.append(_SIGNALS.format(key=key))
        if name in baselines:
            lines.append(_CANARY_SHARE.format(key=key))
    if "checkout" in urls and baselines.get("checkout-canary") == "checkout":
        lines.append(_DEMO_ROLLOUT)
    return "\n".join(lines).rstrip("\n") + "\n"


_DEMO_ROLLOUT = """# The canary rollout: each stage sets checkout_v2, which really moves the
# canary's share of the simulated users. The windows are short so a fault is
# caught while you watch (production rules say 5m where these say 10s).
[incidents]
auto_rollback_severity = "SEV2"

# The demo's own Slack-shaped chat (console/demo/chat.py): incidents and
# rollouts are told there through the leader's outbox.
[notify.demo-chat]
format = "slack"
url_secret = "demo_chat_webhook"

[rollouts.checkout]
canary = "checkout-canary"
baseline = "checkout"
flag = "checkout_v2"
grace = "5s"
advance = "manual"
max_detection = "90s"

[[rollouts.checkout.stages]]
name = "internal"
groups = ["internal"]
percent = 0
bake = "15s"

[[rollouts.checkout.stages]]
name = "10%"
percent = 10
bake = "20s"

[[rollouts.checkout.stages]]
name = "50%"
percent = 50
bake = "20s"

[[rollouts.checkout.stages]]
name = "100%"
percent = 100
bake = "0s"

[rollouts.checkout.gate]
criteria = ["p95 < 500ms", "error_rate < 1%", "cache_hit_rate > 70%"]
on_fail = "hold"
min_samples = 10

[rollouts.checkout.abort]
criteria = ["error_rate > 5% for 10s", "health_failures > 3 within 30s", "p95 > 1000ms for 10s"]
on_fail = "rollback"
"""


_DEMO_FLAGS = """\
# Simulated users are user-1 … user-1000; the first five are the internal team.
[flags.groups]
internal = ["user-1", "user-2", "user-3", "user-4", "user-5"]
beta-testers = ["user-10", "user-11", "user-12", "user-13", "user-14", "user-15"]
early-adopters = ["user-20", "user-21", "user-22", "user-23"]

# The canary: checkout routes users who get `true` to checkout-canary.
# Stage 1 is the internal team; then 10% -> 50% -> 100% (`f` in the console).
[flags.define.checkout_v2]
description = "new checkout, served by checkout-canary"
groups = ["internal"]
percent = 0

# Plan 000: the calendar refactor, internal team first.
[flags.define.calendar_refactor]
description = "CalendarWithQuery instead of CalendarLegacy"
groups = ["internal"]
percent = 0

# Plan 004: Pulse flags with percentages and groups.
[flags.define.aiSummarization]
description = "AI summaries of long threads"
groups = ["internal", "beta-testers"]
percent = 50

[flags.define.smartFolders]
groups = ["internal", "beta-testers"]
percent = 25

[flags.define.voiceMessages]
description = "not ready: off for everyone"
enabled = false
groups = ["internal"]
"""


def write_config(
    state_dir: Path, urls: Mapping[str, str], baselines: Mapping[str, str] | None = None
) -> Path:
    """Write ``state_dir/conn-demo.toml`` atomically and return its absolute path.

    Raises:
        StateDirError: when the directory cannot be created or written.
    """
    state = state_dir.expanduser().resolve()
    target = state / CONFIG_NAME
    text = render_config(state, urls, baselines)
    try:
        state.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".conn-demo-", suffix=".toml", dir=state)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise StateDirError(f"cannot write the demo config in {state}: {e.strerror or e}") from e
    except UnicodeEncodeError as e:
        raise StateDirError(f"the demo state directory {state!r} is not valid UTF-8") from e
    return target


def _key(name: str) -> str:
    """A TOML key: bare when it can be, quoted otherwise."""
    if name and all(c.isascii() and (c.isalnum() or c in "-_") for c in name):
        return name
    return _string(name)


def _string(value: str) -> str:
    """A TOML basic string; escapes what TOML forbids raw (controls, DEL, quote, backslash)."""
    out = []
    for char in value:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
