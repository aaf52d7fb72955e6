"""Reading a user's YAML file: every failure is one ValueError naming the file and the reason."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what: 'line L, column C: problem' (the first line of it)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + str(getattr(exc, "problem", None) or exc).splitlines()[0]


def read_yaml(path: str | Path, what: str = "file") -> Any:
    """The parsed contents of ``path``; ``what`` names the file's role in errors ('config file', ...)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {path} is not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x}); "
                         "save it as UTF-8") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{what} {path} is not valid YAML: {yaml_problem(exc)}") from None
