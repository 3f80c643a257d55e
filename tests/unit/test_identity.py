"""Who acts: the OS user, plus the SSH client address when there is one."""

from __future__ import annotations

import getpass

import pytest

from console.engine.identity import current_actor, process_label


def test_actor_over_ssh_carries_the_client_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "203.0.113.9 52044 10.0.0.5 22")
    actor = current_actor()
    assert actor.user == getpass.getuser()
    assert actor.ssh_client == "203.0.113.9"
    assert str(actor) == f"{getpass.getuser()}@203.0.113.9"


def test_local_actor_is_the_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    actor = current_actor()
    assert actor.ssh_client is None
    assert str(actor) == getpass.getuser()


def test_process_label_names_user_host_and_pid() -> None:
    import os

    assert process_label().endswith(f"pid {os.getpid()}")
