"""Task-file text -> ``TaskFile`` AST.

The lexer reads the text line by line (docs/taskfile.md: split on ``\\n``, trim,
drop blank lines and comments) and classifies each line as one token:
``FLAG``, ``TASK``, ``PAIR`` or ``TEXT``.  The LALR parser for
``grammar/taskfile.lark`` then groups the tokens into the three sections.
Nothing here judges values; that is the checker's job.
"""

from __future__ import annotations

from tasker.diagnostics import Span
from tasker.syntax import lalr
from tasker.syntax.ast import FileArg, Pair, StrayLine, TaskBlock, TaskFile


def tokenize(text: str, path: str) -> list[tuple]:
    """``(kind, value)`` tokens: FLAG/TASK/TEXT one per line, PAIRS one per run of pairs."""
    tokens: list[tuple] = []
    emit = tokens.append
    run: list[Pair] = []
    number = 0
    for raw in text.split("\n"):
        number += 1
        line = raw.strip()
        if not line:
            continue
        first = line[0]
        if first == "#":
            continue
        if first != "-":
            key, eq, value = line.partition("=")
            if eq:
                key = key.rstrip()
                pair = Pair(key, value.lstrip(), path, number, raw)
                if key != "task":
                    run.append(pair)
                    continue
                if run:
                    emit(("PAIRS", run))
                    run = []
                emit(("TASK", pair))
                continue
        if run:
            emit(("PAIRS", run))
            run = []
        col = raw.find(first) + 1
        if first == "-":
            emit(("FLAG", FileArg(line, Span(path, number, col, len(line)))))
        else:
            emit(("TEXT", StrayLine(line, Span(path, number, col, len(line)))))
    if run:
        emit(("PAIRS", run))
    return tokens


def _sections(children: list) -> tuple:
    """(flags or pairs, stray lines) of a header or global section."""
    main: list = []
    stray: list = []
    for kind, value in children:
        if kind == "PAIRS":
            main.extend(value)
        elif kind == "TEXT":
            stray.append(value)
        else:
            main.append(value)
    return tuple(main), tuple(stray)


def _task(children: list) -> TaskBlock:
    head = children[0][1]
    pairs: list = []
    stray: list = []
    for kind, value in children:
        if kind == "PAIRS":
            pairs.extend(value)
        elif kind == "TEXT":
            stray.append(value)
    return TaskBlock(head, tuple(pairs), tuple(stray))


def _make_start(path: str):
    def start(children: list) -> TaskFile:
        (args, header_stray), (pairs, global_stray), tasks = children
        pairs = tuple(p for p in pairs if type(p) is Pair)  # flags among globals are ignored
        return TaskFile(path, args, pairs, tuple(tasks), header_stray + global_stray)
    return start


def parse_taskfile(text: str, path: str) -> TaskFile:
    """Parse the text of a task file.  Every text parses: the grammar accepts any line order."""
    callbacks = {
        "start": _make_start(path),
        "header": _sections,
        "globals": _sections,
        "tasks": lambda children: children,
        "task": _task,
    }
    return lalr.parse(lalr.table("taskfile"), tokenize(text, path), callbacks)
