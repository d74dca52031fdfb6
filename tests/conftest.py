"""The test run compiles each XLA program once: JAX's persistent compilation cache is on
for the whole run, in this process and in every subprocess a test starts (the train.py,
evaluate.py and multi-device scripts inherit it through the environment).

The cache lives in a fresh folder under the system's temporary directory, removed at the
end of the run, so a run never reads executables another run (or another jaxlib) wrote;
``DRUGJAX_TEST_COMPILATION_CACHE=DIR`` keeps it in DIR instead, across runs (a developer's
loop; DIR is left in place).
"""

from __future__ import annotations

import os
import shutil
import tempfile

USER_CACHE = "DRUGJAX_TEST_COMPILATION_CACHE"
# Programs that compile faster than this are not worth a file.
MIN_COMPILE_SECONDS = "0.1"

_made_here: str | None = None


def pytest_configure(config) -> None:
    global _made_here
    cache = os.environ.get(USER_CACHE)
    if not cache:
        cache = _made_here = tempfile.mkdtemp(prefix="drugjax-test-xla-cache-")
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
        shutil.rmtree(_made_here, ignore_errors=True)
