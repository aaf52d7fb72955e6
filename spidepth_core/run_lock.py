"""One training run per run folder: an exclusive lock on ``<run folder>/train.lock``, which names its owner.

The lock is an ``flock`` on the file, so the kernel drops it when the owner exits in any way, ``kill -9``
included: a lock file whose lock is free is stale and is taken over. (``flock`` is local to one machine:
do not share a run folder between machines over NFS.)
"""
from __future__ import annotations

import fcntl
import logging
import os
import socket
from pathlib import Path

log = logging.getLogger("spidepth.train")

LOCK_NAME = "train.lock"


class RunFolderBusy(RuntimeError):
    """Another process holds the run folder."""


class RunLock:
    """``with RunLock(folder):`` holds the folder for this process; the lock file is removed on release."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = self._lock_current_file()
            stale = os.pread(fd, 200, 0).decode(errors="replace").strip()
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        except OSError as exc:
            raise OSError(f"cannot write to the run folder {self.folder}: {exc.strerror or exc}") from exc
        if stale:
            log.info("took over the lock of an earlier run that is no longer running (%s)", stale)
        self.fd = fd
        return self

    def _lock_current_file(self) -> int:
        """Lock the file that is at ``self.path`` now (its owner may unlink it between open and lock)."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 200, 0).decode(errors="replace").strip() or "owner unknown"
                os.close(fd)
                raise RunFolderBusy(
                    f"run folder {self.folder} is in use by another training run ({owner}): wait for it, "
                    "stop it, or set run.out_dir to another folder") from None
            try:
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)

    def release(self) -> None:
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)  # still locked while unlinking: nobody can take it half-way
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
