"""Error texts for logs, diagnostics and one-line CLI errors."""
from __future__ import annotations


def first_line(exc: BaseException | str, limit: int = 200) -> str:
    """The first line of an error (its type name when it has no text), cut to ``limit`` characters."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit - 3] + "..."
