"""The benchmark protocol shared by bench/backbone.py and bench/gpu_backbone.py: what the
machine is, how busy it was before and during a run, and whether a result may go into
docs/benchmarks.md.

On a 2-core machine another busy process changes both frameworks' speed, and not alike
(torch's OpenMP threads lose far more than XLA's pool under contention), so a figure
taken under load is not a result: it is marked as such and not written to the docs.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from drugjax.runtime import huge_pages

ROOT = Path(__file__).resolve().parents[1]

# Above this 1-minute load average at the start, a run is "under load" (issue 14).
MAX_IDLE_LOAD = 1.0
# Other processes using more than this share of the machine's CPU time during the run
# also make it "under load" (the load average lags by about a minute).
MAX_OTHERS_SHARE = 0.10

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_times() -> dict[int, tuple[str, float]]:
    """{pid: (command line, CPU seconds so far)} of every process readable in /proc
    (empty where there is no /proc)."""
    out = {}
    for entry in os.scandir("/proc") if os.path.isdir("/proc") else ():
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # the process ended meanwhile
            continue
        # Fields after the command name, which may hold spaces and parentheses.
        rest = stat[stat.rindex(")") + 2:].split()
        utime, stime = int(rest[11]), int(rest[12])
        name = cmd or stat[stat.index("(") + 1:stat.rindex(")")]
        out[int(entry.name)] = (name, (utime + stime) / _TICK)
    return out


def others_busy(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                exclude: set[int]) -> list[tuple[float, int, str]]:
    """(CPU seconds, pid, command) used between two :func:`cpu_times` snapshots by the
    processes not in ``exclude``, most first. Processes that started and ended between
    the snapshots are not seen."""
    used = []
    for pid, (cmd, t1) in after.items():
        if pid in exclude:
            continue
        t0 = before.get(pid, (cmd, 0.0))[1]
        if t1 - t0 > 0:
            used.append((t1 - t0, pid, cmd))
    return sorted(used, reverse=True)


def sample_others(seconds: float, exclude: set[int]) -> list[tuple[float, int, str]]:
    """What other processes used over ``seconds`` from now (CPU seconds each)."""
    before = cpu_times()
    time.sleep(seconds)
    return others_busy(before, cpu_times(), exclude)


def describe(used: list[tuple[float, int, str]], wall: float, top: int = 5) -> list[str]:
    """Lines 'pid command: x.x CPU-s (y% of one core)' for the ``top`` busiest."""
    return [f"{pid} {cmd[:90]}: {cpu:.1f} CPU-s ({100 * cpu / max(wall, 1e-9):.0f}% of one core)"
            for cpu, pid, cmd in used[:top]]


@dataclass
class Watch:
    """The machine's state around a benchmark run: load averages before and after, and
    the CPU time other processes took while it ran."""

    exclude: set[int] = field(default_factory=lambda: {os.getpid()})
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    others: list[tuple[float, int, str]] = field(default_factory=list)
    wall: float = 0.0

    def start(self) -> "Watch":
        self.load_before = os.getloadavg()
        self._t0, self._snap = time.perf_counter(), cpu_times()
        return self

    def stop(self) -> "Watch":
        self.wall = time.perf_counter() - self._t0
        self.others = others_busy(self._snap, cpu_times(), self.exclude)
        self.load_after = os.getloadavg()
        return self

    @property
    def others_share(self) -> float:
        """Share of the machine's CPU time (all cores) that other processes took."""
        cores = os.cpu_count() or 1
        return sum(c for c, _, _ in self.others) / max(self.wall * cores, 1e-9)

    @property
    def under_load(self) -> bool:
        return self.load_before[0] > MAX_IDLE_LOAD or self.others_share > MAX_OTHERS_SHARE

    def verdict(self) -> str:
        if not self.under_load:
            return (f"idle: 1-min load {self.load_before[0]:.2f} <= {MAX_IDLE_LOAD} at start, other processes "
                    f"{100 * self.others_share:.1f}% of the CPU time during the run")
        return (f"UNDER LOAD, not a result: 1-min load {self.load_before[0]:.2f} at start (limit "
                f"{MAX_IDLE_LOAD}), other processes {100 * self.others_share:.1f}% of the CPU time during the "
                f"run (limit {100 * MAX_OTHERS_SHARE:.0f}%)")

    def lines(self) -> list[str]:
        fmt = lambda la: " ".join(f"{v:.2f}" for v in la)  # noqa: E731
        out = [f"load average (1, 5, 15 min): {fmt(self.load_before)} before, {fmt(self.load_after)} after "
               f"(after includes this benchmark's own processes)",
               f"status: {self.verdict()}",
               f"what else ran ({self.wall:.0f} s of wall time, CPU time of other processes):"]
        busy = describe([u for u in self.others if u[0] >= 0.1], self.wall)
        return out + ([f"  {line}" for line in busy] or ["  nothing above 0.1 CPU-s"])


def wait_for_idle(timeout: float, exclude: set[int], poll: float = 15.0) -> bool:
    """Wait up to ``timeout`` seconds for the 1-minute load average to fall to
    :data:`MAX_IDLE_LOAD`; True when it did."""
    deadline = time.monotonic() + timeout
    while os.getloadavg()[0] > MAX_IDLE_LOAD:
        if time.monotonic() >= deadline:
            return False
        busy = describe(sample_others(1.0, exclude), 1.0, top=3)
        print(f"waiting for an idle machine: load {os.getloadavg()[0]:.2f}; busy: {'; '.join(busy) or '-'}",
              flush=True)
        time.sleep(poll)
    return True


def write_docs_section(path: Path, name: str, body: str) -> None:
    """Replace the text between ``<!-- {name} begin -->`` and ``<!-- {name} end -->`` in
    ``path`` (appended at the end when the markers are missing)."""
    begin, end = f"<!-- {name} begin -->", f"<!-- {name} end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda m: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def worker_environment(huge: bool) -> dict[str, str]:
    """A benchmark worker's environment, the same for both frameworks (torch gains from
    huge pages too): drugjax on PYTHONPATH and, with ``huge``, glibc's huge-page tunable
    where :mod:`drugjax.runtime.huge_pages` would set it for train.py."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return huge_pages.environment(env) if huge and huge_pages.wanted(env) else env


def allocator_line(env: dict[str, str]) -> str:
    """What the report says of the workers' allocator."""
    tunables = env.get(huge_pages.TUNABLES)
    if tunables:
        return f"{huge_pages.TUNABLES}={tunables} for every worker, both frameworks"
    return f"glibc's default malloc for every worker ({huge_pages.TUNABLES} not set)"


def has_huge_pages(env: dict[str, str]) -> bool:
    return f"{huge_pages.HUGETLB}=1" in env.get(huge_pages.TUNABLES, "")


def begin(wait_idle: float) -> tuple[Watch, list[str]]:
    """Wait up to ``wait_idle`` seconds for an idle machine, note what was busy in the 2 s
    before the start, and start watching: (the started watch, those busy lines)."""
    watch = Watch()
    if wait_idle and not wait_for_idle(wait_idle, watch.exclude):
        print(f"the machine did not become idle within {wait_idle:.0f} s; measuring anyway (under load)")
    before = describe([u for u in sample_others(2.0, watch.exclude) if u[0] >= 0.05], 2.0)
    return watch.start(), before


def run_worker(cmd: list[str], env: dict[str, str], watch: Watch, name: str) -> dict:
    """Run one framework's worker process (watched, so its CPU time is not counted as
    another process's) and return the JSON of its last ``RESULT `` line."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watch.exclude.add(proc.pid)
    out, err = proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"the {name} worker failed (exit {proc.returncode}):\n{err[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def report_head(argv: list[str], watch: Watch, before: list[str], details: list[str]) -> list[str]:
    """The report's opening block: command, machine, load and what else ran, then
    ``details`` (versions, allocator, set-up); UNDER LOAD said after it where it was."""
    cmd = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT)] + argv)
    lines = [f"command: `{cmd}`",
             f"machine: {cpu_name()}, {os.cpu_count()} cores (os.cpu_count), {time.strftime('%Y-%m-%d %H:%M %Z')}",
             *watch.lines(),
             "busy in the 2 s before the start:", *[f"  {b}" for b in before or ["nothing above 0.1 CPU-s"]],
             *details]
    report = ["```", *lines, "```", ""]
    if watch.under_load:
        report += ["**UNDER LOAD: these figures are not results** (see status above).", ""]
    return report


def write_result(path: Path, section: str, report: str, under_load: bool, allow_load: bool) -> None:
    """Write ``report`` into ``section`` of ``path``; refused (SystemExit) for a run
    under load unless ``allow_load``."""
    if under_load and not allow_load:
        raise SystemExit(f"not written to {os.path.relpath(path, ROOT)}: the run was under load (see status); re-run on an idle "
                         "machine, or pass --allow-load to write it marked UNDER LOAD")
    write_docs_section(path, section, report)
    print(f"updated {path}")


def torch_missing() -> str | None:
    """Why torch and torchvision cannot be imported here (None when they can): the
    benchmarks then time drugjax alone."""
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as e:
        return str(e)
    return None


def sgd_train_step(model, tx):
    """The benchmarks' jitted training step of a 1000-class ``model``: softmax
    cross-entropy, BatchNorm in training mode, dropout, one ``tx`` update;
    ``(params, batch_stats, opt_state), x, y, key -> (new state, loss)``."""
    import jax
    import jax.numpy as jnp
    import optax

    from drugjax.runtime import xla_cpu

    def loss_fn(params, batch_stats, x, y, key):
        logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                      mutable=["batch_stats"], rngs={"dropout": key})
        loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), y)
        return loss.mean(), updates["batch_stats"]

    @xla_cpu.jit
    def train_step(state, x, y, key):
        params, batch_stats, opt_state = state
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch_stats, x, y, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), batch_stats, opt_state), loss

    return train_step
