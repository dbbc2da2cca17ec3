"""Host validation before a run (docs/command-line.md, docs/exec-types.md, D20).

For every task that runs through a non-local exec type: the exec type must be
configured (else exit 20) and its program installed (else exit 61); every host
name must resolve through the system resolver (else exit 21), pass the
optional reachability hook (else exit 60), and pass the exec type's
``validation_test`` once per (host, exec type) (else exit 61).  When several
checks fail the code is 61 before 60 before 21.

Hosts are checked concurrently by a bounded pool of threads; every program a
check starts runs in its own process group and is killed with it when its
time limit passes, so one hanging host costs its timeout and no more.  Ctrl-C
stops the running checks (their groups get SIGTERM, then SIGKILL).

Site-specific checks are optional hooks under ``host_validation:`` in the
exec-type configuration, off by default (D20):

* ``resolve``: asked for names the system resolver does not know; its first
  line of output is the name to use instead (2.2's FQDN look-up tool);
* ``reachability``: run once per resolved host; failing means unreachable
  (2.2's ``ping -c 1 -W 1``).
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time

from tasker.check.model import Workflow
from tasker.cli.settings import Settings
from tasker.exitcodes import Exit, TaskerExit
from tasker.numbers import clamped, whole
from tasker.report.log import Log
from tasker.runners.base import Cancel
from tasker.runners.exectypes import ArgumentsError, ExecTypeError, ExecTypes, render_template
from tasker.runners.process import ProcessRunner
from tasker.runners.slurm import NodeTable

RESOLVE_TIMEOUT = 5.0        # system resolver
DEFAULT_TEST_TIMEOUT = 10    # validation_test without any configured timeout
DEFAULT_HOOK_TIMEOUT = 5
POOL = 16                    # hosts checked at the same time
STOP_GRACE = 3.0             # after Ctrl-C: how long to wait for the running checks to end
LISTED = 10                  # hosts named in the final message

_UNRESOLVED = re.compile(r"@[A-Za-z0-9_]+@")
_HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*\Z")    # what a resolve hook may answer

DNS, UNREACHABLE, CONNECTION = "dns", "unreachable", "connection"
_CODE = {CONNECTION: Exit.HOST_CONNECTION, UNREACHABLE: Exit.HOST_UNREACHABLE, DNS: Exit.HOST_DNS}
_WHAT = {CONNECTION: "connection test failed", UNREACHABLE: "unreachable", DNS: "name does not resolve"}


class HostValidation:
    """Runs the checks and raises ``TaskerExit`` with the spec's code on failure."""

    def __init__(self, workflow: Workflow, settings: Settings, exec_types: ExecTypes, log: Log,
                 cancel: Cancel | None = None, connections=None) -> None:
        self.workflow = workflow
        # the run's ssh connections: the test of a host that tasks use repeatedly opens its master
        self.connections = connections
        self.settings = settings
        self.exec_types = exec_types
        self.log = log
        self.cancel = cancel
        self.resolved: dict[str, str] = {}     # host as written -> name the resolve hook gave
        self.nodes = None                       # tasker.runners.slurm.NodeTable, on first need
        self._nodes_lock = threading.Lock()

    def targets(self) -> dict[str, set[str]]:
        """Host -> exec types to test, for tasks that run remotely."""
        pairs: dict[str, set[str]] = {}
        for task in self.workflow.tasks.values():
            if task.hostname is None or task.command is None:
                continue
            requested = task.exec.literal() if task.exec is not None else None
            if requested is not None and "@" in requested:
                continue      # known only at run time
            name = self.exec_types.requested(requested)
            canonical = self.exec_types.canonical(name)
            if canonical == "local":
                continue
            host = task.hostname.literal().strip()
            if not host:
                continue
            if _UNRESOLVED.search(host):
                # without --skip-unresolved-host-validation the checker has refused the file already
                self.log.info(f"Task {task.id}: host '{host}' is resolved at run time; not validated")
                continue
            pairs.setdefault(host, set()).add(canonical)
        return pairs

    def run(self) -> dict[str, str]:
        """Check every remote host; the names the resolve hook replaced (host as written -> name)."""
        pairs = self.targets()
        if not pairs:
            return {}
        types = sorted({t for ts in pairs.values() for t in ts})
        self.log.info(f"Validating {len(pairs)} host(s) for exec type(s) {', '.join(types)}")
        self.check_exec_types(types)
        failures = self.check_hosts(pairs)
        if not failures:
            self.log.info("Host validation passed")
            return self.resolved
        for kind, host, detail in failures:
            self.log.error(f"Host validation: {host}: {_WHAT[kind]}: {detail}")
        kinds = {kind for kind, _, _ in failures}
        worst = CONNECTION if CONNECTION in kinds else (UNREACHABLE if UNREACHABLE in kinds else DNS)
        raise TaskerExit(_CODE[worst], "tasker: host validation failed: " + _summary(failures),
                         reason="host_validation")

    def check_exec_types(self, types: list[str]) -> None:
        config = self.exec_types.config
        for name in types:
            spec = config.types.get(name)
            if spec is None:
                raise TaskerExit(Exit.VALIDATION, f"tasker: host validation: {self.exec_types.unknown_message(name)}",
                                 reason="host_validation")
            if self.settings.validate_commands and spec.binary and _which(spec.binary) is None:
                raise TaskerExit(Exit.HOST_CONNECTION, f"tasker: host validation: exec type '{name}' needs "
                                                       f"'{spec.binary}', which is not installed (not on PATH)",
                                 reason="host_validation")

    # ------------------------------------------------------------ the pool

    def check_hosts(self, pairs: dict[str, set[str]]) -> list[tuple[str, str, str]]:
        """Check every host with at most POOL at a time; the failures, sorted."""
        own_cancel = self.cancel is None
        if own_cancel:
            self.cancel = Cancel()
        failures: list[tuple[str, str, str]] = []
        lock = threading.Lock()
        work = iter(sorted(pairs.items()))

        def worker(done: threading.Event) -> None:
            try:
                while not self.cancel.is_set:
                    with lock:
                        item = next(work, None)
                    if item is None:
                        return
                    host, types = item
                    try:
                        found = self.check_host(host, sorted(types))
                    except Exception as exc:    # a check that breaks must not let the host pass
                        found = [(CONNECTION, host, f"the check itself failed: {exc!r}")]
                    with lock:
                        failures.extend(found)
            finally:
                done.set()

        # Each worker reports its end through its own Event, not Thread.join: a signal
        # handler that raises inside join() can leave the thread marked as stopped while
        # it still runs, and the run would then exit before the checks' processes are killed.
        finished = [threading.Event() for _ in range(min(POOL, len(pairs)))]
        for done in finished:
            threading.Thread(target=worker, args=(done,), daemon=True, name="hostcheck").start()
        try:
            for done in finished:
                done.wait()
        except BaseException:
            # Ctrl-C/SIGTERM: the handler has set the cancel, which stops the running checks.
            self.cancel.set(2)
            deadline = time.monotonic() + STOP_GRACE
            for done in finished:
                done.wait(max(0.0, deadline - time.monotonic()))
            raise
        finally:
            if own_cancel:
                self.cancel.close()
                self.cancel = None
        return sorted(failures)

    def check_host(self, host: str, types: list[str]) -> list[tuple[str, str, str]]:
        """The failures of one host: name resolution, reachability, then each exec type's test."""
        slurm = [name for name in types if self.exec_types.config.types[name].runner == "slurm"]
        out = self.check_slurm_node(host, slurm) if slurm else []
        types = [name for name in types if name not in slurm]
        if not types:
            return out
        return out + self.check_remote_host(host, types)

    def check_slurm_node(self, host: str, types: list[str]) -> list[tuple[str, str, str]]:
        """A Slurm node is not asked of the name resolver: sinfo must list it, up.

        Unknown to the cluster counts as a name that does not resolve (exit 21); down, drained,
        not responding, outside the configured partition, or no answer from Slurm as a failed
        connection test (61).  ``hostname=any`` needs some node that is up."""
        if self.nodes is None:
            with self._nodes_lock:
                if self.nodes is None:
                    self.nodes = NodeTable()
        out = []
        for name in types:
            problem = self.nodes.check(self.exec_types.config.types[name], host)
            if problem is not None:
                kind, detail = problem
                out.append((DNS if kind == "dns" else CONNECTION, host, f"{name}: {detail}"))
        return out

    def check_remote_host(self, host: str, types: list[str]) -> list[tuple[str, str, str]]:
        """Name resolution, reachability, then each exec type's validation_test."""
        target = host
        if not resolves(host):
            hook = self.hook("resolve")
            name = self.resolve_hook(hook, host) if hook else None
            if not name:
                how = "system resolver" + (" and the resolve hook" if hook else "")
                return [(DNS, host, f"unknown to the {how}")]
            if name != host:
                self.log.info(f"Host validation: {host} resolved to {name} by the resolve hook")
                self.resolved[host] = name
                target = name
                if self.connections is not None and host in self.connections.reused:
                    self.connections.reused.add(name)
        hook = self.hook("reachability")
        if hook:
            ok, detail = self.reachable(hook, target)
            if not ok:
                return [(UNREACHABLE, host, f"the reachability hook failed ({detail})")]
        out = []
        for name in types:
            ok, detail = self.connection_test(name, target)
            if not ok:
                out.append((CONNECTION, host, f"{name}: {detail}"))
        return out

    # ------------------------------------------------------------ hooks and tests

    def hook(self, name: str) -> dict | None:
        hooks = self.exec_types.config.hooks
        hook = hooks.get(name) if isinstance(hooks, dict) else None
        return hook if isinstance(hook, dict) and hook.get("command") else None

    def run_hook(self, hook: dict, host: str):
        """Run a hook's command with ``{hostname}`` filled in: (result, time limit)."""
        command = hook["command"]
        parts = command if isinstance(command, list) else [command]
        argv = [str(part).replace("{hostname}", host) for part in parts]
        limit = _positive_int(hook.get("timeout")) or DEFAULT_HOOK_TIMEOUT
        return self.start(argv, limit), limit

    def reachable(self, hook: dict, host: str) -> tuple[bool, str]:
        """The reachability hook passes for ``host`` (exit 0 within its time limit)."""
        result, limit = self.run_hook(hook, host)
        return _verdict(result, limit, 0)

    def resolve_hook(self, hook: dict, host: str) -> str | None:
        """The name the resolve hook gives for ``host`` (first line of its output), or None."""
        result, _limit = self.run_hook(hook, host)
        if result.error or result.timed_out or result.exit_code != 0:
            return None
        lines = result.stdout.text().strip().splitlines()
        name = lines[0].strip() if lines else ""
        return name if _HOST_NAME.match(name) else None

    def connection_test(self, name: str, host: str) -> tuple[bool, str]:
        """The exec type's validation_test for ``host`` (docs/exec-types.md)."""
        spec = self.exec_types.config.types[name]
        test = spec.validation_test
        if not test:
            return True, ""
        if not isinstance(test, dict) or not test.get("command"):
            return False, "validation_test has no command"
        if "expected_exit" not in test and "expected_output" not in test:
            return False, "validation_test needs expected_exit or expected_output"
        try:
            argv = render_template(spec, host, str(test["command"]), str(test.get("arguments", "") or ""))
            expected = whole(str(test.get("expected_exit", 0)))
        except (ExecTypeError, ArgumentsError, ValueError, TypeError) as exc:
            return False, str(exc)
        limit = self.test_timeout(test)
        result = self.start(argv, limit)
        ok, detail = _verdict(result, limit, expected)
        want = test.get("expected_output")
        if ok and want is not None and str(want) not in result.stdout.text():
            return False, f"the output does not contain {str(want)!r}" + _stderr_tail(result)
        return ok, detail

    def start(self, argv: list[str], limit: int):
        """Run one check's program, killed with its process group after ``limit`` seconds."""
        return ProcessRunner(connections=self.connections).run(argv, float(limit), self.cancel)

    def test_timeout(self, test: dict) -> int:
        """VALIDATION_TEST_TIMEOUT > the test's timeout > default_validation_timeout > 10 s."""
        env = _positive_int(self.settings.environ.get("VALIDATION_TEST_TIMEOUT"))
        if env:
            return env
        for value in (test.get("timeout"), self.exec_types.config.default_validation_timeout):
            if _positive_int(value):
                return _positive_int(value)
        return DEFAULT_TEST_TIMEOUT


def _verdict(result, limit: int, expected: int) -> tuple[bool, str]:
    if result.error:
        return False, f"could not start: {result.error}"
    if result.timed_out:
        return False, f"no answer within {limit} s (killed)"
    if result.exit_code != expected:
        return False, f"exit code {result.exit_code}, expected {expected}" + _stderr_tail(result)
    return True, ""


def _stderr_tail(result) -> str:
    lines = [line.strip() for line in result.stderr.text().strip().splitlines() if line.strip()]
    return f" ({lines[-1][:300]})" if lines else ""


def _summary(failures: list[tuple[str, str, str]]) -> str:
    """``connection test failed for a, b; name does not resolve for c`` (at most LISTED hosts each)."""
    parts = []
    for kind in (CONNECTION, UNREACHABLE, DNS):
        hosts = sorted({host for k, host, _ in failures if k == kind})
        if not hosts:
            continue
        shown = ", ".join(hosts[:LISTED]) + (f" and {len(hosts) - LISTED} more" if len(hosts) > LISTED else "")
        parts.append(f"{_WHAT[kind]} for {shown}")
    return "; ".join(parts)


def _positive_int(value) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    text = str(value).strip()
    return clamped(text) if text.isdigit() and clamped(text) > 0 else None


def _which(program: str) -> str | None:
    return shutil.which(program)


def resolves(host: str, timeout: float = RESOLVE_TIMEOUT) -> bool:
    """The system resolver (``/etc/hosts``, DNS ... as nsswitch says) knows ``host`` within ``timeout`` s."""
    answer: list[bool] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, None)
            answer.append(True)
        except (OSError, UnicodeError):
            answer.append(False)

    # getaddrinfo cannot be interrupted: a lookup that outlives its limit is left to finish on its own.
    thread = threading.Thread(target=lookup, daemon=True, name="resolve")
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])
