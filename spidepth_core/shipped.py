"""Files that ship with the package: the bundled model and the example configs.

They are found the same way in a source checkout, a pip install and a colcon install, whatever the
working folder: ``bundled`` names the bundled model wherever a model path is asked for, and a config
such as ``config/finetune_bag.yaml`` that is not in the working folder is taken from the installed ones.
"""
from __future__ import annotations

import sys
from pathlib import Path

BUNDLED = "bundled"
_PACKAGE = Path(__file__).resolve().parent
_SHARE = "share/spidepth_ros"


def default_model_path() -> Path:
    """The bundled model (trained on the synthetic street world)."""
    return _PACKAGE / "assets" / "default_model.pt"


def model_file(model: str | Path | None) -> Path:
    """A model path as given, or the bundled model for None, '' or 'bundled'."""
    if model is None or str(model) in ("", BUNDLED):
        return default_model_path()
    return Path(model).expanduser()


def is_bundled(path: str | Path) -> bool:
    """Whether ``path`` is one of the package's own assets (never written into)."""
    return Path(path).resolve().parent == default_model_path().parent


def _config_folders() -> list[Path]:
    """Source checkout, pip (``<prefix>/share``) and colcon (``install/<pkg>/share``) layouts."""
    site = _PACKAGE.parent  # site-packages (lib/pythonX.Y/site-packages), or the source checkout
    folders = [site / "config", Path(sys.prefix) / _SHARE / "config"]
    if len(site.parents) > 2:
        folders.append(site.parents[2] / _SHARE / "config")
    return folders


def config_file(path: str | Path) -> Path:
    """``path`` if it exists, else the shipped config of that name; the path as given if neither does."""
    given = Path(path).expanduser()
    if given.exists() or given.is_absolute():
        return given
    for folder in _config_folders():
        if (folder / given.name).is_file():
            return folder / given.name
    return given
