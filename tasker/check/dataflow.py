"""Data-flow warnings: a task reads ``@N_…@`` where task N may not have run.

TASKER leaves a reference to a task without a stored result as literal text,
so ``echo @4_stdout@`` after a jump past task 4 prints ``@4_stdout@``.  This
pass finds such reads before anything runs.  It works on the task graph the
lowering builds (``lower.task_graph``: the same routing rules as the program's
instructions): task N has surely run before task M when every path from the
start to M passes a place that stores N's result: task N itself, a parallel
block that runs it, or a conditional block that runs it on both branches.
A read by a block member happens when the block starts, so members of one
parallel block never see each other's results.
"""

from __future__ import annotations

from tasker.check.model import CONDITIONAL, DECISION, PARALLEL, Task, Workflow
from tasker.diagnostics import Diagnostics, Span
from tasker.ir.lower import task_graph
from tasker.numbers import clamped

MAX_STEPS = 2_000_000   # bound the whole analysis on pathological files


class _Analysis:
    def __init__(self, workflow: Workflow, tree, start: int | None, options) -> None:
        self.tasks = workflow.tasks
        self.tree = tree
        self._blocks: dict | None = None
        self.graph = task_graph(workflow, options)
        self.preds: dict[int, list[int]] = {tid: [] for tid in self.graph}
        for tid, succs in self.graph.items():
            for s in succs:
                if s in self.preds:
                    self.preds[s].append(tid)
        self.start = start
        self.steps = 0
        self.stores: dict[int, set[int]] = {}
        self.diags = Diagnostics()
        self.run_by: dict[int, set[int]] = {}   # member id -> blocks that surely run it
        for block in self.tasks.values():
            if block.kind == PARALLEL:
                surely = block.members
            elif block.kind == CONDITIONAL:
                surely = set(block.if_true) & set(block.if_false)
            else:
                continue
            for sid in surely:
                self.run_by.setdefault(sid, set()).add(block.id)

    # ------------------------------------------------------------ who stores what

    def store_points(self, n: int) -> set[int]:
        """Main-flow tasks after which task n's result is surely stored."""
        found = self.stores.get(n)
        if found is None:
            found = set()
            task = self.tasks.get(n)
            if task is not None and task.parent is None and task.kind != DECISION:
                found.add(n)
            found |= self.run_by.get(n, set())
            self.stores[n] = found
        return found

    def reachable(self) -> set[int]:
        seen: set[int] = set()
        todo = [self.start] if self.start is not None else []
        while todo:
            tid = todo.pop()
            if tid in seen or tid not in self.graph:
                continue
            seen.add(tid)
            todo.extend(self.graph[tid])
        return seen

    def unsafe_path(self, m: int, n: int) -> list[int] | None:
        """A path start -> ... -> m that passes no store of n."""
        stores = self.store_points(n)
        if m != self.start and all(p in stores for p in self.preds[m]):
            return None   # the usual case: the task right before is the one read
        parent: dict[int, int | None] = {m: None}
        todo = [m]
        while todo:
            node = todo.pop()
            self.steps += 1
            if self.steps > MAX_STEPS:
                return None
            if node == self.start:
                path = [node]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])
                return path
            for p in self.preds[node]:
                if p in parent or p in stores:
                    continue
                parent[p] = node
                todo.append(p)
        return None

    # ------------------------------------------------------------ reads

    def run(self) -> Diagnostics:
        if self.start is None:
            return self.diags
        live = self.reachable()
        for tid in sorted(live):
            task = self.tasks[tid]
            self.check_reads(tid, task, tid, set(), "")
            if task.kind in (PARALLEL, CONDITIONAL):
                self.check_members(task)
        return self.diags

    def check_members(self, block: Task) -> None:
        if block.kind == PARALLEL:
            for sid in block.members:
                sub = self.tasks.get(sid)
                if sub is not None:
                    self.check_reads(sid, sub, block.id, set(), f"as a member of parallel block {block.id}",
                                     siblings=set(block.members) - {sid})
            return
        for ids, name in ((block.if_true, "TRUE"), (block.if_false, "FALSE")):
            earlier: set[int] = set()
            for sid in ids:
                sub = self.tasks.get(sid)
                if sub is not None:
                    self.check_reads(sid, sub, block.id, set(earlier),
                                     f"in the {name} branch of conditional block {block.id}")
                earlier.add(sid)

    def check_reads(self, tid: int, task: Task, point: int, earlier: set[int], where: str,
                    siblings: set[int] | None = None) -> None:
        seen: set[tuple] = set()
        for key, n, text in task.reads:
            if n == tid or n not in self.tasks or (key, n) in seen or (n in earlier and not siblings):
                continue
            seen.add((key, n))
            if siblings and n in siblings and n not in earlier:
                self.warn(tid, key, text, n, f"task {tid} reads {text} {where}, but task {n} runs in the same "
                                             "block: results are stored when the block ends")
            elif self.tasks[n].kind == DECISION:
                self.warn(tid, key, text, n, f"task {tid} reads {text}, but task {n} is a decision block and "
                                             "stores no result")
            elif n not in earlier:
                path = self.unsafe_path(point, n)
                if path is not None:
                    self.warn(tid, key, text, n, self.message(tid, text, n, path, where))

    def message(self, tid: int, text: str, n: int, path: list[int], where: str) -> str:
        route = " -> ".join(f"task {p}" for p in path[:6]) + (" -> ..." if len(path) > 6 else "")
        runs = f" {where}" if where else ""
        if len(path) == 1:
            return (f"task {tid} reads {text}{runs}, but task {n} cannot have run yet: "
                    f"task {path[0]} is where the workflow starts")
        return (f"task {tid} reads {text}{runs}, but task {n} may not have run: the flow can go "
                f"{route} without it; the reference then stays as written")

    @property
    def blocks(self) -> dict:
        """Task id -> ast.TaskBlock, for the spans of warnings (built at the first warning)."""
        if self._blocks is None:
            self._blocks = {}
            for block in self.tree.tasks:
                text = block.id_text.strip()
                if text.lstrip("+-").isdigit():
                    self._blocks[clamped(text)] = block
        return self._blocks

    def warn(self, tid: int, key: str, text: str, n: int, message: str) -> None:
        span = self.span_of(tid, key, text)
        related = []
        target = self.blocks.get(n)
        if target is not None:
            related.append((target.id_span, f"task {n} is defined here"))
        self.diags.warning(message, span, help="route the flow through that task first, or read the value "
                                               "only on the paths where it ran", related=tuple(related))

    def span_of(self, tid: int, key: str, text: str) -> Span | None:
        # only tasks written in the file read results: a hostnames block's generated subtasks carry
        # no reads of their own (the block reports them, at its own field)
        block = self.blocks.get(tid)
        if block is None:
            return None
        pair = None
        for p in block.fields:
            if p.key == key:
                pair = p
        if pair is None:
            return block.id_span
        at = pair.value.find(text)
        return pair.value_span.at(at, len(text)) if at >= 0 else pair.value_span


def analyze(workflow: Workflow, tree, options=None, start: int | None = None) -> Diagnostics:
    """Warnings for reads of results that may not exist when read (see module docstring)."""
    if not workflow.reads_results():
        return Diagnostics()
    first = start if start is not None else workflow.first_id()
    return _Analysis(workflow, tree, first, options).run()
