"""Shared by the whole suite: the compilation cache and the in-process command line.

The test run compiles each XLA program once: JAX's persistent compilation cache is on
for the whole run, in this process and in every subprocess a test starts (the train.py,
evaluate.py and multi-device scripts inherit it through the environment).

The cache lives in a fresh folder under the system's temporary directory, removed at the
end of the run, so a run never reads executables another run (or another jaxlib) wrote;
``DRUGJAX_TEST_COMPILATION_CACHE=DIR`` keeps it in DIR instead, across runs (a developer's
loop; DIR is left in place). pytest-xdist's workers (``make test`` runs two) share the
run's folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass

import pytest

USER_CACHE = "DRUGJAX_TEST_COMPILATION_CACHE"
# Programs that compile faster than this are not worth a file.
MIN_COMPILE_SECONDS = "0.1"

_made_here: str | None = None


def pytest_configure(config) -> None:
    global _made_here
    cache = os.environ.get(USER_CACHE)
    if not cache:
        cache = _made_here = tempfile.mkdtemp(prefix="drugjax-test-xla-cache-")
        # pytest-xdist's workers start after this and inherit it: one cache for them all.
        os.environ[USER_CACHE] = cache
    # JAX reads these when it is imported, in this process and in subprocesses alike.
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = MIN_COMPILE_SECONDS
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"
    import jax  # already imported by a plugin or not: set it here too

    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(MIN_COMPILE_SECONDS))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


def pytest_unconfigure(config) -> None:
    if _made_here:
        os.environ.pop(USER_CACHE, None)
        shutil.rmtree(_made_here, ignore_errors=True)


@dataclass
class Exit:
    """What a command line left: its exit status and what it printed."""

    code: int
    out: str
    err: str


@pytest.fixture
def call_main(monkeypatch, capsys):
    """Run a command line's ``main`` in this process, as ``python -m`` would with ARGS:
    ``call_main(drugjax.train.main, "steps=3", ...)`` returns its :class:`Exit`.

    A subprocess would import JAX, TFDS and orbax again and compile from scratch: seconds
    per call, for checks of one error line. What needs a real process (signals, several
    hosts, the installed scripts) keeps one. Hydra's handlers on the root logger (console,
    the job's log file) are taken away afterwards, and the progress switch a command sets
    (``progress=false``) is put back, so the next test starts clean.
    """
    from drugjax.runtime import progress

    def call(main, *args: str, cwd=None) -> Exit:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", [main.__module__, *map(str, args)])
        # Hydra's logging.config.dictConfig shuts every existing handler down, absl's
        # among them, and absl's closes its stream: pytest's capture file, which it took
        # at import. Not in a test process, where nothing else lives in the interpreter.
        monkeypatch.setattr(logging, "shutdown", lambda handlers=None: None)
        root = logging.getLogger()
        handlers, level = set(root.handlers), root.level
        progress_was_on = progress.enabled()
        capsys.readouterr()
        code = 0
        try:
            main()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        finally:
            # Hydra's logging set-up replaced pytest's handlers (pytest adds its own again
            # for each test): take Hydra's console and log-file handlers away, closed.
            for handler in list(root.handlers):
                if handler not in handlers:
                    root.removeHandler(handler)
                    handler.close()
            root.setLevel(level)
            progress.set_enabled(progress_was_on)
        out, err = capsys.readouterr()
        return Exit(code, out, err)

    return call
