"""Who is acting, and which process is writing: for events and the live table."""

from __future__ import annotations

import getpass
import os
import socket

from console.model.events import Actor


def current_actor() -> Actor:
    """The OS user, plus the SSH client address when this runs over SSH."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    ssh = os.environ.get("SSH_CONNECTION", "").split()
    return Actor(user=user, ssh_client=ssh[0] if ssh else None)


def process_label() -> str:
    """``user@host pid N``: which process leads or wrote a live row."""
    return f"{current_actor().user}@{socket.gethostname()} pid {os.getpid()}"
