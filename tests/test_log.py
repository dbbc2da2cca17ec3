"""Console and log-file lines: their exact form, levels, masking, the log file and a gone reader.

In-process tests of ``tasker.report.log`` (the end-to-end tests see the same lines
through a subprocess, where mutation testing cannot follow them).
"""

from __future__ import annotations

import errno
import io
import os
import re
import time

import pytest

from tasker.report import log as log_module
from tasker.report.log import Log, quiet_stream, show_output, stamp
from tasker.report.masking import Masker

STAMP = r"\[\d\d[A-Z][a-z]{2}\d\d \d\d:\d\d:\d\d\] "


@pytest.fixture
def utc():
    """Local time is UTC for the test (the stamps are local time)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines(keepends=True)


# --- stamp ---------------------------------------------------------------------------------


def test_stamp_is_day_month_year_and_local_time_of_the_given_second(utc):
    assert stamp(1700000000) == "14Nov23 22:13:20"
    assert stamp(1700000000.9) == "14Nov23 22:13:20"
    assert stamp(1709622489) == "05Mar24 07:08:09"
    assert stamp(946684799) == "31Dec99 23:59:59"
    # back to a second seen before: never the text of the second in between
    assert stamp(1700000000) == "14Nov23 22:13:20"


def test_stamp_without_a_time_is_now(utc):
    before = time.time()
    shown = stamp()
    after = time.time()
    assert shown in {time.strftime("%d%b%y %H:%M:%S", time.localtime(int(t))) for t in (before, after)}


# --- show_output ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "shown"), [
    ("done\n", "done"),
    ("line1\r\nline2\n", "line1\\nline2"),
    ("\nfirst\n\n", "\\nfirst"),           # leading newlines stay, trailing ones go
    ("padded  \n", "padded  "),             # only newlines are stripped, not spaces
    ("BOX\n", "BOX"),
    ("XX", "XX"),
    ("a\rb", "ab"),
    ("", ""),
])
def test_show_output_makes_one_line(text, shown):
    assert show_output(text) == shown


def test_show_output_keeps_200_characters_and_says_how_long_the_output_was():
    assert show_output("x" * 200) == "x" * 200
    assert show_output("x" * 201) == "x" * 200 + "... (201 chars total)"
    # the total counts the output as it was, newlines included
    assert show_output("ab\n" * 100) == "ab\\n" * 50 + "... (300 chars total)"
    assert show_output("abcdef", limit=3) == "abc... (6 chars total)"
    assert show_output("abc", limit=3) == "abc"
    assert show_output("x" * 300, size=5000) == "x" * 200 + "... (5000 bytes total)"   # the head of a longer output
    assert show_output("x" * 3, limit=3, size=5000) == "xxx"


# --- levels and the form of a line ---------------------------------------------------------


@pytest.mark.parametrize(("level", "shown"), [
    ("ERROR", ["ERROR"]),
    ("WARN", ["ERROR", "WARN"]),
    ("INFO", ["ERROR", "WARN", "INFO"]),
    ("DEBUG", ["ERROR", "WARN", "INFO", "DEBUG"]),
])
def test_a_level_shows_itself_and_everything_more_severe(level, shown):
    stream = io.StringIO()
    log = Log(level, stream)
    log.error("an error")
    log.warn("a warning")
    log.info("some news")
    log.debug("a detail")
    expected = {"ERROR": "ERROR: an error", "WARN": "WARN: a warning", "INFO": "some news",
                "DEBUG": "DEBUG: a detail"}
    got = lines(stream)
    assert len(got) == len(shown), got
    for line, name in zip(got, shown, strict=True):
        assert re.fullmatch(STAMP + re.escape(expected[name]) + "\n", line), line
    assert [log.enabled(name) for name in ("ERROR", "WARN", "INFO", "DEBUG")] == \
        [name in shown for name in ("ERROR", "WARN", "INFO", "DEBUG")]


def test_the_default_level_is_info_on_stdout(capsys):
    log = Log()
    log.info("shown")
    log.debug("hidden")
    out = capsys.readouterr().out
    assert re.fullmatch(STAMP + "shown\n", out), out


def test_an_error_can_show_a_shorter_text_on_the_console_than_in_the_file(tmp_path):
    stream = io.StringIO()
    log = Log("INFO", stream)
    log.open(str(tmp_path / "run.log"))
    log.error("Task 3: failed: a long story", console="Task 3: failed")
    log.close()
    assert re.fullmatch(STAMP + "ERROR: Task 3: failed\n", stream.getvalue())
    assert re.fullmatch(STAMP + "ERROR: Task 3: failed: a long story\n", (tmp_path / "run.log").read_text())


def test_lines_go_above_the_progress_line():
    class Progress:
        def __init__(self):
            self.calls = 0

        def above(self, write):
            self.calls += 1
            write()

    stream = io.StringIO()
    log = Log("INFO", stream)
    log.progress = Progress()
    log.info("Task 0: done")
    assert log.progress.calls == 1
    assert re.fullmatch(STAMP + "Task 0: done\n", stream.getvalue())


# --- masking -------------------------------------------------------------------------------


def test_secrets_are_masked_on_the_console_and_in_the_file(tmp_path):
    stream = io.StringIO()
    log = Log("INFO", stream)
    log.masker = Masker(["hunter2"])
    log.open(str(tmp_path / "run.log"))
    log.info("login with hunter2")
    log.error("Task 1: hunter2 refused, output: hunter2", console="Task 1: hunter2 refused")
    log.close()
    console = lines(stream)
    assert re.fullmatch(STAMP + "login with <masked len=7>\n", console[0])
    assert re.fullmatch(STAMP + "ERROR: Task 1: <masked len=7> refused\n", console[1])
    in_file = (tmp_path / "run.log").read_text().splitlines(keepends=True)
    assert re.fullmatch(STAMP + "login with <masked len=7>\n", in_file[0])
    assert re.fullmatch(STAMP + "ERROR: Task 1: <masked len=7> refused, output: <masked len=7>\n", in_file[1])
    assert log.mask("a hunter2 b") == "a <masked len=7> b"


def test_without_secrets_nothing_is_masked():
    stream = io.StringIO()
    log = Log("INFO", stream)
    assert log.mask("<text> with hunter2") == "<text> with hunter2"
    log.info("<text> with hunter2")
    assert re.fullmatch(STAMP + "<text> with hunter2\n", stream.getvalue())


# --- the log file --------------------------------------------------------------------------


def test_the_log_file_takes_every_line_until_it_is_closed(tmp_path):
    path = tmp_path / "run.log"
    stream = io.StringIO()
    log = Log("INFO", stream)
    assert log.path == ""   # no log file: callers then name none
    log.info("before")
    log.open(str(path))
    assert log.path == str(path)
    log.info("first")
    log.warn("second")
    assert (path.stat().st_mode & 0o777) == 0o600
    opened = log.file
    log.close()
    assert opened.closed
    log.info("after")
    log.close()   # closing twice is harmless
    assert [line[len("[14Nov23 22:13:20] "):] for line in path.read_text().splitlines()] == \
        ["first", "WARN: second"]
    assert len(lines(stream)) == 4


class FullDisk(io.StringIO):
    """A log file on a full disk: every write fails."""

    def __init__(self, exc: OSError):
        super().__init__()
        self.exc = exc
        self.writes = 0

    def write(self, text):
        self.writes += 1
        raise self.exc

    def close(self):
        super().close()
        raise self.exc


@pytest.mark.parametrize(("exc", "reason"), [
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), os.strerror(errno.ENOSPC)),
    (OSError("quota exceeded"), "quota exceeded"),
])
def test_a_log_file_that_fails_is_reported_once_and_lines_go_on_to_the_console(monkeypatch, exc, reason):
    full = FullDisk(exc)
    monkeypatch.setattr(log_module, "open_append", lambda path: full)
    stream = io.StringIO()
    log = Log("INFO", stream)
    log.open("/var/log/run.log")
    log.info("one")
    log.info("two")
    log.close()   # the failing close does not stop the run either
    assert log.file is None
    log.info("three")
    got = lines(stream)
    assert full.writes == 2
    assert len(got) == 4, got
    assert re.fullmatch(STAMP + "one\n", got[0])
    assert re.fullmatch(STAMP + re.escape(f"ERROR: could not write the log file /var/log/run.log: {reason}; "
                                          "from here on lines go to the console only\n"), got[1])
    assert re.fullmatch(STAMP + "two\n", got[2])
    assert re.fullmatch(STAMP + "three\n", got[3])


# --- a console whose reader went away ------------------------------------------------------


def points_at_devnull(fd: int) -> bool:
    st, null = os.fstat(fd), os.stat(os.devnull)
    return (st.st_dev, st.st_ino) == (null.st_dev, null.st_ino)


def test_a_console_whose_reader_went_away_is_pointed_at_devnull():
    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = os.fdopen(write_end, "w")
    try:
        log = Log("INFO", stream)
        log.info("nobody reads this")   # EPIPE: the run goes on
        assert points_at_devnull(write_end)
        log.info("nor this")
        stream.write("the flush at exit succeeds\n")
        stream.flush()
    finally:
        stream.close()


def test_quiet_stream_leaves_streams_without_a_descriptor_alone():
    quiet_stream(io.StringIO())   # no fileno (io.UnsupportedOperation)
    quiet_stream(object())        # no fileno at all


def test_quiet_stream_points_the_descriptor_at_devnull_and_leaks_none():
    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = os.fdopen(write_end, "w")
    try:
        before = sorted(os.listdir("/proc/self/fd"))
        quiet_stream(stream)
        assert sorted(os.listdir("/proc/self/fd")) == before
        assert points_at_devnull(write_end)
        assert os.write(write_end, b"x") == 1
    finally:
        stream.close()


def test_a_closed_console_does_not_stop_the_run():
    stream = io.StringIO()
    stream.close()
    Log("INFO", stream).info("to nowhere")   # ValueError: I/O operation on closed file
