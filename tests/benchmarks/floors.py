"""Floors in plain Python: the least a workflow runner must do for W1, W2, W5 and W6.

    floors.py spawn N      N x subprocess.run(["/bin/true"])                       (W1)
    floors.py chain N      echo x0, then echo x<i> <previous output>, captured,
                           stripped and checked (exit 0, contains "x")         (W2)
    floors.py parse FILE   one pass over a task file into a dict per task, then
                           O(N) checks of ids, routing targets and references  (W5, W6)

Exit 1 when a check fails.  Standard library only; keep it minimal: it is the
yardstick, not a competitor.
"""

from __future__ import annotations

import re
import subprocess
import sys


def spawn(n: int) -> int:
    for _ in range(n):
        if subprocess.run(["/bin/true"]).returncode != 0:
            return 1
    return 0


def chain(n: int) -> int:
    previous = ""
    for i in range(n):
        argv = ["echo", "x0"] if i == 0 else ["echo", f"x{i}", previous]
        done = subprocess.run(argv, capture_output=True, text=True)
        previous = done.stdout.rstrip("\n")
        if done.returncode != 0 or "x" not in previous:
            return 1
    return 0


REFERENCE = re.compile(r"@(\w+)@")
TARGETS = ("on_success", "on_failure")


def parse(path: str) -> int:
    """Read the file once; every task must have something to do and point only at existing tasks."""
    variables: dict[str, str] = {}
    tasks: dict[int, dict[str, str]] = {}
    current = None
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            line = raw.strip()
            if not line or line[0] == "#" or "=" not in line:
                continue
            key, value = line.split("=", 1)
            if key == "task":
                tid = int(value)
                if tid in tasks:
                    return 1
                current = tasks[tid] = {}
            elif current is None:
                variables[key] = value
            else:
                current[key] = value
    problems = 0
    for fields in tasks.values():
        if "command" not in fields and "type" not in fields and "return" not in fields:
            problems += 1
        targets = [fields[k] for k in TARGETS if k in fields]
        if fields.get("next", "").isdigit():
            targets.append(fields["next"])
        targets += fields["tasks"].split(",") if "tasks" in fields else []
        problems += sum(int(t) not in tasks for t in targets)
        for value in fields.values():
            for ref in REFERENCE.findall(value):
                head = ref.split("_", 1)[0]
                if head.isdigit():
                    problems += int(head) not in tasks
                elif ref not in variables and ref != "task":
                    problems += 1
    print(f"{len(tasks)} tasks, {len(variables)} globals, {problems} problems")
    return 1 if problems else 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "spawn":
        return spawn(int(argv[1]))
    if len(argv) == 2 and argv[0] == "chain":
        return chain(int(argv[1]))
    if len(argv) == 2 and argv[0] == "parse":
        return parse(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
