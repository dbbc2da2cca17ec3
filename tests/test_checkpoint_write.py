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

from tasker.numbers import LIMIT
from tasker.report import private
from tasker.vm import checkpoint, shape
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


# ----------------------------------------------------------------- the shape check of a loaded file


def full_state() -> dict:
    """A recovery document with every part the writer produces filled in."""
    rec = {"exit_code": 0, "stdout": "out", "stderr": "", "hostname": "localhost", "kind": "exec",
           "success": True, "start": 1.5, "end": 2, "counts": [1, 2]}
    return {
        "version": checkpoint.VERSION, "task_file_path": "/w/flow.txt", "task_file_hash": "ab12",
        "task_results": {"0": rec, "-1": {"exit_code": -9, "counts": None}, "12": {}},
        "execution_path": [0, 12],
        "last_successful_task": 0, "intended_next_task": None, "current_task": 12,
        "created": "2026-01-01", "updated": None, "ending": None, "log_file": "/w/flow.log",
        "global_vars": {"S": "x", "I": 1, "F": 1.5, "B": False, "N": None},
        "global_vars_metadata": {"S": {"source": "file"}},
        "failure_info": {"task_id": 12, "exit_code": 1, "error": "e"},
        "extra_key_of_2_2": [1, "anything"],
        "vm": {"pc": "t12", "steps": 7, "loops": {"3": [1, 3, False]}, "final": [12, "h", "c", 0, True],
               "branch": {"4": "success"}, "subtasks": {"5": [50, 51]},
               "fork_done": {"6": [[60, rec]]}, "members": {"6": [[61, {"exit_code": 1}]]},
               "resumed_from": "t3", "in_flight": 2},
    }


def damaged(path: str, value) -> dict:
    """``full_state`` with the dotted ``path`` (list items by number) set to ``value``, or removed."""
    doc = full_state()
    *parents, last = path.split(".")
    node = doc
    for name in parents:
        node = node[int(name)] if isinstance(node, list) else node[name]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is REMOVE:
        del node[last]
    else:
        node[last] = value
    return doc


REMOVE = object()


def test_a_state_as_the_writer_makes_it_passes_the_shape_check():
    shape.check(full_state())


@pytest.mark.parametrize("path,value", [
    ("vm", REMOVE), ("vm.pc", REMOVE), ("vm.steps", REMOVE), ("vm.loops", REMOVE), ("vm.final", REMOVE),
    ("vm.branch", REMOVE), ("vm.subtasks", REMOVE), ("vm.fork_done", REMOVE), ("vm.members", REMOVE),
    ("vm.resumed_from", None), ("vm.in_flight", None), ("vm.final.0", None), ("vm.final.3", None),
    ("vm.final.3", "timeout"), ("vm.final.3", -LIMIT + 1), ("vm.steps", LIMIT - 1), ("vm.loops", None),
    ("execution_path", REMOVE), ("execution_path", []), ("global_vars", REMOVE), ("global_vars_metadata", None),
    ("failure_info", None), ("failure_info", {}), ("failure_info.task_id", None), ("current_task", REMOVE),
    ("log_file", REMOVE), ("task_results.0", {}), ("task_results.0.counts", []),
    ("task_results.0.start", -(LIMIT - 10 ** 3)), ("task_results.0.end", 9.9e17),
    ("task_results.0.exit_code", LIMIT - 1), ("task_results.0.exit_code", -LIMIT + 1),
    ("task_results.123456789012345678", {}), ("task_results.-5", {}),
])
def test_what_the_shape_check_lets_through(path, value):
    shape.check(damaged(path, value))


@pytest.mark.parametrize("path,value,message", [
    ("version", None, "version should be text"),
    ("task_file_path", 1, "task_file_path should be text"),
    ("task_file_hash", REMOVE, "task_file_hash should be text"),
    ("task_results", None, "task_results should be an object"),
    ("task_results", [], "task_results should be an object"),
    ("task_results.abc", {}, "task_results key 'abc' should be a task id"),
    ("task_results.1x", {}, "task_results key '1x' should be a task id"),
    ("task_results.1\n", {}, "task_results key '1\\n' should be a task id"),
    ("task_results.", {}, "task_results key '' should be a task id"),
    ("task_results.1234567890123456789", {}, "task_results key '1234567890123456789' should be a task id"),
    ("task_results." + "k" * 40, {}, f"task_results key {'k' * 30!r} should be a task id"),
    ("task_results.0", [], "task_results.0 should be an object"),
    ("task_results.0", None, "task_results.0 should be an object"),
    ("task_results.0.exit_code", None, "task_results.0.exit_code should be a whole number"),
    ("task_results.0.exit_code", True, "task_results.0.exit_code should be a whole number"),
    ("task_results.0.exit_code", 1.0, "task_results.0.exit_code should be a whole number"),
    ("task_results.0.exit_code", LIMIT, "task_results.0.exit_code should be a whole number"),
    ("task_results.0.exit_code", -LIMIT, "task_results.0.exit_code should be a whole number"),
    ("task_results.0.stdout", 5, "task_results.0.stdout should be text"),
    ("task_results.0.stderr", None, "task_results.0.stderr should be text"),
    ("task_results.0.hostname", [], "task_results.0.hostname should be text"),
    ("task_results.0.kind", 0, "task_results.0.kind should be text"),
    ("task_results.0.success", 1, "task_results.0.success should be true or false"),
    ("task_results.0.success", None, "task_results.0.success should be true or false"),
    ("task_results.0.start", "noon", "task_results.0.start should be a finite number"),
    ("task_results.0.start", True, "task_results.0.start should be a finite number"),
    ("task_results.0.start", float("inf"), "task_results.0.start should be a finite number"),
    ("task_results.0.start", float("nan"), "task_results.0.start should be a finite number"),
    ("task_results.0.end", float(LIMIT), "task_results.0.end should be a finite number"),
    ("task_results.0.end", -LIMIT, "task_results.0.end should be a finite number"),
    ("task_results.0.counts", "ab", "task_results.0.counts should be a list"),
    ("task_results.0.counts", [1, 2, "x"], "task_results.0.counts[2] should be a whole number"),
    ("execution_path", None, "execution_path should be a list"),
    ("execution_path", [0, 1, None], "execution_path[2] should be a whole number"),
    ("last_successful_task", "0", "last_successful_task should be a whole number or null"),
    ("intended_next_task", 1.5, "intended_next_task should be a whole number or null"),
    ("current_task", [], "current_task should be a whole number or null"),
    ("created", 5, "created should be text or null"),
    ("updated", 5, "updated should be text or null"),
    ("ending", {}, "ending should be text or null"),
    ("log_file", False, "log_file should be text or null"),
    ("global_vars", [], "global_vars should be an object or null"),
    ("global_vars.V" + "v" * 40, {"a": 1}, f"global_vars.V{'v' * 29} should be text"),
    ("global_vars.L", [], "global_vars.L should be text"),
    ("global_vars_metadata", "x", "global_vars_metadata should be an object or null"),
    ("global_vars_metadata.M" + "m" * 40, "env", f"global_vars_metadata.M{'m' * 29} should be an object"),
    ("failure_info", "boom", "failure_info should be an object or null"),
    ("failure_info.task_id", "x", "failure_info.task_id should be a whole number or null"),
    ("vm", None, "vm should be an object"),
    ("vm", [], "vm should be an object"),
    ("vm.pc", None, "vm.pc should be text"),
    ("vm.steps", None, "vm.steps should be a whole number"),
    ("vm.steps", LIMIT, "vm.steps should be a whole number"),
    ("vm.loops", [], "vm.loops should be an object or null"),
    ("vm.loops", {"x": [1, 1, False]}, "vm.loops key 'x' should be a task id"),
    ("vm.loops", {"3": 5}, "vm.loops.3 should be a list of 3 items"),
    ("vm.loops", {"3": [1, 3]}, "vm.loops.3 should be a list of 3 items"),
    ("vm.loops", {"3": [1, 3, False, 0]}, "vm.loops.3 should be a list of 3 items"),
    ("vm.loops", {"3": ["1", 3, False]}, "vm.loops.3[0] should be a whole number"),
    ("vm.loops", {"3": [1, None, False]}, "vm.loops.3[1] should be a whole number"),
    ("vm.final", None, "vm.final should be a list of 5 items"),
    ("vm.final", [1, "h", "c", 0], "vm.final should be a list of 5 items"),
    ("vm.final.0", "12", "vm.final[0] should be a whole number or null"),
    ("vm.final.1", None, "vm.final[1] should be text"),
    ("vm.final.2", 3, "vm.final[2] should be text"),
    ("vm.final.3", 1.5, "vm.final[3] should be a whole number"),
    ("vm.final.3", LIMIT, "vm.final[3] should be a whole number"),
    ("vm.branch", [], "vm.branch should be an object or null"),
    ("vm.branch", {"4": 5}, "vm.branch.4 should be text"),
    ("vm.branch", {"z": "x"}, "vm.branch key 'z' should be a task id"),
    ("vm.subtasks", {"5": "abc"}, "vm.subtasks.5 should be a list"),
    ("vm.subtasks", {"5": [50, None]}, "vm.subtasks.5[1] should be a whole number"),
    ("vm.subtasks", {"y": []}, "vm.subtasks key 'y' should be a task id"),
    ("vm.fork_done", {"6": [[60]]}, "vm.fork_done.6[0] should be a list of 2 items"),
    ("vm.fork_done", {"6": [[60, {}], "x"]}, "vm.fork_done.6[1] should be a list of 2 items"),
    ("vm.fork_done", {"6": [["x", {}]]}, "vm.fork_done.6[0][0] should be a whole number"),
    ("vm.fork_done", {"6": [[60, {"stdout": 1}]]}, "vm.fork_done.6[0][1].stdout should be text"),
    ("vm.fork_done", {"6": {}}, "vm.fork_done.6 should be a list"),
    ("vm.fork_done", {"w": []}, "vm.fork_done key 'w' should be a task id"),
    ("vm.fork_done", 3, "vm.fork_done should be an object or null"),
    ("vm.members", {"6": [[61, "rec"]]}, "vm.members.6[0][1] should be an object"),
    ("vm.members", {"6": [[61, {}], [1.5, {}]]}, "vm.members.6[1][0] should be a whole number"),
    ("vm.members", {"v": []}, "vm.members key 'v' should be a task id"),
    ("vm.resumed_from", 5, "vm.resumed_from should be text or null"),
    ("vm.in_flight", "0", "vm.in_flight should be a whole number or null"),
    ("vm.in_flight", 10 ** 20, "vm.in_flight should be a whole number or null"),
])
def test_the_shape_check_names_the_first_part_that_does_not_fit(path, value, message):
    with pytest.raises(shape.ShapeError) as caught:
        shape.check(damaged(path, value))
    assert str(caught.value) == message


def test_a_damaged_part_is_named_in_the_refusal_to_load(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps(damaged("vm.final.1", None)))
    with pytest.raises(checkpoint.RecoveryError) as caught:
        checkpoint.load(str(path))
    assert str(caught.value) == (f"the recovery file {path} is damaged: vm.final[1] should be text; "
                                 "delete it to start over")
