"""Transparent huge pages for XLA:CPU's buffers: train.py and evaluate.py (and
``python -m drugjax.train`` / ``drugjax.evaluate``) restart themselves once with glibc's ``glibc.malloc.hugetlb=1`` tunable.

XLA:CPU takes every execution's buffers from malloc, and glibc serves blocks that large
with fresh memory from the kernel (mmap) and gives it back when they are freed. Every
training step therefore touches its gigabytes of temporaries page by page again, one
page fault per 4 KiB. With the tunable glibc asks for transparent huge pages
(``madvise``), and the faults drop by two orders of magnitude (the measured faults and
speed-up are in docs/benchmarks.md). Results and memory use are unchanged.

glibc reads its tunables once, when the process starts, so the entry point calls
:func:`reexec_with_huge_pages` before anything else and the process replaces itself (same
PID, arguments, interpreter flags and environment, plus the tunable). Nothing happens
where it cannot help or the user decided: not on Linux with glibc >= 2.35, transparent
huge pages ``never``, ``glibc.malloc.hugetlb`` already in ``GLIBC_TUNABLES`` (any value),
``DRUGJAX_HUGE_PAGES=0``, or an interpreter started for something else than the script
(a notebook kernel's ``%run train.py``: its state would be lost).
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Mapping

TUNABLES = "GLIBC_TUNABLES"
HUGETLB = "glibc.malloc.hugetlb"
OPT_OUT = "DRUGJAX_HUGE_PAGES"  # "0": leave malloc as it is
# Set on the restarted process: a system that strips GLIBC_TUNABLES (secure-execution
# mode) must not restart it again and again.
RESTARTED = "DRUGJAX_HUGE_PAGES_RESTARTED"
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _glibc_supports_hugetlb() -> bool:
    name, version = platform.libc_ver()
    if name != "glibc":
        return False
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (2, 35)  # the tunable appeared in glibc 2.35


def _kernel_offers_huge_pages(mode_file: Path = THP_MODE) -> bool:
    """True when transparent huge pages are ``always`` or ``madvise`` (the bracketed
    word of the sysfs file), False for ``never`` or a kernel without them."""
    try:
        text = mode_file.read_text()
    except OSError:
        return False
    return "[always]" in text or "[madvise]" in text


def wanted(env: Mapping[str, str] = os.environ, mode_file: Path = THP_MODE) -> bool:
    """Whether restarting with the tunable would change anything the user left open."""
    if env.get(OPT_OUT) == "0" or env.get(RESTARTED) or HUGETLB in env.get(TUNABLES, ""):
        return False
    return sys.platform == "linux" and _glibc_supports_hugetlb() and _kernel_offers_huge_pages(mode_file)


def environment(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """``env`` with ``glibc.malloc.hugetlb=1`` added to the tunables it already has."""
    new = dict(env)
    tunables = [t for t in new.get(TUNABLES, "").split(":") if t]
    new[TUNABLES] = ":".join(tunables + [f"{HUGETLB}=1"])
    new[RESTARTED] = "1"
    return new


def started_for_this_script(argv: list[str] | None = None, orig_argv: list[str] | None = None) -> bool:
    """Whether the interpreter was started to run ``sys.argv[0]`` (``python train.py``,
    ``python -m pdb train.py``): restarting it then loses nothing. A long-lived interpreter
    that runs the script inside itself (IPython's ``%run train.py`` in a notebook kernel)
    was started for something else, and a restart would lose its state."""
    script = (argv if argv is not None else sys.argv)[0]
    started = (orig_argv if orig_argv is not None else sys.orig_argv)[1:]
    return any(arg == script or os.path.abspath(arg) == os.path.abspath(script) for arg in started)


def started_for_module(module: str, orig_argv: list[str] | None = None) -> bool:
    """Whether the interpreter was started as ``python -m MODULE``."""
    started = (orig_argv if orig_argv is not None else sys.orig_argv)[1:]
    return any(started[i:i + 2] == ["-m", module] for i in range(len(started))) or f"-m{module}" in started


def reexec_with_huge_pages(module: str | None = None) -> None:
    """Restart this process with the tunable when :func:`wanted` and the process was
    started for this script (:func:`started_for_this_script`) or, given ``module``, as
    ``python -m module``; otherwise return.

    Call it first thing in an entry point's ``if __name__ == "__main__":`` block, never
    from library code: the process is replaced."""
    started = started_for_this_script() or (module is not None and started_for_module(module))
    if not (wanted() and started):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, list(sys.orig_argv), environment())
