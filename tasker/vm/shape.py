"""The shape of a recovery file, checked before any of it is used.

A recovery file is JSON that anything may have edited, truncated or replaced.
``check`` walks it once against the shape the checkpoint writer produces and
names the first part that does not fit, so a damaged file is a clear refusal
(exit 12) and never a TypeError, OverflowError or KeyError halfway through a
resume.  Keys the writer never sets are allowed (2.2 files carry others).
"""

from __future__ import annotations

import math
import re

from tasker.numbers import LIMIT

_INT_KEY = re.compile(r"-?\d{1,18}\Z")


class ShapeError(Exception):
    """``where`` in the file should be ``what``."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where} should be {what}")


def _int(value: object, where: str, *, none: bool = False) -> None:
    if value is None and none:
        return
    if type(value) is not int or not -LIMIT < value < LIMIT:
        raise ShapeError(where, "a whole number" + (" or null" if none else ""))


def _number(value: object, where: str) -> None:
    if type(value) not in (int, float) or not math.isfinite(value) or abs(value) >= LIMIT:
        raise ShapeError(where, "a finite number")


def _str(value: object, where: str, *, none: bool = False) -> None:
    if not (isinstance(value, str) or (none and value is None)):
        raise ShapeError(where, "text" + (" or null" if none else ""))


def _dict(value: object, where: str, *, none: bool = False) -> dict:
    if value is None and none:
        return {}
    if not isinstance(value, dict):
        raise ShapeError(where, "an object" + (" or null" if none else ""))
    return value


def _list(value: object, where: str, length: int | None = None) -> list:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        raise ShapeError(where, "a list" + (f" of {length} items" if length is not None else ""))
    return value


def _by_task(value: object, where: str, *, none: bool = True) -> dict:
    """An object whose keys are task ids."""
    items = _dict(value, where, none=none)
    for key in items:
        if not _INT_KEY.match(key):
            raise ShapeError(f"{where} key {key[:30]!r}", "a task id")
    return items


def record(value: object, where: str) -> None:
    rec = _dict(value, where)
    if "exit_code" in rec:
        _int(rec["exit_code"], f"{where}.exit_code")
    for name in ("stdout", "stderr", "hostname", "kind"):
        if name in rec:
            _str(rec[name], f"{where}.{name}")
    if "success" in rec and type(rec["success"]) is not bool:
        raise ShapeError(f"{where}.success", "true or false")
    for name in ("start", "end"):
        if name in rec:
            _number(rec[name], f"{where}.{name}")
    if rec.get("counts") is not None:
        for i, n in enumerate(_list(rec["counts"], f"{where}.counts")):
            _int(n, f"{where}.counts[{i}]")


def check(data: dict) -> None:
    """Raise ``ShapeError`` at the first part of ``data`` that a resume could not use."""
    for name in ("version", "task_file_path", "task_file_hash"):
        _str(data.get(name), name)
    for tid, rec in _by_task(data.get("task_results"), "task_results", none=False).items():
        record(rec, f"task_results.{tid}")
    for i, tid in enumerate(_list(data.get("execution_path", []), "execution_path")):
        _int(tid, f"execution_path[{i}]")
    for name in ("last_successful_task", "intended_next_task", "current_task"):
        _int(data.get(name), name, none=True)
    for name in ("created", "updated", "ending", "log_file"):
        _str(data.get(name), name, none=True)
    for name, value in _dict(data.get("global_vars"), "global_vars", none=True).items():
        if not isinstance(value, (str, int, float, bool)) and value is not None:
            raise ShapeError(f"global_vars.{name[:30]}", "text")
    for name, meta in _dict(data.get("global_vars_metadata"), "global_vars_metadata", none=True).items():
        _dict(meta, f"global_vars_metadata.{name[:30]}")
    failure = _dict(data.get("failure_info"), "failure_info", none=True)
    if "task_id" in failure:
        _int(failure["task_id"], "failure_info.task_id", none=True)
    if "vm" in data:
        vm_section(data["vm"])


def vm_section(value: object) -> None:
    vm = _dict(value, "vm")
    _str(vm.get("pc", ""), "vm.pc")
    _int(vm.get("steps", 0), "vm.steps")
    for tid, loop in _by_task(vm.get("loops"), "vm.loops").items():
        items = _list(loop, f"vm.loops.{tid}", 3)
        _int(items[0], f"vm.loops.{tid}[0]")
        _int(items[1], f"vm.loops.{tid}[1]")
    final = _list(vm.get("final", [None, "", "", None, False]), "vm.final", 5)
    _int(final[0], "vm.final[0]", none=True)
    _str(final[1], "vm.final[1]")
    _str(final[2], "vm.final[2]")
    if not (final[3] is None or isinstance(final[3], str)):
        _int(final[3], "vm.final[3]")
    for tid, branch in _by_task(vm.get("branch"), "vm.branch").items():
        _str(branch, f"vm.branch.{tid}")
    for tid, ids in _by_task(vm.get("subtasks"), "vm.subtasks").items():
        for i, sid in enumerate(_list(ids, f"vm.subtasks.{tid}")):
            _int(sid, f"vm.subtasks.{tid}[{i}]")
    for name in ("fork_done", "members"):
        for tid, pairs in _by_task(vm.get(name), f"vm.{name}").items():
            for i, pair in enumerate(_list(pairs, f"vm.{name}.{tid}")):
                sid, rec = _list(pair, f"vm.{name}.{tid}[{i}]", 2)
                _int(sid, f"vm.{name}.{tid}[{i}][0]")
                record(rec, f"vm.{name}.{tid}[{i}][1]")
    _str(vm.get("resumed_from"), "vm.resumed_from", none=True)
    _int(vm.get("in_flight"), "vm.in_flight", none=True)
