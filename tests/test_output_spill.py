"""Where captured output moves from memory to a spill file: above exactly 1 MiB per stream.

A stream holds up to 1,048,576 bytes in memory; the first byte beyond that moves
everything to a private spill file, whatever the sizes of the chunks it arrived in.
"""

from __future__ import annotations

import sys

import pytest

from tasker.runners.base import Cancel
from tasker.runners.output import Capture
from tasker.runners.process import ProcessRunner, Session

MIB = 1024 * 1024


def captured(tmp_path, sizes: list[int]):
    session = Session(str(tmp_path))
    capture = Capture("stdout", session)
    for n in sizes:
        capture.feed(b"x" * n)
    out = capture.finish()
    return out, session


@pytest.mark.parametrize("sizes,spilled", [
    ([MIB - 1], False),
    ([MIB], False),
    ([MIB + 1], True),
    ([MIB - 1, 1], False),
    ([MIB - 1, 2], True),
    ([MIB, 1], True),
    ([65_536] * 16, False),
    ([65_536] * 16 + [1], True),
    ([1] * 10 + [MIB - 10], False),
])
def test_the_spill_threshold_is_exactly_one_mib(tmp_path, sizes, spilled):
    out, session = captured(tmp_path, sizes)
    try:
        assert out.spilled is spilled
        total = sum(sizes)
        if spilled:
            assert out.size == total
            with open(out.path, "rb") as fh:
                assert fh.read() == b"x" * total   # what was held in memory went to the file first
        else:
            assert out.text() == "x" * total
            assert session.path is None              # no spill file, not even a directory
    finally:
        session.cleanup()


@pytest.mark.parametrize("size,spilled", [(MIB - 1, False), (MIB, False), (MIB + 1, True)])
def test_a_real_process_output_at_the_boundary(tmp_path, size, spilled):
    code = f"import sys; sys.stdout.buffer.write(b'z' * {size})"
    session = Session(str(tmp_path))
    try:
        r = ProcessRunner(session).run([sys.executable, "-c", code], 60, Cancel())
        assert r.exit_code == 0
        assert r.stdout.spilled is spilled
        assert r.stdout.size == size if spilled else len(r.stdout.text()) == size
    finally:
        session.cleanup()
