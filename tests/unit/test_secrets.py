"""Secrets: a real (file) keyring backend, the env fallback, redaction — never plaintext config."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends.fail import Keyring as FailKeyring
from keyrings.alt.file import PlaintextKeyring

from console import secrets
from console.errors import SecretError


@pytest.fixture
def file_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PlaintextKeyring]:
    """A real keyring backend that writes to a temporary file (the test keyring).

    Plaintext backends count only when chosen explicitly, as here.
    """
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")  # type: ignore[misc]
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    previous = keyring.get_keyring()
    keyring.set_keyring(FailKeyring())
    yield
    keyring.set_keyring(previous)


def test_set_get_delete_through_the_keyring(file_keyring: PlaintextKeyring) -> None:
    secrets.set_secret("prometheus_token", "s3cr3t-token-value")
    assert secrets.get_secret("prometheus_token") == "s3cr3t-token-value"
    assert secrets.describe("prometheus_token").source == "keyring"
    assert "prometheus_token" in secrets.known_names()
    assert secrets.delete_secret("prometheus_token") is True
    assert secrets.delete_secret("prometheus_token") is False
    with pytest.raises(SecretError, match="CONN_SECRET_PROMETHEUS_TOKEN"):
        secrets.get_secret("prometheus_token")


def test_env_fallback_when_no_keyring(
    no_keyring: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(secrets, "_fallback_announced", False)
    monkeypatch.setenv("CONN_SECRET_SLACK_WEBHOOK", "https://hooks.example/T000/B000/XXXX")
    with caplog.at_level(logging.WARNING):
        assert secrets.get_secret("slack_webhook") == "https://hooks.example/T000/B000/XXXX"
        secrets.get_secret("slack_webhook")
    warnings = [r for r in caplog.records if "CONN_SECRET_" in r.getMessage()]
    assert len(warnings) == 1, "the fallback is announced once, clearly"
    with pytest.raises(SecretError, match="no usable OS keyring"):
        secrets.set_secret("slack_webhook", "x")


def test_an_automatically_chosen_plaintext_file_is_not_a_keyring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setenv("CONN_SECRET_API_TOKEN", "from-env-123")
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")  # type: ignore[misc]
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    try:
        assert not secrets.keyring_available()
        with pytest.raises(SecretError, match="no usable OS keyring"):
            secrets.set_secret("api_token", "x")
        assert secrets.get_secret("api_token") == "from-env-123"
        assert not (tmp_path / "keyring.cfg").exists(), "nothing written to a plaintext file"
    finally:
        keyring.set_keyring(previous)


def test_missing_secret_says_where_to_put_it(no_keyring: None) -> None:
    with pytest.raises(SecretError) as caught:
        secrets.get_secret("db_password")
    assert "conn secret set db_password" in str(caught.value)
    assert "CONN_SECRET_DB_PASSWORD" in str(caught.value)


def test_keyring_wins_over_env(file_keyring: PlaintextKeyring, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONN_SECRET_API_KEY", "from-env")
    secrets.set_secret("api_key", "from-keyring")
    assert secrets.get_secret("api_key") == "from-keyring"


def test_redaction_of_every_resolved_value(no_keyring: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONN_SECRET_TOKEN_A", "abc123secret")
    monkeypatch.setenv("CONN_SECRET_TOKEN_B", "abc123secretLONGER")
    secrets.get_secret("token_a")
    secrets.get_secret("token_b")
    text = "curl -H 'Authorization: Bearer abc123secretLONGER' and abc123secret"
    assert secrets.redact(text) == (
        "curl -H 'Authorization: Bearer «secret:token_b»' and «secret:token_a»"
    )


def test_logging_filter_redacts(no_keyring: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONN_SECRET_HOOK", "hunter2-hook")
    secrets.get_secret("hook")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "posting to %s", ("hunter2-hook",), None)
    secrets.RedactingFilter().filter(record)
    assert record.getMessage() == "posting to «secret:hook»"


def test_bad_names_are_refused(no_keyring: None) -> None:
    for name in ("", "1abc", "has space", "x" * 80):
        with pytest.raises(SecretError, match="not a secret name"):
            secrets.get_secret(name)


def test_cli_reads_value_from_stdin_and_never_prints_it(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }

    def conn(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "console", "secret", *args],
            input=stdin, capture_output=True, text=True, env=env, timeout=60,
        )

    stored = conn("set", "prom_token", stdin="tok-9f8e7d6c\n")
    assert stored.returncode == 0, stored.stderr
    shown = conn("get", "prom_token")
    assert shown.returncode == 0
    assert "keyring" in shown.stdout and "12 characters" in shown.stdout
    listed = conn("list")
    assert "prom_token" in listed.stdout
    for run in (stored, shown, listed):
        assert "tok-9f8e7d6c" not in run.stdout + run.stderr
    assert conn("delete", "prom_token").returncode == 0
    missing = conn("get", "prom_token")
    assert missing.returncode == 1 and "CONN_SECRET_PROM_TOKEN" in missing.stderr


def test_logging_filter_redacts_tracebacks(no_keyring: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setenv("CONN_SECRET_WEBHOOK", "hunter2-webhook-value")
    secrets.get_secret("webhook")
    try:
        raise RuntimeError("POST https://hooks.example/hunter2-webhook-value failed")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    secrets.RedactingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert "hunter2-webhook-value" not in formatted
    assert "«secret:webhook»" in formatted
    assert "RuntimeError" in formatted
