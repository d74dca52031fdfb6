"""drugjax.runtime.atomic and drugjax.errors' full disk: a file is replaced whole or left as
it was, a write that fails for want of space is one DiskFullError naming the file, and
nothing else is taken for a full disk. (tests/test_full_disk.py runs the commands out of
space in child processes.)"""

import errno
import os

import pytest

from drugjax.errors import DiskFullError, disk_full_errno, full_disk_reported
from drugjax.runtime import atomic


def _no_space(fd):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_write_out_of_space_leaves_the_old_file_and_names_it(tmp_path, monkeypatch):
    path = tmp_path / "table1.csv"
    path.write_text("old\n")
    monkeypatch.setattr(atomic.os, "fsync", _no_space)
    with pytest.raises(DiskFullError, match=f"the disk is full: writing {path} failed \\(No space left on device\\)"):
        atomic.write_text(path, "new\n")
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["table1.csv"]


def test_other_errors_pass_through_and_leave_the_file(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text("old\n")
    with pytest.raises(ValueError, match="a bug"):
        with atomic.replacing(path, "w") as f:
            f.write("half")
            raise ValueError("a bug")
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["predictions.csv"]


def test_a_new_file_gets_the_permissions_open_would_give(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic.write_bytes(tmp_path / "report.html", b"<html>")
        (tmp_path / "plain").write_bytes(b"")
    finally:
        os.umask(umask)
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777 == 0o644


def test_full_disks_are_recognised_from_errno_chain_and_tensorstores_message():
    assert disk_full_errno(OSError(errno.EFBIG, "File too large")) == errno.EFBIG
    assert disk_full_errno(OSError(errno.EDQUOT, "Disk quota exceeded")) == errno.EDQUOT
    assert disk_full_errno(OSError(errno.EACCES, "Permission denied")) is None
    tensorstore = ValueError('OUT_OF_RANGE: Error writing "params/0": Failed to write 274558 bytes to file 6: '
                             "No space left on device [os_error_code='28']")
    assert disk_full_errno(tensorstore) == errno.ENOSPC
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as e:
            raise RuntimeError("the save failed") from e
    except RuntimeError as wrapped:
        assert disk_full_errno(wrapped) == errno.ENOSPC
    assert disk_full_errno("[os_error_code='2']") is None  # no such file: not a full disk
    array_record = RuntimeError('Failed to finalize writing of split "full": write() failed: File too large; '
                                "writing /data/tfds/drugjax_posts/.../drugjax_posts-full.array_record-00000-of-00001")
    assert disk_full_errno(array_record) == errno.EFBIG
    import sqlite3  # optuna's study storage: SQLITE_FULL in words only

    assert disk_full_errno(sqlite3.OperationalError("database or disk is full")) == errno.ENOSPC
    assert disk_full_errno(sqlite3.OperationalError("disk I/O error")) is None  # could be a failing disk


def test_an_error_already_in_words_passes_through_as_it_is(tmp_path):
    inner = DiskFullError("the disk is full: writing the checkpoint failed")
    with pytest.raises(DiskFullError) as caught:
        with full_disk_reported(tmp_path / "run"):
            raise inner
    assert caught.value is inner


def test_metrics_jsonl_rewritten_on_resume_is_kept_whole_on_a_full_disk(tmp_path):
    """A resumed run rewrites metrics.jsonl without the lines past its checkpoint; on a
    full disk that rewrite used to leave the file cut at the limit (the earlier steps'
    lines lost). In a child under a 10 kB file-size limit, with a 20 kB file."""
    import json
    import subprocess
    import sys

    lines = [json.dumps({"step": step, "split": "train", "loss": 0.5, "note": "x" * 150}) for step in range(1, 121)]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    before = path.read_bytes()
    child = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
             "resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000)); "
             "from drugjax.training.metric_writer import MetricWriter; "
             "MetricWriter(sys.argv[1], tensorboard=False, resume_step=100)")
    done = subprocess.run([sys.executable, "-c", child, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode != 0 and "DiskFullError: the disk is full: writing" in done.stderr, done.stderr[-2000:]
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["metrics.jsonl"]
