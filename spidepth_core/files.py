"""Files without heavy imports: atomic writes, leftovers of killed writers, content hashes.

Used by checkpoints, exports, engines and reports alike; importing it loads neither PyTorch nor ONNX.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, cast

TEMP_MARK = ".part-"  # temp files are ".<name>.part-<pid>-XXXX" beside the target


class _Writes:
    """A file wrapper that remembers the first OSError of a write (torch.save hides it)."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        self.f.flush()


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_write``)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """``write`` into a temp file in the same folder, fsync, then rename over ``path``.

    A failed write (disk full, read-only folder, ...) raises OSError naming the file and the reason;
    the previous ``path`` is kept and the temp file removed. A writer killed mid-write leaves its temp
    file, named with its PID, for ``remove_stale_temps`` to find.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TEMP_MARK}{os.getpid()}-", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            out = _Writes(f)
            try:
                write(cast(IO[bytes], out))
            except RuntimeError as exc:
                raise (out.error or exc) from None
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file permissions
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(f"cannot save {path}: {_why(exc, path.parent)}") from exc
    finally:
        if tmp is not None:  # gone already after a successful rename
            Path(tmp).unlink(missing_ok=True)


def _why(exc: OSError, folder: Path) -> str:
    reason = exc.strerror or str(exc)
    try:
        free = shutil.disk_usage(folder).free / 2**20
    except OSError:
        return reason
    return f"{reason} ({free:.0f} MB free there)"


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete temp files of ``atomic_write`` calls whose process is gone (killed mid-write)."""
    removed = []
    for tmp in Path(folder).glob(f".*{TEMP_MARK}*"):
        pid = tmp.name.split(TEMP_MARK, 1)[1].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (what exported ONNX files and engines record as their source). Remembered per
    (path, size, mtime), so checking a model and then loading it hashes a large checkpoint once."""
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]
