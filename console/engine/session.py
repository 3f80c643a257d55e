"""Opening the configured store, with its password from the secrets module."""

from __future__ import annotations

import asyncio

from console.config import ConnConfig
from console.secrets import get_secret
from console.store import EventStore, open_store


async def open_configured_store(config: ConnConfig, *, migrate: bool = False) -> EventStore:
    """The store the config names; team mode's password comes from a secret, never the file.

    Args:
        migrate: bring an older store's schema up to date on open (the demo,
            which owns its store); otherwise an older store is refused with a
            pointer to ``conn db migrate``.

    Raises:
        StoreError: the store cannot be opened.
        SecretError: the password secret is not set.
    """
    if config.store_password_secret:
        # The keyring may block (D-Bus, an unlock prompt): off the event loop.
        password = await asyncio.to_thread(get_secret, config.store_password_secret)
        return await open_store(config.store, password=password, migrate=migrate)
    return await open_store(config.store, migrate=migrate)
