"""Benchmark tasker on the workloads W1-W6 against their floors; print a Markdown table.

    python tests/benchmarks/run.py                      # --quick: all but the largest sizes, 3 runs
    python tests/benchmarks/run.py --full               # also 1000 MiB and 20000 tasks, 5 runs
    python tests/benchmarks/run.py --only w1,w3_par --runs 5
    python tests/benchmarks/run.py --w5 20000 --only w5 # one size, asked for
    python tests/benchmarks/run.py --tasker 'python -m tasker'
    python tests/benchmarks/run.py --only w1,w2 --against-flags=--no-history   # the cost of a feature

Each workload's task file is generated (``workloads.py``), then tasker and the
workload's floor run in turn, A B A B, each run with a fresh, empty HOME as
its working directory, output to /dev/null.  Per run: wall time (monotonic),
CPU time (user+sys of the whole process tree, from ``os.wait4``), peak RSS
(``ru_maxrss``: the largest single process), and for W4 the peak RSS of the
whole live process tree and of tasker alone, sampled from /proc.  The table
gives medians with min-max; the ratio is the median of the paired
tasker/floor ratios.  Linux only; standard library only.  Numbers live
here, never in the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import workloads  # noqa: E402  (the sibling module, also when run from elsewhere)

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024
RUN_FLAGS = ["-r", "--skip-host-validation", "--no-task-backup"]
VALIDATE_FLAGS = ["--validate-only"]


# ---------------------------------------------------------------- process-tree RSS from /proc


def _parents() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    return children


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and its live descendants every ``interval`` seconds."""

    def __init__(self, root: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak_tree = 0
        self.peak_root = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            children = _parents()
            todo, total = [self.root], 0
            while todo:
                pid = todo.pop()
                total += _rss(pid)
                todo.extend(children.get(pid, ()))
            self.peak_tree = max(self.peak_tree, total)
            self.peak_root = max(self.peak_root, _rss(self.root))
            self.done.wait(self.interval)


# ---------------------------------------------------------------- one run


def clean_env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASK_EXECUTOR", "TASKER_"))}
    env["HOME"] = home
    return env


def measure(argv: list[str], timeout: float, sample_ms: float = 0, keep: str | None = None) -> dict:
    """Run ``argv`` once in a fresh HOME; wall, cpu, peak RSS (and sampled tree RSS), exit code."""
    home = tempfile.mkdtemp(prefix="tasker-bench-home-")
    out = open(keep, "ab") if keep else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=home, env=clean_env(home), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT if keep else subprocess.DEVNULL, start_new_session=True)
        sampler = TreeSampler(proc.pid, sample_ms / 1000) if sample_ms else None
        if sampler:
            sampler.start()
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        with contextlib.suppress(ProcessLookupError):  # whatever the command left behind in its group
            os.killpg(proc.pid, signal.SIGKILL)
        result = {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_mib": usage.ru_maxrss / 1024,
                  "rc": "timeout" if timed_out.is_set() else proc.returncode}
        if sampler:
            sampler.done.set()
            sampler.join()
            result["tree_mib"] = sampler.peak_tree / MIB
            result["own_mib"] = sampler.peak_root / MIB
        return result
    finally:
        if keep:
            out.close()
        shutil.rmtree(home, ignore_errors=True)


# ---------------------------------------------------------------- statistics and the table


def stats(runs: list[dict], key: str) -> tuple[float, float, float] | None:
    values = [r[key] for r in runs if key in r]
    return (statistics.median(values), min(values), max(values)) if values else None


def span(s: tuple[float, float, float] | None, unit: str = "s", digits: int = 3) -> str:
    if s is None:
        return "-"
    median, low, high = s
    return f"{median:.{digits}f}{unit} ({low:.{digits}f}–{high:.{digits}f})"


def median(s: tuple[float, float, float] | None, unit: str = "s", digits: int = 3) -> str:
    return "-" if s is None else f"{s[0]:.{digits}f}{unit}"


HEADER = ("| workload | tasker wall, median (min–max) | floor | floor wall | tasker/floor (min–max) "
          "| tasker CPU | floor CPU | peak RSS MiB | W4 tree peak MiB (tasker alone) | exit codes | notes |")
RULE = "|---|---|---|---|---|---|---|---|---|---|---|"


def rows(load: workloads.Workload, impl: list[dict], floors: dict[str, list[dict]]) -> list[str]:
    out = []
    codes = ",".join(str(r["rc"]) for r in impl)
    if any(r["rc"] != 0 for r in impl):
        codes = f"**{codes}**"
    tree, own = stats(impl, "tree_mib"), stats(impl, "own_mib")
    tree_text = f"{tree[0]:.0f} ({own[0]:.0f})" if tree and own else "-"
    wall = stats(impl, "wall")
    notes = [load.note] if load.note else []
    if load.ideal and wall:
        notes.append(f"ideal {load.ideal:.2f}s, tasker/ideal {wall[0] / load.ideal:.2f}")
    if load.tasks and wall:
        notes.append(f"{load.tasks} tasks, {wall[0] * 1000 / load.tasks:.3f} ms/task")
    for label, runs in floors.items():
        ratios = [a["wall"] / b["wall"] for a, b in zip(impl, runs, strict=True) if b["wall"] > 0]
        ratio = f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})" if ratios else "-"
        if any(r["rc"] != 0 for r in runs):
            ratio += " (floor failed!)"
        out.append(f"| {load.name} | {span(wall)} | {label} | {median(stats(runs, 'wall'))} | {ratio} "
                   f"| {median(stats(impl, 'cpu'))} | {median(stats(runs, 'cpu'))} "
                   f"| {median(stats(impl, 'maxrss_mib'), '', 0)} | {tree_text} | {codes} | {'; '.join(notes)} |")
    return out


# ---------------------------------------------------------------- the command line


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tests/benchmarks/run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", default=True,
                      help="the default: every size but W4 1000 MiB and W5 20000; 3 runs")
    mode.add_argument("--full", action="store_true", help="also W4 1000 MiB and W5 20000; 5 runs")
    p.add_argument("--only", default="", metavar="LIST",
                   help="comma list of workload names or prefixes: w1, w3_par, w4_ref_100, w5_valid_1000 ...")
    for key, what in (("w1", "task counts"), ("w2", "task counts"), ("w3", "block widths"),
                      ("w4", "output sizes in MiB"), ("w5", "task counts")):
        p.add_argument(f"--{key}", type=_sizes, metavar="N,N", help=f"{key.upper()} {what} (overrides the mode)")
    p.add_argument("--runs", "-n", type=int, help="counted runs per workload (quick 3, full 5)")
    p.add_argument("--warmup", type=int, default=1, help="uncounted runs first (default 1)")
    p.add_argument("--tasker", metavar="CMD",
                   help="command that runs tasker, split like a shell would (default: `tasker` on PATH)")
    p.add_argument("--dir", help="write the workloads here and keep them (default: a temp dir, removed)")
    p.add_argument("--generate-only", action="store_true", help="write the workloads, list them, run nothing")
    p.add_argument("--timeout", type=float, default=900, help="kill a run after this many seconds (default 900)")
    p.add_argument("--sample-ms", type=float, default=20, help="W4 process-tree RSS sampling interval (default 20)")
    p.add_argument("--json", metavar="FILE", help="also write every run's raw numbers here")
    p.add_argument("--against-flags", metavar="FLAGS",
                   help="instead of the floors, compare with the same tasker run plus FLAGS (e.g. --no-history)")
    p.add_argument("--keep-output", metavar="DIR", help="append each tasker run's output to DIR/<workload>.out")
    args = p.parse_args(argv)
    args.quick = not args.full
    return args


def sizes_for(args: argparse.Namespace) -> dict[str, list[int]]:
    sizes = dict(workloads.FULL if args.full else workloads.QUICK)
    for key in ("w1", "w2", "w3", "w4", "w5"):
        if getattr(args, key):
            sizes[key] = getattr(args, key)
    sizes["w6"] = []
    return sizes


def selected(made: list[workloads.Workload], only: str) -> list[workloads.Workload]:
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    if not wanted:
        return made
    return [w for w in made if any(w.name == s or w.name.startswith(s + "_") for s in wanted)]


def tasker_command(spec: str | None) -> list[str]:
    if spec:
        return shlex.split(spec)
    found = shutil.which("tasker")
    if found is None:  # not on PATH: the interpreter running us may have it installed beside it
        beside = os.path.join(os.path.dirname(sys.executable), "tasker")
        found = beside if os.access(beside, os.X_OK) else None
    if found is None:
        sys.exit("run.py: no `tasker` on PATH; install it (pip install .) or pass --tasker 'CMD'")
    return [found]


def describe_tasker(cmd: list[str]) -> str:
    try:
        done = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        sys.exit(f"run.py: cannot run {shlex.join(cmd)}: {exc}")
    if done.returncode != 0:
        sys.exit(f"run.py: `{shlex.join(cmd)} --version` failed: {done.stderr.strip()}")
    return done.stdout.strip()


def bench(load: workloads.Workload, cmd: list[str], args: argparse.Namespace, raw: dict) -> list[str]:
    argv = [*cmd, load.path, *(RUN_FLAGS if load.mode == "run" else VALIDATE_FLAGS)]
    keep = os.path.join(args.keep_output, load.name + ".out") if args.keep_output else None
    sample = args.sample_ms if load.sample else 0
    impl: list[dict] = []
    against = load.floors
    if args.against_flags:
        extra = shlex.split(args.against_flags)
        against = [(f"tasker {shlex.join(extra)}", [*argv, *extra])]
    floors: dict[str, list[dict]] = {label: [] for label, _ in against}
    total = args.warmup + args.runs
    for i in range(total):
        counted = i >= args.warmup
        print(f"  {load.name}: {'run' if counted else 'warm-up'} {i + 1}/{total}", file=sys.stderr, flush=True)
        result = measure(argv, args.timeout, sample, keep)
        if counted:
            impl.append(result)
        for label, floor_argv in against:
            floor = measure(floor_argv, args.timeout)
            if counted:
                floors[label].append(floor)
    raw[load.name] = {"tasker": argv, "floors": {label: a for label, a in against}, "runs": impl,
                      "floor_runs": floors}
    return rows(load, impl, floors)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.runs is None:
        args.runs = 5 if args.full else 3
    directory = os.path.abspath(args.dir) if args.dir else tempfile.mkdtemp(prefix="tasker-bench-")
    try:
        made = selected(workloads.generate(directory, sizes_for(args)), args.only)
        if not made:
            print(f"run.py: --only {args.only!r} selects no workload", file=sys.stderr)
            return 2
        if args.generate_only:
            for load in made:
                print(f"{load.path}\t{load.mode}\t" + "; ".join(shlex.join(a) for _, a in load.floors))
            return 0
        cmd = tasker_command(args.tasker)
        version = describe_tasker(cmd)
        if args.keep_output:
            os.makedirs(args.keep_output, exist_ok=True)
        started = time.monotonic()
        print(f"## tasker benchmarks ({'full' if args.full else 'quick'})\n")
        print(f"- tasker: `{shlex.join(cmd)}` ({version})")
        print(f"- machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()} for the floors (`{sys.executable}`)")
        print(f"- {args.runs} counted runs after {args.warmup} warm-up per workload, tasker and floor in turn "
              "(A B A B), each run in a fresh HOME")
        print()
        print(HEADER)
        print(RULE, flush=True)
        raw: dict = {}
        for load in made:
            for row in bench(load, cmd, args, raw):
                print(row, flush=True)
        print(f"\nTotal time: {time.monotonic() - started:.0f} s")
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(raw, fh, indent=1)
        return 0
    finally:
        if not args.dir:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
