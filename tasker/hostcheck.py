"""Host validation before a run (cli.md §13, execution_types.md §7, decisions.md D20).

For every task that runs through a non-local exec type: the exec type must be
configured (else exit 20) and its program installed (else exit 61); every host
name must resolve through the system resolver (else exit 21), pass the
optional reachability hook (else exit 60), and pass the exec type's
``validation_test`` once per (host, exec type) (else exit 61).  Checks run
concurrently with a bounded pool, each bounded by its timeout.
"""

from __future__ import annotations

import threading

from tasker.exitcodes import Exit, TaskerExit
from tasker.syntax.condition import show_template

TYPE_CHECKING = False
if TYPE_CHECKING:
    from tasker.cli import Settings
    from tasker.model import Workflow
    from tasker.report.log import Log
    from tasker.runners.exectypes import ExecTypes

RESOLVE_TIMEOUT = 5.0
DEFAULT_TEST_TIMEOUT = 10
POOL = 16


class HostValidation:
    """Runs the checks and raises ``TaskerExit`` with the spec's code on failure."""

    def __init__(self, workflow: Workflow, settings: Settings, exec_types: ExecTypes, log: Log) -> None:
        self.workflow = workflow
        self.settings = settings
        self.exec_types = exec_types
        self.log = log

    def targets(self) -> dict[str, set[str]]:
        """Host -> exec types to test, for tasks that run remotely."""
        pairs: dict[str, set[str]] = {}
        unresolved = []
        for task in self.workflow.tasks.values():
            if task.hostname is None or task.command is None:
                continue
            requested = show_template(task.exec) if task.exec is not None else None
            if requested is not None and "@" in requested:
                continue      # known only at run time
            name = self.exec_types.requested(requested)
            canonical = self.exec_types.canonical(name)
            if canonical == "local":
                continue
            host = show_template(task.hostname).strip()
            if "@" in host:
                if self.settings.skip_unresolved_host_validation:
                    self.log.info(f"Task {task.id}: host '{host}' is resolved at run time; not validated")
                    continue
                unresolved.append((task.id, host))
                continue
            pairs.setdefault(host, set()).add(canonical)
        if unresolved:
            listed = ", ".join(f"task {tid}: {host}" for tid, host in unresolved)
            raise TaskerExit(Exit.VALIDATION, f"tasker: host validation: host names with unresolved variables "
                                              f"({listed})\n = help: pass --skip-unresolved-host-validation "
                                              "if they are only known at run time")
        return pairs

    def run(self) -> None:
        if self.settings.skip_unresolved_host_validation and not self.settings.validate_hosts:
            self.log.info("--skip-unresolved-host-validation has no effect with --skip-host-validation")
        pairs = self.targets()
        if not pairs:
            return
        self.log.info(f"Validating {len(pairs)} host(s) for remote exec types")
        types = sorted({t for ts in pairs.values() for t in ts})
        self.check_exec_types(types)
        failures = self.check_hosts(pairs)
        if not failures:
            self.log.info("Host validation passed")
            return
        for _kind, host, detail in failures:
            self.log.error(f"Host validation: {host}: {detail}")
        kinds = {k for k, _, _ in failures}
        code = Exit.HOST_CONNECTION if "connection" in kinds else (
            Exit.HOST_UNREACHABLE if "unreachable" in kinds else Exit.HOST_DNS)
        raise TaskerExit(code, f"tasker: host validation failed for {len(failures)} check(s)")

    def check_exec_types(self, types: list[str]) -> None:
        config = self.exec_types.config
        for name in types:
            spec = config.types.get(name)
            if spec is None:
                raise TaskerExit(Exit.VALIDATION, f"tasker: host validation: {self.exec_types.unknown_message(name)}")
            if self.settings.validate_commands and spec.binary and _which(spec.binary) is None:
                raise TaskerExit(Exit.HOST_CONNECTION, f"tasker: host validation: exec type '{name}' needs "
                                                       f"'{spec.binary}', which is not installed (not on PATH)")

    def check_hosts(self, pairs: dict[str, set[str]]) -> list[tuple[str, str, str]]:
        failures: list[tuple[str, str, str]] = []
        lock = threading.Lock()
        work = list(pairs.items())
        index = [0]

        def worker() -> None:
            while True:
                with lock:
                    if index[0] >= len(work):
                        return
                    host, types = work[index[0]]
                    index[0] += 1
                found = self.check_host(host, sorted(types))
                with lock:
                    failures.extend(found)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(POOL, len(work)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sorted(failures)

    def check_host(self, host: str, types: list[str]) -> list[tuple[str, str, str]]:
        if not resolves(host):
            return [("dns", host, "the name does not resolve")]
        hook = self.exec_types.config.hooks.get("reachability")
        if hook and not self.run_hook(hook, host):
            return [("unreachable", host, "the reachability check failed")]
        out = []
        for name in types:
            ok, detail = self.connection_test(name, host)
            if not ok:
                out.append(("connection", host, f"{name} connection test failed: {detail}"))
        return out

    def run_hook(self, hook: dict, host: str) -> bool:
        from tasker.runners.base import Cancel
        from tasker.runners.process import ProcessRunner

        argv = [str(part).replace("{hostname}", host) for part in hook.get("command", [])]
        if not argv:
            return True
        result = ProcessRunner().run(argv, float(hook.get("timeout", 5)), Cancel())
        return result.exit_code == 0 and not result.timed_out

    def connection_test(self, name: str, host: str) -> tuple[bool, str]:
        from tasker.runners.base import Cancel
        from tasker.runners.exectypes import ArgumentsError, ExecTypeError, render_template
        from tasker.runners.process import ProcessRunner

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
        except (ExecTypeError, ArgumentsError) as exc:
            return False, str(exc)
        limit = self.test_timeout(test)
        cancel = Cancel()
        try:
            result = ProcessRunner().run(argv, float(limit), cancel)
        finally:
            cancel.close()
        if result.error:
            return False, result.error
        if result.timed_out:
            return False, f"no answer within {limit} s"
        expected = int(test.get("expected_exit", 0))
        if result.exit_code != expected:
            return False, f"exit code {result.exit_code}, expected {expected}"
        want = test.get("expected_output")
        if want is not None and str(want) not in result.stdout.text():
            return False, f"output does not contain {want!r}"
        return True, ""

    def test_timeout(self, test: dict) -> int:
        env = self.settings.environ.get("VALIDATION_TEST_TIMEOUT", "")
        if env.strip().isdigit() and int(env) > 0:
            return int(env)
        for value in (test.get("timeout"), self.exec_types.config.default_validation_timeout):
            if isinstance(value, int) and value > 0:
                return value
        return DEFAULT_TEST_TIMEOUT


def _which(program: str) -> str | None:
    import shutil

    return shutil.which(program)


def resolves(host: str, timeout: float = RESOLVE_TIMEOUT) -> bool:
    """The system resolver knows ``host`` (answered within ``timeout`` seconds)."""
    answer: list[bool] = []

    import socket

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, None)
            answer.append(True)
        except (OSError, UnicodeError):
            answer.append(False)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answer and answer[0])
