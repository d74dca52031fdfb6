"""Two JAX processes on this machine (loopback, gloo collectives) train like one process.

Two processes with two forced CPU devices each run tests/multiprocess_train.py, every
process feeding its own rows of each global batch to the pmap-wrapped step; one process
with four devices runs the same steps. Losses, parameters and BatchNorm statistics must
agree, and the two processes' rows must make up the one-process batches; killed after a
checkpoint and restarted, they resume. tests/multiprocess_loop.py runs the train.py loop
itself (``parallel.distributed=true``) on two processes, killed and resumed (slow). The
processes are bounded by a timeout and killed (by their own ids) when anything fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "multiprocess_train.py"
LOOP_SCRIPT = HERE / "multiprocess_loop.py"
TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict:
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
                PYTHONPATH=os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])))


class _Processes:
    """Commands running side by side, each logging to a file; the ones still running when
    the block ends (finished, failed or timed out) are killed by their ids."""

    def __init__(self, commands: list[list[str]], env: dict, logs: list[Path]):
        self.logs = logs
        self._files = [log.open("w") for log in logs]
        self.procs = [subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
                      for cmd, f in zip(commands, self._files)]

    def __enter__(self) -> "_Processes":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()
        for f in self._files:
            f.close()

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def wait_until(self, done) -> None:
        """Poll until ``done()``; fail at once when a process fails (the others would wait
        in a collective for it) or after TIMEOUT_S."""
        deadline = time.monotonic() + TIMEOUT_S
        while not done():
            for p, log in zip(self.procs, self.logs):
                rc = p.poll()
                assert rc in (None, 0), f"{' '.join(p.args)} exited with {rc}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"not done after {TIMEOUT_S} s; logs in {self.logs[0].parent}"
            time.sleep(0.2)

    def wait_all(self) -> None:
        self.wait_until(lambda: all(p.poll() is not None for p in self.procs))
        for p, log in zip(self.procs, self.logs):
            assert p.returncode == 0, f"{' '.join(p.args)} exited with {p.returncode}:\n{log.read_text()[-3000:]}"


def _two_processes(tmp_path: Path, name: str, *extra: str) -> _Processes:
    coordinator = f"127.0.0.1:{_free_port()}"
    return _Processes(
        [[sys.executable, str(SCRIPT), "--coordinator", coordinator, "--num-processes", "2", "--process-id", str(i),
          "--out", str(tmp_path / f"{name}{i}.json"), *extra] for i in range(2)],
        _env(2), [tmp_path / f"{name}{i}.log" for i in range(2)],
    )


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> dict:
    """The reference: one process with four devices."""
    tmp = tmp_path_factory.mktemp("one_process")
    with _Processes([[sys.executable, str(SCRIPT), "--out", str(tmp / "one.json")]], _env(4), [tmp / "one.log"]) as p:
        p.wait_all()
    return json.loads((tmp / "one.json").read_text())


def _assert_close(got: dict, want: dict, first_step: int, what: str) -> None:
    diff = float(np.max(np.abs(np.asarray(got["losses"]) - np.asarray(want["losses"][first_step:]))))
    print(f"{what} losses: max |2 processes - 1 process| = {diff:.2e}")
    assert diff <= 1e-5
    # this process's rows of the last batch, evaluated with the final state
    rows = slice(got["process_index"] * 4, (got["process_index"] + 1) * 4)
    diff = float(np.max(np.abs(np.asarray(got["last_batch_probs"]) - np.asarray(want["last_batch_probs"])[rows])))
    print(f"{what} eval probabilities: max |2 processes - 1 process| = {diff:.2e}")
    assert diff <= 1e-5
    for key in ("params", "batch_stats"):
        assert len(got[key]) == len(want[key]) > 0
        diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(got[key], want[key]))
        print(f"{what} {key}: max |2 processes - 1 process| = {diff:.2e}")
        assert diff <= 1e-5


def test_two_processes_train_like_one_process_with_all_devices(tmp_path, one_process):
    with _two_processes(tmp_path, "p") as procs:
        procs.wait_all()
    hosts = [json.loads((tmp_path / f"p{i}.json").read_text()) for i in range(2)]
    assert [(h["process_index"], h["process_count"], h["local_devices"]) for h in hosts] == [(0, 2, 2), (1, 2, 2)]
    assert len(set(one_process["losses"])) > 1  # it trains
    # Each host read its own half of every global batch, in process order.
    for step, want in enumerate(one_process["indices"]):
        assert hosts[0]["indices"][step] + hosts[1]["indices"][step] == want
        assert len(hosts[0]["indices"][step]) == len(want) // 2
    for h in hosts:
        _assert_close(h, one_process, 0, f"process {h['process_index']}")


def test_two_processes_killed_after_a_checkpoint_resume_where_they_stopped(tmp_path, one_process):
    """Both processes save a checkpoint after step 2 and are killed (SIGKILL) while still
    running; started again, they restore it and finish like the uninterrupted run."""
    ckpt = ["--checkpoint-dir", str(tmp_path / "checkpoints")]
    with _two_processes(tmp_path, "stopped", *ckpt, "--stop-after", "2") as procs:
        procs.wait_until(lambda: all((tmp_path / f"stopped{i}.json.saved").exists() for i in range(2)))
        procs.kill()
        assert all(p.returncode == -signal.SIGKILL for p in procs.procs)
    with _two_processes(tmp_path, "resumed", *ckpt) as procs:
        procs.wait_all()
    for i in range(2):
        h = json.loads((tmp_path / f"resumed{i}.json").read_text())
        assert h["start"] == 2 and len(h["losses"]) == 2
        # the data position was restored too: this host's rows of global batches 3 and 4
        assert h["indices"] == [rows[4 * i : 4 * (i + 1)] for rows in one_process["indices"][2:]]
        _assert_close(h, one_process, 2, f"resumed process {i}")


@pytest.mark.slow  # three two-process runs of the loop: 1.5 minutes here
def test_train_loop_on_two_processes_resumes_after_both_are_killed(tmp_path):
    """train_and_evaluate with parallel.distributed=true on two processes: killed (SIGKILL)
    after its step-3 checkpoint and started again, it resumes there (each host's data
    position included) and ends with the parameters of an uninterrupted two-process run."""

    def loop(root: Path, name: str, *extra: str) -> _Processes:
        coordinator = f"127.0.0.1:{_free_port()}"
        return _Processes(
            [[sys.executable, str(LOOP_SCRIPT), "--coordinator", coordinator, "--process-id", str(i),
              "--root", str(root), "--out", str(tmp_path / f"{name}{i}.json"), *extra] for i in range(2)],
            _env(2), [tmp_path / f"{name}{i}.log" for i in range(2)],
        )

    with loop(tmp_path / "uninterrupted", "whole") as procs:
        procs.wait_all()
    with loop(tmp_path / "interrupted", "stopped", "--hang-after-checkpoint", "3") as procs:
        procs.wait_until(lambda: all((tmp_path / f"stopped{i}.json.saved").exists() for i in range(2)))
        procs.kill()
    with loop(tmp_path / "interrupted", "resumed") as procs:
        procs.wait_all()
    whole = [json.loads((tmp_path / f"whole{i}.json").read_text()) for i in range(2)]
    resumed = [json.loads((tmp_path / f"resumed{i}.json").read_text()) for i in range(2)]
    assert [r["restored"] for r in whole] == [[None], [None]]
    assert [r["restored"] for r in resumed] == [[3], [3]]
    assert [r["step"] for r in whole + resumed] == [6] * 4
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(resumed[0]["params"], whole[0]["params"]))
    print(f"train loop on 2 processes, killed and resumed: max |params - uninterrupted| = {diff:.2e}")
    assert diff <= 1e-6
