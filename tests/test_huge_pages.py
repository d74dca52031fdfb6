"""The entry points' restart with glibc's huge-page tunable (drugjax.runtime.huge_pages)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from drugjax.runtime import huge_pages


def _mode_file(tmp_path, text):
    path = tmp_path / text.split("[")[1].split("]")[0]
    path.write_text(text)
    return path


def test_environment_adds_the_tunable_and_keeps_the_users():
    env = huge_pages.environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "PATH": "/bin"})
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert env["PATH"] == "/bin" and env[huge_pages.RESTARTED] == "1"
    assert huge_pages.environment({})["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"


def test_not_wanted_where_the_user_or_the_system_decided(tmp_path):
    madvise = _mode_file(tmp_path, "always [madvise] never\n")
    assert not huge_pages.wanted({"DRUGJAX_HUGE_PAGES": "0"}, madvise)
    assert not huge_pages.wanted({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, madvise)
    assert not huge_pages.wanted({huge_pages.RESTARTED: "1"}, madvise)  # never a restart loop
    assert not huge_pages.wanted({}, _mode_file(tmp_path, "always madvise [never]\n"))
    assert not huge_pages.wanted({}, tmp_path / "missing")
    if sys.platform == "linux" and huge_pages._glibc_supports_hugetlb():
        assert huge_pages.wanted({}, madvise)
        assert huge_pages.wanted({}, _mode_file(tmp_path, "[always] madvise never\n"))


def test_restarts_only_an_interpreter_started_for_the_script():
    started = huge_pages.started_for_this_script
    assert started(["train.py", "steps=5"], ["python", "train.py", "steps=5"])
    assert started(["train.py"], ["/usr/bin/python3", "-X", "dev", "-m", "pdb", "train.py"])
    assert started(["-c", "a=1"], ["python", "-c", "print(1)", "a=1"])
    # IPython's %run train.py in a notebook kernel: the kernel must not be replaced.
    assert not started(["train.py"], ["python", "-m", "ipykernel_launcher", "-f", "kernel.json"])


SCRIPT = """
import os
from drugjax.runtime.huge_pages import reexec_with_huge_pages
print("start", flush=True)
reexec_with_huge_pages()
print("tunables", os.environ.get("GLIBC_TUNABLES"), "argv", __import__("sys").argv[1:])
"""


@pytest.mark.skipif(not huge_pages.wanted({}), reason="no glibc >= 2.35 or no transparent huge pages here")
def test_restarts_once_with_the_tunable_and_the_same_arguments():
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", huge_pages.RESTARTED)}
    env["GLIBC_TUNABLES"] = "glibc.malloc.arena_max=4"
    out = subprocess.run([sys.executable, "-c", SCRIPT, "a=1", "b=two words"], env=env,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["start", "start",
                   "tunables glibc.malloc.arena_max=4:glibc.malloc.hugetlb=1 argv ['a=1', 'b=two words']"]

    env["DRUGJAX_HUGE_PAGES"] = "0"
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["start", "tunables glibc.malloc.arena_max=4 argv []"]
