"""Split files: one sample per line, whitespace-separated fields."""
from __future__ import annotations

from pathlib import Path
from typing import Callable


def read_split_lines(path: str | Path, parse: Callable[[list[str]], tuple | None], expected: str) -> list[tuple]:
    """``parse(fields)`` for every non-blank line; a line it rejects (None) raises naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        row = parse(line.split())
        if row is None:
            raise ValueError(f"{path}:{n}: expected '{expected}', got {line!r}")
        rows.append(row)
    return rows
