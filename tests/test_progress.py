"""drugjax.runtime.progress: log lines where there is no terminal, nothing when off."""

import logging

import pytest

from drugjax.runtime import progress
from drugjax.runtime.progress import Progress


@pytest.fixture(autouse=True)
def _switched_on():
    progress.set_enabled(True)  # whatever ran before in this worker
    yield
    progress.set_enabled(True)


def test_without_a_terminal_progress_is_a_log_line_with_count_rate_and_time_left(caplog):
    with caplog.at_level(logging.INFO, logger="drugjax.progress"):
        with Progress(1000, "backbone features of posts", unit="img", log_every_s=0) as bar:
            bar.update(250)
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert message.startswith("backbone features of posts: 250/1,000 img (")
    assert " img/s, " in message and message.endswith(" left)")


def test_log_lines_are_spaced_not_one_per_update(caplog):
    with caplog.at_level(logging.INFO, logger="drugjax.progress"):
        bar = Progress(100, "drawing", unit="img", log_every_s=3600)
        for _ in range(100):
            bar.update()
    assert caplog.records == [] and bar.done == 100


def test_switched_off_it_says_nothing_but_still_counts(caplog):
    progress.set_enabled(False)
    with caplog.at_level(logging.INFO, logger="drugjax.progress"):
        bar = Progress(10, "building drugjax_posts", log_every_s=0)
        bar.update(4)
    assert caplog.records == [] and bar.done == 4


def test_time_left_reads_as_a_person_would_say_it():
    bar = Progress(100, "x", unit="step")
    bar.done = 50
    assert bar.line(now=bar._start + 50).endswith("(1.0 step/s, 50 s left)")
    assert bar.line(now=bar._start + 150).endswith("2 min 30 s left)")
    assert bar.line(now=bar._start + 5000).endswith("1 h 23 min left)")
