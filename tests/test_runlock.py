"""drugjax.runtime.runlock: one process per run directory; a second is refused at once,
naming the first; a dead holder's lock is taken over."""

import json
import socket
import subprocess
import sys

import pytest

from drugjax import train
from drugjax.runtime.runlock import LOCK_FILE, RunBusyError, RunLock


@pytest.fixture
def other_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _hold(workdir, pid, host=None):
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                                 "started": "2026-12-03 10:00:00"}))


def test_a_second_train_py_on_a_busy_directory_is_refused_naming_the_first(tmp_path, other_process, call_main):
    run = tmp_path / "run"
    _hold(run, other_process.pid)
    refused = call_main(train.main, "data.preset=tiny", f"workdir={run}", "progress=false", cwd=tmp_path)
    assert refused.code == 1 and refused.err.count("\n") == 1
    assert f"is in use by process {other_process.pid} on {socket.gethostname()}" in refused.err
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]  # nothing written, the holder's lock kept


def test_a_dead_holders_lock_is_taken_over_and_released(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _hold(tmp_path, dead.pid)
    with RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] != dead.pid
    assert "which is gone" in caplog.text and not (tmp_path / LOCK_FILE).exists()
    (tmp_path / LOCK_FILE).write_text("")  # cut short while being written
    with RunLock(tmp_path):
        pass
    assert not (tmp_path / LOCK_FILE).exists()


def test_another_hosts_lock_is_respected(tmp_path):
    _hold(tmp_path, 12345, host="another-node")
    with pytest.raises(RunBusyError, match="in use by process 12345 on another-node"):
        with RunLock(tmp_path):
            pass


def test_a_run_that_made_the_folder_and_wrote_nothing_leaves_no_folder(tmp_path):
    with RunLock(tmp_path / "new"):
        assert (tmp_path / "new" / LOCK_FILE).exists()
    assert not (tmp_path / "new").exists()
