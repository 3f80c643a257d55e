"""Conn's themes: dark (default), light, and high contrast for bright rooms and tired eyes.

Hex colours live here and only here; widgets use the theme's variables
(`$error`, `$warning`, `$success`, `$panel`), so every theme and NO_COLOR
work everywhere.
"""

from __future__ import annotations

from textual.theme import Theme

CONN_THEMES: tuple[Theme, ...] = (
    Theme(
        name="conn-dark",
        primary="#4EA1FF",
        secondary="#7C8CA3",
        warning="#F5B83D",
        error="#FF5C5C",
        success="#4CC38A",
        accent="#B48EFF",
        background="#101418",
        surface="#161C22",
        panel="#1E2630",
        dark=True,
    ),
    Theme(
        name="conn-light",
        primary="#0B5CC4",
        secondary="#55657A",
        warning="#9A6200",
        error="#C41E1E",
        success="#17804F",
        accent="#6B3FC4",
        background="#FAFBFC",
        surface="#FFFFFF",
        panel="#E8EDF3",
        dark=False,
    ),
    Theme(
        name="conn-high-contrast",
        primary="#00BFFF",
        secondary="#FFFFFF",
        warning="#FFFF00",
        error="#FF3030",
        success="#00FF66",
        accent="#FF66FF",
        foreground="#FFFFFF",
        background="#000000",
        surface="#000000",
        panel="#202020",
        dark=True,
    ),
)
"""Registered by the app at start; the config's ``theme`` picks one."""
