"""Secrets: from the OS keyring, with an environment-variable fallback, and redaction.

The config names secrets; it never holds them. A value is looked up in the
OS keyring (service ``conn``); on a headless server with no usable keyring
backend it comes from ``CONN_SECRET_<NAME>`` instead, and Conn says so once.
There is no plaintext-file fallback, on purpose.

Every value resolved here is registered for redaction: :func:`redact`
replaces it with ``«secret:NAME»`` wherever it would be shown, logged,
stored or exported.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from typing import Literal

import keyring
import keyring.errors
from keyring.backend import KeyringBackend

from console.errors import SecretError

SERVICE = "conn"
"""The keyring service name under which Conn stores secrets."""

_INDEX_KEY = "__conn_secret_names__"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
log = logging.getLogger(__name__)

_lock = threading.Lock()
_redactions: dict[str, str] = {}
_fallback_announced = False


@dataclass(frozen=True)
class SecretInfo:
    """Where a secret resolves from, without its value."""

    name: str
    source: Literal["keyring", "env", "missing"]
    length: int


def env_var(name: str) -> str:
    """The fallback variable for a secret: ``CONN_SECRET_`` + the name upper-cased."""
    return "CONN_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid secret name; raise SecretError otherwise."""
    if not _NAME.match(name):
        raise SecretError(
            f"{name!r} is not a secret name (letters, digits, '_', '-', '.'; starts with a letter)"
        )
    return name


def _backend() -> KeyringBackend | None:
    """The keyring backend, or None when there is no usable one.

    Unusable: the 'fail' and 'null' backends, and a plaintext-file backend
    (keyrings.alt's) that was picked automatically — a plaintext file is the
    silent fallback Conn refuses. Naming it in PYTHON_KEYRING_BACKEND is an
    explicit choice and is honoured.
    """
    backend = keyring.get_keyring()
    kind = type(backend)
    module = kind.__module__
    if module.startswith(("keyring.backends.fail", "keyring.backends.null")):
        return None
    if "Plaintext" in kind.__name__ and os.environ.get("PYTHON_KEYRING_BACKEND", "") != (
        f"{module}.{kind.__name__}"
    ):
        return None
    if getattr(backend, "priority", 1) <= 0 and type(backend).__name__ == "ChainerBackend":
        return None
    return backend


def keyring_available() -> bool:
    """True when a usable OS keyring backend is configured."""
    return _backend() is not None


def backend_name() -> str:
    """A short description of the keyring backend, for `conn secret list`."""
    backend = _backend()
    return "none (environment variables only)" if backend is None else type(backend).__name__


def _announce_fallback() -> None:
    global _fallback_announced
    if not _fallback_announced:
        _fallback_announced = True
        log.warning(
            "no usable OS keyring backend: secrets are read from CONN_SECRET_<NAME> "
            "environment variables instead (install and unlock a keyring to store them)"
        )


def register(name: str, value: str) -> None:
    """Remember ``value`` so that :func:`redact` hides it; empty values are ignored."""
    if value:
        with _lock:
            _redactions[value] = name


def redact(text: str) -> str:
    """Replace every registered secret value in ``text`` by ``«secret:NAME»``."""
    with _lock:
        pairs = sorted(_redactions.items(), key=lambda item: len(item[0]), reverse=True)
    for value, name in pairs:
        if value in text:
            text = text.replace(value, f"«secret:{name}»")
    return text


def get_secret(name: str) -> str:
    """The value of a secret, from the keyring or else the environment.

    Raises:
        SecretError: when it is set nowhere, or the keyring fails.
    """
    check_name(name)
    value = _from_keyring(name)
    if value is None:
        value = os.environ.get(env_var(name))
        if value is not None and _backend() is None:
            _announce_fallback()
    if value is None:
        where = "the OS keyring or " if _backend() is not None else ""
        raise SecretError(
            f"secret {name!r} is not set: store it with `conn secret set {name}` "
            f"or set {where}the environment variable {env_var(name)}"
        )
    register(name, value)
    return value


def _from_keyring(name: str) -> str | None:
    backend = _backend()
    if backend is None:
        return None
    try:
        return backend.get_password(SERVICE, name)
    except keyring.errors.KeyringError as e:
        raise SecretError(f"keyring could not read secret {name!r}: {e}") from e


def set_secret(name: str, value: str) -> None:
    """Store a secret in the OS keyring.

    Raises:
        SecretError: when there is no usable keyring (it names the env fallback).
    """
    check_name(name)
    if not value:
        raise SecretError("refusing to store an empty secret")
    backend = _backend()
    if backend is None:
        raise SecretError(
            "no usable OS keyring backend on this machine, so the secret cannot be stored; "
            f"set the environment variable {env_var(name)} for the processes that need it"
        )
    try:
        backend.set_password(SERVICE, name, value)
        names = set(_index(backend)) | {name}
        backend.set_password(SERVICE, _INDEX_KEY, json.dumps(sorted(names)))
    except keyring.errors.KeyringError as e:
        raise SecretError(f"keyring could not store secret {name!r}: {e}") from e
    register(name, value)


def delete_secret(name: str) -> bool:
    """Delete a secret from the keyring; False when it was not there."""
    check_name(name)
    backend = _backend()
    if backend is None:
        raise SecretError("no usable OS keyring backend: nothing to delete (unset the variable instead)")
    try:
        backend.delete_password(SERVICE, name)
        found = True
    except keyring.errors.PasswordDeleteError:
        found = False
    except keyring.errors.KeyringError as e:
        raise SecretError(f"keyring could not delete secret {name!r}: {e}") from e
    try:
        names = set(_index(backend)) - {name}
        backend.set_password(SERVICE, _INDEX_KEY, json.dumps(sorted(names)))
    except keyring.errors.KeyringError as e:
        raise SecretError(f"deleted {name!r}, but the keyring could not update Conn's list of names: {e}") from e
    return found


def _index(backend: KeyringBackend) -> list[str]:
    try:
        raw = backend.get_password(SERVICE, _INDEX_KEY)
    except keyring.errors.KeyringError:
        return []
    try:
        names = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [n for n in names if isinstance(n, str)]


def describe(name: str) -> SecretInfo:
    """Where a secret would resolve from, and its length; never its value."""
    check_name(name)
    value = _from_keyring(name)
    if value is not None:
        register(name, value)
        return SecretInfo(name, "keyring", len(value))
    env = os.environ.get(env_var(name))
    if env is not None:
        register(name, env)
        return SecretInfo(name, "env", len(env))
    return SecretInfo(name, "missing", 0)


def known_names(extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Names stored by Conn in the keyring, set in the environment, or given (from the config)."""
    names = set(extra)
    backend = _backend()
    if backend is not None:
        names.update(_index(backend))
    prefix = "CONN_SECRET_"
    names.update(k[len(prefix):].lower() for k in os.environ if k.startswith(prefix) and len(k) > len(prefix))
    return sorted(names)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secret values from every record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            # A traceback can quote a secret (an exception's message, a URL): format
            # it here, redacted, and drop the raw exception so no handler re-formats it.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
