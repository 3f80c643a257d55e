"""The TOML config, as pydantic models, with errors a person can act on.

One file describes an environment: the store, the services to watch, the
signal sources and thresholds, and the flags. Later sections (rollouts,
runbooks, notifications, roles) extend the same root model.

Every problem is reported at once, each naming the dotted key, the offending
value and, for unknown keys, the nearest known one.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from console.errors import ConfigError, ConfigNotFound
from console.model.alerts import AlertmanagerConfig
from console.model.flags import FlagsConfig
from console.model.gates import CriterionError, parse_criterion, unknown_signals
from console.model.incident_config import IncidentsConfig
from console.model.keys import BINDING_IDS
from console.model.notify import NotifyConfig
from console.model.rollout_config import RolloutConfig
from console.model.text import suggest
from console.model.thresholds import (
    BUILTIN_SIGNALS,
    FEEDABLE_SIGNALS,
    JsonSource,
    SignalName,
    SignalSpec,
    Threshold,
)
from console.model.units import Duration
from console.paths import SQLITE_URL_PREFIX, config_dir, default_store_url, sqlite_url_path

__all__ = ["BUILTIN_SIGNALS", "ConnConfig", "ServiceConfig", "SignalSpec", "Threshold", "load_config"]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable, numbers finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class PrometheusQueries(Strict):
    """PromQL templates for the built-in signals; "{service}" is replaced by the name.

    Queries answer in Prometheus' base units: p50/p95/p99 in seconds and
    error_rate as a ratio 0–1. Conn shows them in milliseconds and percent.
    A built-in with a query shows Prometheus' value instead of the prober's.
    """

    p50: str | None = None
    p95: str | None = None
    p99: str | None = None
    error_rate: str | None = None


class HealthJsonSignals(Strict):
    """Paths in the health JSON for the built-in signals, read instead of the prober's measurement.

    Each key is a dotted path (``p95 = "metrics.p95_ms"``, scale 1) or a table
    (``error_rate = { path = "metrics.error_rate", scale = 100.0 }``). Values
    after ``scale`` are in Conn's units: p50/p95/p99 in milliseconds,
    error_rate in percent. A built-in read here behaves like a named JSON
    signal (the latest probe's reading, stale after three intervals and a
    timeout); the prober's own failure rate stays in ``probe_errors``.
    """

    unknown_key_hint: ClassVar[str] = (
        f" Only {', '.join(FEEDABLE_SIGNALS)} are read here (probe_errors is the prober's"
        " own); other values are named signals: [services.<name>.signals.<key>]."
    )
    """Appended to an unknown key's error (see :func:`describe_validation_errors`)."""

    p50: JsonSource | None = None
    p95: JsonSource | None = None
    p99: JsonSource | None = None
    error_rate: JsonSource | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _plain_path(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"path": value}
        if value is not None and not isinstance(value, dict):
            raise ValueError(
                'give a dotted path ("metrics.p95_ms") or a table '
                '{ path = "metrics.error_rate", scale = 100.0 }'
            )
        return value

    def sources(self) -> dict[str, JsonSource]:
        """The built-ins that have a path, by name."""
        return {name: path for name in FEEDABLE_SIGNALS if (path := getattr(self, name)) is not None}


class ServiceConfig(Strict):
    """One service to watch."""

    health_url: str
    """The health endpoint Conn probes (http:// or https://)."""
    interval: Duration = 5.0
    """Time between the end of one probe and the start of the next."""
    timeout: Duration = 2.0
    """A probe slower than this is a failure ("timeout after 2s")."""
    follow_redirects: bool = False
    """Follow HTTP redirects (off: a redirect is reported as such)."""
    ca_bundle: Path | None = None
    """A CA bundle for TLS verification (verification itself is always on)."""
    baseline: str | None = None
    """For a canary: the service it is compared with (ratios on the panels, gates)."""
    profile: str | None = None
    """A threshold profile (endpoint class) from [profiles] whose thresholds apply."""
    thresholds: dict[SignalName, Threshold] = Field(default_factory=dict)
    """Per-signal thresholds; they override the profile's and the defaults'."""
    signals: dict[SignalName, SignalSpec] = Field(default_factory=dict)
    """Named custom signals (cache hit rate, memory %, circuit-breaker opens)."""
    queries: PrometheusQueries = PrometheusQueries()
    """PromQL for the built-in signals, when Prometheus is configured."""
    health_json: HealthJsonSignals = Field(default_factory=HealthJsonSignals, alias="json")
    """``[services.X.json]``: built-in signals read from the health JSON (a pydantic
    model cannot have a field called ``json``, hence the alias)."""

    @field_validator("health_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @field_validator("signals")
    @classmethod
    def _custom_names(cls, value: dict[str, SignalSpec]) -> dict[str, SignalSpec]:
        if clash := sorted(set(value) & set(BUILTIN_SIGNALS)):
            raise ValueError(
                f"{', '.join(clash)} {'is' if len(clash) == 1 else 'are'} built in "
                "(measured by the prober); give the custom signal another name"
            )
        return value

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: float) -> float:
        if value < 0.1:
            raise ValueError("must be at least 100ms")
        return value


class ProfileConfig(Strict):
    """A named set of thresholds, e.g. an endpoint class with its SLA."""

    description: str = ""
    thresholds: dict[SignalName, Threshold] = Field(default_factory=dict)


class PrometheusConfig(Strict):
    """The team's Prometheus server."""

    url: str
    """Base URL, e.g. "http://127.0.0.1:9090"."""
    timeout: Duration = 5.0
    interval: Duration = 15.0
    """Time between query rounds."""
    auth: Literal["none", "bearer", "basic"] = "none"
    token_secret: str | None = None
    """Name of the secret holding the bearer token (never the token itself)."""
    username: str | None = None
    password_secret: str | None = None
    """Name of the secret holding the basic-auth password."""
    ca_bundle: Path | None = None

    @model_validator(mode="after")
    def _auth(self) -> PrometheusConfig:
        if self.auth == "bearer" and not self.token_secret:
            raise ValueError('auth = "bearer" needs token_secret (the secret\'s name)')
        if self.auth == "basic" and not (self.username and self.password_secret):
            raise ValueError('auth = "basic" needs username and password_secret')
        return self


class SourcesConfig(Strict):
    prometheus: PrometheusConfig | None = None
    alertmanager: AlertmanagerConfig | None = None
    """[sources.alertmanager]: alerts that open or join incidents (README: Incidents)."""


class HistoryConfig(Strict):
    """How long the leader keeps each service's signal history (see README: Signal history)."""

    slices: Duration = 24 * 3600.0
    """Keep the 10-second slices this long (default "24h")."""
    rollups: Duration = 14 * 86400.0
    """Keep the 1-minute roll-ups this long (default "14d")."""
    sketches: Duration = 15 * 60.0
    """Keep each slice's latency sketch this long (default "15m"); at least the longest
    window a rule reads (5m today), so windows rebuild exactly after a change of leader."""

    @model_validator(mode="after")
    def _order(self) -> HistoryConfig:
        if self.sketches < 300:
            raise ValueError("sketches must be kept at least 5m (the longest window)")
        if self.slices < self.sketches:
            raise ValueError("slices must be kept at least as long as sketches")
        if self.rollups < 60:
            raise ValueError("rollups must be kept at least 1m")
        return self


class UiConfig(Strict):
    """How the console lays out what it shows."""

    order: Literal["trouble", "config"] = "trouble"
    """The services table's order: "trouble" puts the worst first (down, critical,
    warning, stale, ok; config order within each), "config" keeps the order of
    [services]. The `o` key switches while the console runs."""


class RunbooksConfig(Strict):
    """``[runbooks]``: where the runbooks are and what runs their steps."""

    paths: list[Path] = Field(default_factory=lambda: [Path("runbooks")])
    """Folders (or ``.md`` files) of runbooks, relative to the config file's folder."""
    shell: list[str] = Field(default_factory=lambda: ["bash", "-c"], min_length=1)
    """The shell's argv up to and including its "run this text" flag."""


class DefaultsConfig(Strict):
    """What applies to every service unless it says otherwise."""

    thresholds: dict[SignalName, Threshold] = Field(default_factory=dict)


class ConnConfig(Strict):
    """The root of conn.toml."""

    _source: Path | None = PrivateAttr(default=None)

    environment: str = "default"
    """Shown in the header; name it after the place (production, staging)."""
    store: str = Field(default_factory=default_store_url)
    """"sqlite:///path/to/conn.db" (embedded) or "postgresql://…" (team mode), no password."""
    store_password_secret: str | None = None
    """Team mode: the name of the secret holding the database password."""
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    defaults: DefaultsConfig = DefaultsConfig()
    profiles: dict[str, ProfileConfig] = Field(default_factory=dict)
    sources: SourcesConfig = SourcesConfig()
    flags: FlagsConfig = FlagsConfig()
    history: HistoryConfig = HistoryConfig()
    rollouts: dict[str, RolloutConfig] = Field(default_factory=dict)
    """[rollouts.NAME]: staged rollouts, their gates, abort rules and actions (README: Rollouts)."""
    incidents: IncidentsConfig = IncidentsConfig()
    """[incidents]: severities, their clocks, the automatic incidents' severity."""
    runbooks: RunbooksConfig = RunbooksConfig()
    """[runbooks]: Markdown runbooks run step by step (README: Runbooks)."""
    notify: dict[str, NotifyConfig] = Field(default_factory=dict)
    """[notify.NAME]: chat webhooks (Slack or generic JSON) incidents and rollouts are told to."""
    theme: Literal["conn-dark", "conn-light", "conn-high-contrast"] = "conn-dark"
    """The console's colours (NO_COLOR in the environment turns colour off)."""
    keymap: dict[str, str] = Field(default_factory=dict)
    """Binding id -> keys, e.g. "app-flags" = "F"."""
    ui: UiConfig = UiConfig()
    """[ui]: the console's layout choices (the services table's order)."""

    @property
    def source(self) -> Path | None:
        """The file this config was read from (None when it was not read from a file)."""
        return self._source

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        try:
            path = sqlite_url_path(value, expand_home=True)
        except ValueError:
            raise ValueError(
                "a SQLite store URL is sqlite:/// and a file path, with no ?options "
                '(e.g. "sqlite:///var/lib/conn/conn.db" or "sqlite:///~/conn.db")'
            ) from None
        if path is not None:
            return SQLITE_URL_PREFIX + str(path).lstrip("/")
        if value.startswith(("postgresql://", "postgres://")):
            parts = urlsplit(value)
            try:
                parts.port  # noqa: B018 - parsing is the check
            except ValueError as e:
                raise ValueError(f"{value!r}: {e}") from None
            if parts.password or "password=" in parts.query:
                raise ValueError(
                    "the URL carries a password; secrets never go in the config: remove it "
                    'and set store_password_secret = "NAME" (`conn secret set NAME`)'
                )
            return value
        raise ValueError(f'{value!r} is not a store URL (examples: "sqlite:///~/.local/state/conn/conn.db", "postgresql://conn@db/conn")')

    @field_validator("keymap")
    @classmethod
    def _binding_ids(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = [key for key in value if key not in BINDING_IDS]
        if unknown:
            raise ValueError(
                "; ".join(
                    f"{key!r} is not a binding id.{suggest(key, list(BINDING_IDS))}"
                    for key in unknown
                )
                + " (the README's keys table lists them)"
            )
        return value

    @model_validator(mode="after")
    def _references(self) -> ConnConfig:
        problems = []
        every_signal = set(BUILTIN_SIGNALS).union(*(s.signals for s in self.services.values()))
        for where, thresholds in [
            ("defaults.thresholds", self.defaults.thresholds),
            *((f"profiles.{p}.thresholds", spec.thresholds) for p, spec in self.profiles.items()),
        ]:
            for signal in thresholds:
                if signal not in every_signal:
                    problems.append(
                        f"{where}.{signal}: no service has a signal called {signal!r}."
                        + suggest(signal, sorted(every_signal))
                    )
        for name, service in self.services.items():
            known = set(BUILTIN_SIGNALS) | set(service.signals)
            for signal in service.thresholds:
                if signal not in known:
                    problems.append(
                        f"services.{name}.thresholds.{signal}: {name} has no signal called "
                        f"{signal!r} (built in: {', '.join(BUILTIN_SIGNALS)}; or define it under "
                        f"[services.{name}.signals.{signal}])." + suggest(signal, sorted(known))
                    )
            if service.baseline is not None and service.baseline not in self.services:
                problems.append(
                    f"services.{name}.baseline: {service.baseline!r} is not a service"
                    + "." + suggest(service.baseline, list(self.services))
                )
            if service.profile is not None and service.profile not in self.profiles:
                problems.append(
                    f"services.{name}.profile: {service.profile!r} is not a profile"
                    + "." + suggest(service.profile, list(self.profiles))
                )
            for signal in service.health_json.sources():
                if getattr(service.queries, signal) is not None:
                    problems.append(
                        f"services.{name}.json.{signal} and services.{name}.queries.{signal}: "
                        f"{signal} can have one source, a JSON path or a PromQL query; remove one"
                    )
            if self.sources.prometheus is None and (
                any(s.promql for s in service.signals.values())
                or any(service.queries.model_dump().values())
            ):
                problems.append(
                    f"services.{name}: uses PromQL but [sources.prometheus] is not configured"
                )
        for name, rollout in self.rollouts.items():
            problems += rollout_problems(self, name, rollout)
        alertmanager = self.sources.alertmanager
        for i, rule in enumerate(alertmanager.rules if alertmanager else ()):
            if rule.service is not None and rule.service not in self.services:
                problems.append(
                    f"sources.alertmanager.rules[{i}].service: {rule.service!r} is not a service."
                    + suggest(rule.service, list(self.services))
                )
        if problems:
            # One line each, every line already naming its key (see describe_validation_errors).
            raise ValueError(PROBLEM_SEPARATOR.join(problems))
        return self

    def thresholds_for(self, service: str) -> dict[str, Threshold]:
        """The thresholds in force for a service: defaults, then its profile, then its own."""
        spec = self.services[service]
        merged = dict(self.defaults.thresholds)
        if spec.profile:
            merged.update(self.profiles[spec.profile].thresholds)
        merged.update(spec.thresholds)
        return merged

    @property
    def store_path(self) -> Path | None:
        """The SQLite file, in embedded mode."""
        return sqlite_url_path(self.store)  # validated above, so it cannot raise


# --- loading -----------------------------------------------------------------


def search_paths(explicit: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where a config is looked for, in order: --config, $CONN_CONFIG, ./conn.toml, XDG."""
    if explicit:
        return [Path(explicit).expanduser()]
    places = []
    if env := os.environ.get("CONN_CONFIG"):
        places.append(Path(env).expanduser())
    places.append(Path.cwd() / "conn.toml")
    places.append(config_dir() / "conn.toml")
    return places


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The first config file that exists.

    Raises:
        ConfigNotFound: naming every place searched.
    """
    places = search_paths(explicit)
    for place in places:
        if place.is_file():
            return place
    if explicit:
        if places[0].is_dir():
            raise ConfigNotFound(f"{places[0]} is a directory, not a config file")
        if os.path.lexists(places[0]):
            return places[0]  # there but not a plain readable file: reading says why
        raise ConfigNotFound(f"config file {places[0]} does not exist")
    searched = "\n".join(f"  {p}" for p in places)
    raise ConfigNotFound(
        "no Conn config found. Searched, in order:\n"
        f"{searched}\n"
        "Try `conn demo` to see Conn on a demo fleet, or copy config.example.toml "
        "to ./conn.toml and edit it (`conn check` validates it)."
    )


def load_config(explicit: str | os.PathLike[str] | None = None) -> tuple[ConnConfig, Path]:
    """Find, read and validate the config.

    Raises:
        ConfigNotFound: when there is no file.
        ConfigError: listing every problem with its key path.
    """
    path = find_config(explicit)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the config {path}: {e.strerror or e}") from e
    return located(parse_config(data, source=str(path)), path), path


def located(config: ConnConfig, path: Path) -> ConnConfig:
    """``config`` read from ``path``: relative runbook paths resolved against its folder,
    and the file remembered (a runbook step's ``conn`` reads the same config)."""
    folder = path.resolve().parent
    runbooks = config.runbooks.model_copy(update={"paths": [
        p if p.is_absolute() else folder / p for p in (x.expanduser() for x in config.runbooks.paths)
    ]})
    found = config.model_copy(update={"runbooks": runbooks})
    found._source = path.resolve()
    return found


def parse_config(data: bytes | str, *, source: str = "<config>") -> ConnConfig:
    """Validate TOML text as a Conn config.

    Raises:
        ConfigError: listing every problem (syntax errors with line and column).
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from e
    try:
        return ConnConfig.model_validate(raw)
    except ValidationError as e:
        problems = describe_validation_errors(e, raw)
        noun = "problem" if len(problems) == 1 else "problems"
        raise ConfigError(f"{source}: {len(problems)} {noun}", problems) from e


def describe_validation_errors(error: ValidationError, raw: Any) -> list[str]:
    """One line per problem: dotted key, offending value, what is wrong, near misses."""
    lines = []
    for item in error.errors(include_url=False):
        loc = [part for part in item["loc"] if not _is_union_tag(part)]
        key = _dotted(loc)
        kind = item["type"]
        message = item["msg"].removeprefix("Value error, ")
        if kind == "extra_forbidden":
            parent = _lookup(raw, loc[:-1])
            known = _known_fields(loc[:-1])
            unknown = str(loc[-1])
            candidates = [k for k in known if not (isinstance(parent, dict) and k in parent)]
            hint = getattr(_model_at(loc[:-1]), "unknown_key_hint", "")
            lines.append(f"{key}: unknown key.{suggest(unknown, candidates or known)}{hint}")
        elif kind == "missing":
            lines.append(f"{key}: required key is missing")
        elif "input" in item and kind not in ("model_type", "dict_type") and not isinstance(
            item["input"], dict
        ):
            value = item["input"]
            shown = f'"{value}"' if isinstance(value, str) else repr(value)
            if message.startswith(repr(value)) or message.startswith(shown):
                lines.append(f"{key}: {shown}{message[len(repr(value)):] if message.startswith(repr(value)) else message[len(shown):]}")
            else:
                lines.append(f"{key}: {shown}: {message}")
        elif not key:
            # Cross-reference checks name their own keys, one problem per line.
            lines.extend(line for line in message.split(PROBLEM_SEPARATOR) if line.strip())
        else:
            lines.append(f"{key}: {message}")
    return lines


def _is_union_tag(part: Any) -> bool:
    return isinstance(part, str) and ("[" in part or part in ("function-after", "function-before"))


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _lookup(raw: Any, loc: Sequence[Any]) -> Any:
    node = raw
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _known_fields(loc: Sequence[Any]) -> list[str]:
    """The field names allowed at ``loc`` (dict keys are free)."""
    model = _model_at(loc)
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    """The model whose table sits at ``loc``, walking the model tree; None for a free dict."""
    model: Any = ConnConfig
    for part in loc:
        if isinstance(model, _DictOf):
            model = model.inner
        elif isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get(str(part))
            if field is None:
                field = next((f for f in model.model_fields.values() if f.alias == part), None)
            model = _model_of(field.annotation) if field else None
        else:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _model_of(annotation: Any) -> Any:
    """The BaseModel class behind an annotation, looking through Optional and dict values."""
    from typing import get_args, get_origin

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is dict and len(args) == 2:
        return _DictOf(_model_of(args[1]))
    for arg in args:
        found = _model_of(arg)
        if found is not None:
            return found
    return None


class _DictOf:
    """Marks a dict of models while walking a location: the next part is a free key."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner




PROBLEM_SEPARATOR = "\x1e"
"""Between cross-reference problems (one problem may span lines: a criterion and its caret)."""


def rollout_problems(config: ConnConfig, name: str, rollout: RolloutConfig) -> list[str]:
    """What in ``[rollouts.NAME]`` names something that does not exist, or does not parse.

    A criterion that does not parse is quoted with a caret under the bad part.
    """
    where = f"rollouts.{name}"
    problems: list[str] = []
    services = list(config.services)
    if rollout.canary not in config.services:
        problems.append(f"{where}.canary: {rollout.canary!r} is not a service." + suggest(rollout.canary, services))
    if rollout.baseline is not None and rollout.baseline not in config.services:
        problems.append(f"{where}.baseline: {rollout.baseline!r} is not a service." + suggest(rollout.baseline, services))
    if rollout.flag is not None and rollout.flag not in config.flags.define:
        problems.append(
            f"{where}.flag: {rollout.flag!r} is not a flag ([flags.define.NAME])."
            + suggest(rollout.flag, list(config.flags.define))
        )
    for index, stage in enumerate(rollout.stages):
        for group in stage.groups:
            if group not in config.flags.groups:
                problems.append(
                    f"{where}.stages[{index}].groups: {group!r} is not a group ([flags.groups])."
                    + suggest(group, list(config.flags.groups))
                )
    canary = config.services.get(rollout.canary)
    known = set(BUILTIN_SIGNALS) | (set(canary.signals) if canary else set())
    units = {key: spec.unit for key, spec in canary.signals.items()} if canary else {}
    for key, text in criteria_of(rollout):
        try:
            criterion = parse_criterion(text, units=units)
        except CriterionError as e:
            problems.append(f"{where}.{key}: {e.message}\n    {e.pointer().replace(chr(10), chr(10) + '    ')}")
            continue
        for signal in unknown_signals(criterion, known):
            problems.append(
                f"{where}.{key}: {text!r}: {rollout.canary} has no signal called {signal!r}."
                + suggest(signal, sorted(known))
            )
        if criterion.relative and rollout.baseline is None:
            problems.append(f"{where}.{key}: {text!r} compares with the baseline, but the rollout has none (baseline = \"SERVICE\")")
    return problems


def criteria_of(rollout: RolloutConfig) -> list[tuple[str, str]]:
    """Every criterion of a rollout with its config key: ("gate.criteria[0]", "p95 < 500ms")."""
    found = [(f"gate.criteria[{i}]", text) for i, text in enumerate(rollout.gate.criteria)]
    found += [(f"abort.criteria[{i}]", text) for i, text in enumerate(rollout.abort.criteria)]
    for index, stage in enumerate(rollout.stages):
        found += [(f"stages[{index}].gate[{i}]", text) for i, text in enumerate(stage.gate)]
    return found
