"""Task-file text -> AST: the three sections and their stopping rules (docs/taskfile.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import EXAMPLES, dedent, pretty

from tasker.syntax.taskfile import parse_taskfile

GOLDEN = Path(__file__).parent / "golden"


def parse(text: str):
    return parse_taskfile(dedent(text), "f.txt")


def test_header_is_the_flag_lines_before_the_first_key_value_line():
    tf = parse("""
        # comment
        --log-level=DEBUG
        not a pair
        -r
        X=1
        --auto-recovery
        task=0
        """)
    assert [a.text for a in tf.file_args] == ["--log-level=DEBUG", "-r"]
    assert [(g.key, g.value) for g in tf.globals] == [("X", "1")]


def test_globals_run_up_to_the_first_task_line_and_skip_flags():
    tf = parse("""
        A=1
        -x
        B = two words
        task = 0
        C=3
        """)
    assert [(g.key, g.value) for g in tf.globals] == [("A", "1"), ("B", "two words")]
    assert [(f.key, f.value) for f in tf.tasks[0].fields] == [("C", "3")]


def test_task_blocks_end_at_the_next_task_line():
    tf = parse("""
        task=1
        command=a
        task=0
        command=b
        command=c
        """)
    assert [b.id_text for b in tf.tasks] == ["1", "0"]
    assert [f.value for f in tf.tasks[1].fields] == ["b", "c"]   # both kept; the checker says last wins


def test_values_are_split_at_the_first_equals_and_trimmed():
    tf = parse("task=0\n  arguments =  a=b  c  \n")
    field = tf.tasks[0].fields[0]
    assert (field.key, field.value) == ("arguments", "a=b  c")
    assert (field.line, field.col, field.value_col) == (2, 3, 16)


def test_crlf_and_whitespace_are_trimmed():
    tf = parse_taskfile("task=0\r\nhostname=h\r\n", "f.txt")
    assert tf.tasks[0].fields[0].value == "h"


def test_stray_lines_are_kept_for_warnings():
    tf = parse("task=0\nthis is not a pair\n")
    assert [s.text for s in tf.tasks[0].stray] == ["this is not a pair"]


def test_a_file_without_tasks_parses():
    tf = parse("# nothing\nX=1\n")
    assert tf.tasks == () and len(tf.globals) == 1


def shape(tf) -> tuple:
    """Everything the parser found, as plain data."""
    return ([a.text for a in tf.file_args], [(g.key, g.value) for g in tf.globals],
            [(t.id_text, [(f.key, f.value) for f in t.fields], [s.text for s in t.stray]) for t in tf.tasks],
            [s.text for s in tf.stray])


@pytest.mark.parametrize("text,expected", [
    ("", ([], [], [], [])),
    ("\n\n", ([], [], [], [])),
    ("#", ([], [], [], [])),
    ("=", ([], [("", "")], [], [])),
    ("==", ([], [("", "=")], [], [])),
    ("-", (["-"], [], [], [])),
    ("- =", (["- ="], [], [], [])),
    ("task", ([], [], [], ["task"])),
    ("task=", ([], [], [("", [], [])], [])),
    ("x\x00y", ([], [], [], ["x\x00y"])),
    ("task=0\nx\x00y=1", ([], [], [("0", [("x\x00y", "1")], [])], [])),
])
def test_any_text_parses(text, expected):
    # Odd text is never an error of the parser: it becomes pairs, flags or stray lines that the
    # checker reports with their line numbers.
    tf = parse_taskfile(text, "f.txt")
    assert tf.path == "f.txt"
    assert shape(tf) == expected


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.txt")))
def test_golden_ast(example):
    tree = parse_taskfile((EXAMPLES / example).read_text(), f"examples/{example}")
    text = pretty(tree) + "\n"
    golden = GOLDEN / (example[:-4] + ".ast")
    if os.environ.get("TASKER_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"AST of {example} changed; TASKER_UPDATE_GOLDEN=1 rewrites {golden}"
