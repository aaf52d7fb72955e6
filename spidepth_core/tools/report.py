"""Benchmark reports that several processes add to: read, merge and write under one lock."""
from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any, Callable

from ..files import atomic_write_bytes


def update_report(path: Path, merge: Callable[[dict[str, Any] | None], dict[str, Any]]) -> dict[str, Any]:
    """Write ``merge(report at path, or None)`` to ``path`` (JSON, atomically) and return it.

    Holds an flock on ``path.lock`` from the read to the write, so benchmark processes that finish
    together (one arm or rate per core) never drop each other's rows.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(path.read_text()) if path.is_file() else None
        report = merge(old)
        atomic_write_bytes(json.dumps(report, indent=2).encode(), path)
    return report
