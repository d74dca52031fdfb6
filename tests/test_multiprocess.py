"""Two JAX processes on this machine (loopback, gloo collectives) train like one process.

Two processes with two forced CPU devices each run tests/multiprocess_train.py, every
process feeding its own rows of each global batch to the pmap-wrapped step; one process
with four devices runs the same steps. Losses, parameters and BatchNorm statistics must
agree, and the two processes' rows must make up the one-process batches. The processes
are bounded by a timeout and killed (by their own ids) when anything fails.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "multiprocess_train.py"
TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int) -> dict:
    return dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
                PYTHONPATH=os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])))


def _run_together(commands: list[list[str]], env: dict, logs: list[Path]) -> None:
    """Start every command, wait for all; on a failure or the timeout, kill the others."""
    procs = []
    try:
        for cmd, log in zip(commands, logs):
            procs.append(subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT))
        deadline = time.monotonic() + TIMEOUT_S
        # A process that fails leaves the others waiting in a collective: watch them all
        # and stop at the first failure.
        while any(p.poll() is None for p in procs):
            for p, log in zip(procs, logs):
                rc = p.poll()
                assert rc in (None, 0), f"{' '.join(p.args)} exited with {rc}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"still running after {TIMEOUT_S} s; logs in {logs[0].parent}"
            time.sleep(0.2)
        for p, log in zip(procs, logs):
            assert p.returncode == 0, f"{' '.join(p.args)} exited with {p.returncode}:\n{log.read_text()[-3000:]}"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_two_processes_train_like_one_process_with_all_devices(tmp_path):
    _run_together([[sys.executable, str(SCRIPT), "--out", str(tmp_path / "one.json")]], _env(4),
                  [tmp_path / "one.log"])
    coordinator = f"127.0.0.1:{_free_port()}"
    _run_together(
        [[sys.executable, str(SCRIPT), "--coordinator", coordinator, "--num-processes", "2", "--process-id", str(i),
          "--out", str(tmp_path / f"p{i}.json")] for i in range(2)],
        _env(2), [tmp_path / f"p{i}.log" for i in range(2)],
    )
    one = json.loads((tmp_path / "one.json").read_text())
    hosts = [json.loads((tmp_path / f"p{i}.json").read_text()) for i in range(2)]
    assert [(h["process_index"], h["process_count"], h["local_devices"]) for h in hosts] == [(0, 2, 2), (1, 2, 2)]
    assert len(set(one["losses"])) > 1  # it trains
    # Each host read its own half of every global batch, in process order.
    for step, want in enumerate(one["indices"]):
        assert hosts[0]["indices"][step] + hosts[1]["indices"][step] == want
        assert len(hosts[0]["indices"][step]) == len(want) // 2
    for h in hosts:
        diff = float(np.max(np.abs(np.asarray(h["losses"]) - np.asarray(one["losses"]))))
        print(f"process {h['process_index']} losses: max |2 processes - 1 process| = {diff:.2e}")
        assert diff <= 1e-5
        for key in ("params", "batch_stats"):
            assert len(h[key]) == len(one[key]) > 0
            diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in zip(h[key], one[key]))
            print(f"process {h['process_index']} {key}: max |2 processes - 1 process| = {diff:.2e}")
            assert diff <= 1e-5
