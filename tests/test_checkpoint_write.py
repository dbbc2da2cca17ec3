"""The recovery file is replaced whole: a write that fails or is cut off leaves the previous checkpoint.

A checkpoint is written to a temporary file in the same directory and renamed over
the old one.  These tests break the write at every point of a checkpoint's text
and check that the file on disk still holds the earlier, complete checkpoint.
"""

from __future__ import annotations

import json
import os

import pytest
from support import compile_text, run_vm

from tasker.report import private
from tasker.vm import checkpoint
from tasker.vm.checkpoint import CheckpointError, CheckpointStore

FLOW = """
task=0
hostname=localhost
command=echo
arguments=first

task=1
hostname=localhost
command=echo
arguments=second
"""


class DiskFull(OSError):
    pass


def store_and_machine(tmp_path):
    workflow, _ = compile_text(FLOW)
    vm = run_vm(FLOW)
    path = tmp_path / "recovery" / "flow_0000.recovery.json"
    store = CheckpointStore(str(path), str(tmp_path / "flow.txt"), FLOW.encode(), workflow, environ={})
    return store, vm.machine, path


def cut_after(limit: int):
    """An ``os.fdopen`` for the atomic writer whose file takes ``limit`` bytes and then fails."""
    real_fdopen = os.fdopen

    def fdopen(fd, *args, **kwargs):
        fh = real_fdopen(fd, *args, **kwargs)
        real_write = fh.write

        def write(data):
            real_write(data[:limit])
            fh.flush()
            raise DiskFull(28, "No space left on device")
        fh.write = write
        return fh
    return fdopen


def test_a_checkpoint_is_a_whole_json_document(tmp_path):
    store, machine, path = store_and_machine(tmp_path)
    store.save(machine)
    data = checkpoint.load(str(path))
    assert data["execution_path"] == [0, 1]
    assert os.listdir(path.parent) == [path.name]


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_a_write_that_fails_part_way_leaves_the_previous_checkpoint(tmp_path, monkeypatch, fraction):
    store, machine, path = store_and_machine(tmp_path)
    store.save(machine)
    before = path.read_bytes()
    machine.state.path.append(7)   # the next checkpoint differs from the first
    full = len(json.dumps(store.document(machine), separators=(",", ":")))
    monkeypatch.setattr(private.os, "fdopen", cut_after(int(full * fraction)))
    with pytest.raises(CheckpointError, match="No space left"):
        store.save(machine)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert checkpoint.load(str(path))["execution_path"] == [0, 1]
    assert os.listdir(path.parent) == [path.name]   # no half-written temporary file is left
    # and the next successful write replaces it whole
    store.save(machine)
    assert checkpoint.load(str(path))["execution_path"] == [0, 1, 7]


def test_a_crash_before_the_rename_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    # The process dying between writing the new text and renaming it: the rename never happens.
    store, machine, path = store_and_machine(tmp_path)
    store.save(machine)
    before = path.read_bytes()
    machine.state.path.append(7)

    def killed(*_args):
        raise SystemExit(137)
    monkeypatch.setattr(private.os, "replace", killed)
    with pytest.raises(SystemExit):
        store.save(machine)
    assert path.read_bytes() == before
