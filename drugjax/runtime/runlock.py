"""One process per run directory: a lock file with the holder's pid and host.

A job array that starts the same name twice, or a second ``make run`` in another
terminal, would otherwise train into one directory at once and interleave checkpoints
and metrics. :class:`RunLock` is taken before the run writes anything of its own and
released when it ends; a second process is refused at once, naming the first. A lock
left by a process that died (same host, pid gone) is taken over with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

from drugjax.errors import UserError

log = logging.getLogger(__name__)

LOCK_FILE = ".drugjax.lock"


class RunBusyError(UserError, RuntimeError):
    """Another live process holds the run directory."""


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists (a zombie counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


class RunLock:
    """``with RunLock(workdir): ...`` holds ``workdir/.drugjax.lock`` for the block."""

    def __init__(self, workdir: str | Path):
        self.path = Path(workdir) / LOCK_FILE
        self._held = False
        self._made_dir = False

    def __enter__(self) -> RunLock:
        self._made_dir = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(2):  # a second try after taking a stale lock over
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._refuse_or_clear()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._held = True
            return self
        raise RunBusyError(f"{self.path.parent} is being taken by another process at this moment; try again")

    def _refuse_or_clear(self) -> None:
        try:
            holder = json.loads(self.path.read_text())
        except (OSError, ValueError):
            holder = {}
        pid, host = holder.get("pid"), holder.get("host")
        if not isinstance(pid, int):  # cut short while being written: its writer died
            log.warning("%s: taking over an unreadable lock file", self.path.parent)
            self.path.unlink(missing_ok=True)
            return
        if host == socket.gethostname() and not process_alive(pid):
            log.warning("%s: taking over the lock of process %d, which is gone", self.path.parent, pid)
            self.path.unlink(missing_ok=True)
            return
        raise RunBusyError(
            f"{self.path.parent} is in use by process {pid} on {host} (since {holder.get('started')}); "
            f"wait for it to finish, or give this run another name (name=...). If that process is gone, "
            f"delete {self.path}")

    def __exit__(self, *exc: object) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False
            if self._made_dir and not any(self.path.parent.iterdir()):
                self.path.parent.rmdir()  # a refused run leaves no folder behind
