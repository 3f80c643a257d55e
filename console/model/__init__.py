"""Pure data and rules: no asyncio, no I/O, no Textual."""
